"""
A hand-written reader and writer for the safetensors format, in plain NumPy.

safetensors is how Hugging Face ships model weights (e.g. all-MiniLM-L6-v2's
model.safetensors). Unlike pickle (PyTorch's .bin/.pt files), loading it can never run
code: it is just a JSON table of contents followed by raw numbers. The whole format:

    +----------------------+---------------------------+---------------------------------+
    | N: 8 bytes, uint64,  | N bytes: UTF-8 JSON header| the byte buffer: every tensor's |
    | little-endian        | (padded with spaces)      | raw little-endian bytes, packed |
    +----------------------+---------------------------+---------------------------------+

The header is one JSON object with an entry per tensor, plus an optional "__metadata__"
entry holding free-form {str: str} pairs:

    {"__metadata__": {"format": "pt"},
     "embeddings.word_embeddings.weight":
         {"dtype": "F32", "shape": [30522, 384], "data_offsets": [0, 46881792]},
     ...}

data_offsets = [begin, end) are byte positions counted from the start of the byte buffer
(i.e. from byte 8 + N of the file), and end - begin = prod(shape) * itemsize. Tensors are
stored in C (row-major) order. The tensors must cover the buffer exactly: no gaps, no
overlaps, nothing left over. That rule lets a reader check a file from its header alone.

Like the reference writer, we pad the header with spaces to a multiple of 8 bytes and lay
the tensors out widest dtype first (then by name). Both serve alignment: the buffer
starts at a multiple of 8, and every tensor starts at a multiple of its own item size, so
a reader may view the bytes as numbers without copying. The fixed order also makes the
output deterministic: save -> load -> save gives the same bytes.

Public API:
    save_file(tensors, path, metadata=None)   write {name: array} (atomically)
    load_file(path, dtype=None, names=None)   -> {name: array} (only `names`, if given)
    load_metadata(path)                       -> the "__metadata__" dict, or None
    read_header(path)                         -> the checked JSON header; reads no tensor data
    SafetensorsError                          raised for malformed files (a ValueError)
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .fileio import atomic_write, parse_json, short_repr

# safetensors dtype name -> NumPy dtype of the stored bytes ("<" = little-endian).
# Listed in the order the reference writer lays tensors out: widest first.
# BF16 is stored as raw uint16 here, because NumPy has no bfloat16; see _bf16_to_f32.
DTYPES: dict[str, np.dtype] = {
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "BF16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("bool"),
}
_LAYOUT_RANK = {name: i for i, name in enumerate(DTYPES)}
# (NumPy kind, itemsize) -> safetensors name, for saving. Kind: f float, i int, u uint, b bool.
_NAME_OF = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items() if name != "BF16"}

MAX_HEADER_BYTES = 100_000_000  # the reference's limit: a bigger header means a broken file
# NumPy cannot make an array with more dimensions (32 before NumPy 2), nor one whose shape,
# zeros aside, multiplies out past the address space; refuse such shapes in the header.
MAX_DIMS = 32
MAX_SHAPE_BYTES = 2**62


class SafetensorsError(ValueError):
    """A file that is not valid safetensors, or tensors that cannot be saved as safetensors."""


# -----------------------------------------------------------------------------
# writing


def save_file(tensors: Mapping[str, Any], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> None:
    """
    Write tensors to `path` in safetensors format.

    in:  tensors  - dict {name (str): array-like}; dtypes float64/32/16, int64/32/16/8,
                    uint64/32/16/8 and bool. Any memory layout or byte order is accepted.
         path     - where to write; written atomically (see minibert.fileio), so a crash
                    never leaves a half-written file behind
         metadata - optional dict {str: str}, stored as the header's "__metadata__"
    out: None
    """
    header, arrays = _build_header(tensors, metadata)

    def write(f):
        f.write(struct.pack("<Q", len(header)))  # N as a little-endian uint64
        f.write(header)
        for a in arrays:
            f.write(a.tobytes())  # C order, whatever the array's strides were

    atomic_write(path, write)


def _build_header(tensors, metadata):
    """Return (the padded JSON header as bytes, the arrays in buffer order, little-endian)."""
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise SafetensorsError(f"invalid tensor name {name!r}")
        a = np.asarray(value)
        st_dtype = _NAME_OF.get((a.dtype.kind, a.dtype.itemsize))
        if st_dtype is None:
            raise SafetensorsError(f"tensor {name!r}: dtype {a.dtype} cannot be stored")
        a = a.astype(DTYPES[st_dtype], copy=False)  # a no-op unless the array is big-endian
        entries.append((_LAYOUT_RANK[st_dtype], name, st_dtype, a))
    entries.sort(key=lambda e: (e[0], e[1]))  # widest dtype first, then by name

    header = {}
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("metadata must be a dict of str -> str")
        header["__metadata__"] = dict(sorted(metadata.items()))  # sorted: deterministic
    offset = 0
    for _, name, st_dtype, a in entries:
        header[name] = {
            "dtype": st_dtype,
            "shape": list(a.shape),
            "data_offsets": [offset, offset + a.nbytes],
        }
        offset += a.nbytes
    # compact JSON, non-ASCII kept as UTF-8: the same text the reference (serde_json) writes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad to a multiple of 8 so the buffer is 8-aligned
    return text, [e[3] for e in entries]


# -----------------------------------------------------------------------------
# reading


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """
    Read and check the JSON header of a safetensors file, without reading tensor data.

    in:  path - str or os.PathLike
    out: the header dict {name: {"dtype", "shape", "data_offsets"}, maybe "__metadata__"},
         verified against the file size, so a later load cannot go out of bounds.
    Raises FileNotFoundError if there is no such file, SafetensorsError if it is malformed.
    """
    with open(path, "rb") as f:
        header, _ = _read_checked_header(f, path)
    return header


def load_metadata(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """Return the "__metadata__" dict {str: str} of a safetensors file, or None if it has none."""
    return read_header(path).get("__metadata__")


def load_file(path: str | os.PathLike[str], dtype: npt.DTypeLike | None = None,
              names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """
    Load the tensors of a safetensors file: all of them, or only those named.

    in:  path  - str or os.PathLike
         dtype - optional NumPy dtype (e.g. np.float32) that floating-point tensors are
                 cast to; integer and bool tensors are never cast
         names - optional iterable of tensor names: only these are read (and allocated), so
                 a file full of tensors the caller does not want costs nothing
    out: dict {name: np.ndarray} in the order of the header; each array owns its memory,
         is writable, and is in the machine's native byte order. BF16 tensors come back as
         float32 (exactly: every bfloat16 value is a float32 value).
    Raises FileNotFoundError if there is no such file, SafetensorsError if it is malformed
    or lacks one of `names`. The whole header is checked against the file size before any
    tensor is allocated.
    """
    tensors = {}
    with open(path, "rb") as f:
        header, data_start = _read_checked_header(f, path)
        wanted = None if names is None else set(names)
        if wanted is not None:
            absent = sorted(wanted - header.keys() - {"__metadata__"})
            if absent:
                raise SafetensorsError(f"{path}: no tensor named {', '.join(map(repr, absent))}")
        for name, info in header.items():
            if name == "__metadata__" or (wanted is not None and name not in wanted):
                continue
            begin, end = info["data_offsets"]
            # read the bytes straight into a fresh array of the stored dtype: no extra copy
            a = np.empty(info["shape"], dtype=DTYPES[info["dtype"]])
            f.seek(data_start + begin)
            if f.readinto(a.reshape(-1).view(np.uint8).data) != end - begin:
                raise SafetensorsError(f"{path}: data of {name!r} is truncated")
            if info["dtype"] == "BF16":
                a = _bf16_to_f32(a)
            a = a.astype(a.dtype.newbyteorder("="), copy=False)  # no-op on little-endian CPUs
            if dtype is not None and a.dtype.kind == "f":
                a = a.astype(dtype, copy=False)
            tensors[name] = a
    return tensors


def _bf16_to_f32(bits):
    """
    Decode bfloat16 values, given as their raw uint16 bit patterns, to float32.

    bfloat16 is simply the top half of a float32: the same sign bit, the same 8 exponent
    bits, and the first 7 of float32's 23 mantissa bits. So putting the 16 bits in the high
    half of a uint32 (and zeros in the low half) gives the float32 with that exact value,
    including infinities and NaNs. (NumPy has no bfloat16 type, hence the bit trick.)
    """
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _read_checked_header(f, path):
    """
    Read the header from the open file f and check it against the file's size.
    Returns (header dict, byte position of the buffer start). Reads 8 + N bytes, no more.
    """
    file_size = os.fstat(f.fileno()).st_size

    def fail(what):
        raise SafetensorsError(f"{path}: {what}")

    if file_size < 8:
        fail(f"file is only {file_size} bytes; a safetensors file starts with an 8-byte length")
    (n,) = struct.unpack("<Q", f.read(8))
    # check N before reading it: a corrupt length must not make us read gigabytes
    if n > MAX_HEADER_BYTES:
        fail(f"header length {n} is absurd (limit {MAX_HEADER_BYTES}); corrupt file?")
    if 8 + n > file_size:
        fail(f"header length {n} is larger than the file ({file_size} bytes)")
    header = parse_json(f.read(n), f"{path}: header", SafetensorsError, unique_keys=True)
    if not isinstance(header, dict):
        fail(f"header must be a JSON object, not {type(header).__name__}")

    metadata = header.get("__metadata__")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ):
        fail('"__metadata__" must be an object of string -> string')

    spans = []  # (begin, end, name), to check that the tensors tile the buffer
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            fail(f"entry {name!r} must be an object")
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                fail(f"entry {name!r} has no {key!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:  # a list would be unhashable
            fail(f"entry {name!r} has unknown dtype {short_repr(dtype, 80)} "
                 f"(known: {', '.join(DTYPES)})")
        if not (isinstance(shape, list) and all(_is_uint(d) for d in shape)):
            fail(f"entry {name!r}: shape must be a list of non-negative integers, "
                 f"not {short_repr(shape, 80)}")
        if len(shape) > MAX_DIMS:
            fail(f"entry {name!r}: shape has {len(shape)} dimensions (at most {MAX_DIMS})")
        if math.prod(max(d, 1) for d in shape) * DTYPES[dtype].itemsize > MAX_SHAPE_BYTES:
            fail(f"entry {name!r}: shape {short_repr(shape, 80)} is too large for any array")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_uint, offsets))):
            fail(f"entry {name!r}: data_offsets must be [begin, end], "
                 f"not {short_repr(offsets, 80)}")
        begin, end = offsets
        if end < begin:
            fail(f"entry {name!r}: data_offsets end {end} < begin {begin}")
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize  # Python ints: no overflow
        if end - begin != nbytes:
            fail(
                f"entry {name!r}: data_offsets {offsets} span {end - begin} bytes, "
                f"but {dtype} with shape {shape} needs {nbytes}"
            )
        spans.append((begin, end, name))

    # the tensors must cover the buffer exactly, in some order
    pos, prev = 0, None
    for begin, end, name in sorted(spans):
        if begin < pos:
            fail(f"entry {name!r} (bytes {begin}..{end}) overlaps {prev!r}")
        if begin > pos:
            fail(f"bytes {pos}..{begin} of the data buffer belong to no tensor (before {name!r})")
        pos, prev = end, name
    available = file_size - 8 - n
    if pos > available:
        fail(f"data is truncated: the tensors need {pos} bytes of data, the file has {available}")
    if pos < available:
        fail(f"{available - pos} bytes after the last tensor belong to no tensor")
    return header, 8 + n


def _is_uint(x):
    # JSON `true` parses to Python True, which is an int; don't accept it as a size
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
