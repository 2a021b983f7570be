"""The one place that knows about NumPy versus CuPy.

Every array in minibert lives on the *active backend*: NumPy (CPU, the default) or CuPy (an
NVIDIA GPU). CuPy copies NumPy's API, so the rest of the code asks this module for the array
module (`xp`) and then writes ordinary NumPy code with it — `xp.exp`, `xp.matmul`, ... — and the
very same lines run on either device. No other module imports cupy.

Switch with ``minibert.use_backend("cupy")`` or the environment variable
``MINIBERT_BACKEND=cupy`` (read once, by ``import minibert``).

It also decides *how* an op's formula runs (the last section, "How a formula runs"): the ops in
functional.py are written as whole-array textbook math, and `elementwise` / `rows` run those
lines in cache-sized blocks on all CPU cores under NumPy, or as fused GPU kernels under CuPy.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import os
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from . import parallel

# In type hints: an array on the active backend (numpy.ndarray, or cupy.ndarray on a GPU: CuPy is
# optional, so the type is spelled Any), and anything that becomes one (an array, nested lists).
Array: TypeAlias = Any
ArrayLike: TypeAlias = Any

_KERNELS: dict = {}  # fused GPU kernels (cupy.fuse), by (array module, what they compute)

BACKENDS = ("numpy", "cupy")

_name = "numpy"
_xp: ModuleType = np
_rng = None  # the global random generator of the active backend, made on first use
_seed: int | None = None
_cupy: ModuleType | None = None  # the cupy module, once imported and found working


class BackendError(RuntimeError):
    """The backend asked for cannot be used here (CuPy missing, or no GPU)."""


def _import_cupy() -> ModuleType:
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy  # the only cupy import in minibert
    except ImportError as e:
        raise BackendError(
            "the 'cupy' backend needs CuPy, which is not installed. Install the GPU extra "
            "(`pip install -e '.[gpu]'`, see README) on a machine with an NVIDIA GPU, "
            "or use the default 'numpy' backend."
        ) from e
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise BackendError(
            f"CuPy is installed but found no usable CUDA driver/GPU ({e}). "
            "Use the default 'numpy' backend on this machine."
        ) from e
    if n == 0:
        raise BackendError("CuPy is installed but this machine has no GPU; use 'numpy'.")
    _cupy = cupy
    return cupy


def cupy_available() -> bool:
    """True when CuPy is installed and sees at least one GPU (never raises)."""
    try:
        _import_cupy()
    except BackendError:
        return False
    return True


def use_backend(name: str) -> None:
    """Make `name` ("numpy" or "cupy"; "cpu"/"gpu" are accepted too) the active backend.

    Arrays already created stay where they are; move models with ``model.to(...)``.
    """
    global _name, _xp, _rng
    key = {"cpu": "numpy", "gpu": "cupy", "cuda": "cupy"}.get(str(name).lower(), str(name).lower())
    if key not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS} (or 'cpu'/'gpu')")
    _xp = _import_cupy() if key == "cupy" else np
    _name = key
    _rng = None  # a generator belongs to one backend; re-made (from the same seed) on next use


def get_backend() -> str:
    """Name of the active backend: "numpy" or "cupy"."""
    return _name


def xp() -> ModuleType:
    """The array module of the active backend (numpy or cupy)."""
    return _xp


def get_array_module(*arrays: Any) -> ModuleType:
    """The array module that owns these arrays: cupy if any is a CuPy array, else numpy.

    (Inside a formula that `rows` runs on the GPU the arrays are recorded steps: then it is a
    stand-in that records `xp.exp(...)` & co. as well.)"""
    for a in arrays:
        if isinstance(a, _Lazy):
            return _LAZY_MODULE
        if type(a).__module__.split(".")[0] == "cupy":
            return _import_cupy()
    return np


def is_device_array(a: Any) -> bool:
    """True for a CuPy (GPU) array."""
    return type(a).__module__.split(".")[0] == "cupy"


def asarray(a: Any, dtype: npt.DTypeLike | None = None) -> Array:
    """`a` as an array of the active backend (copies between devices when needed)."""
    if _name == "numpy":
        return np.asarray(to_numpy(a), dtype=dtype)
    return _xp.asarray(a, dtype=dtype)


def to_numpy(a: Any) -> np.ndarray:
    """Bring any array (NumPy, CuPy, scalar, list) back to a NumPy array on the host."""
    if is_device_array(a):
        return a.get()
    return np.asarray(a)


def scatter_add(target: Array, indices: Any, values: Array) -> None:
    """target[indices] += values, adding up repeated indices (unlike plain `+=`).

    This is the backward of a row gather such as an embedding lookup: a token that appears
    twice in a batch must receive the sum of both gradients.

    On the GPU, `add.at` adds repeated indices with atomic operations whose order changes from
    run to run: float sums then differ in their last bits, and a seeded training run no longer
    repeats itself exactly. For rows picked by a 1-D array of ids (every embedding), the GPU
    path sorts the ids and sums each run of equal ids in a fixed order instead (a running sum,
    in float64 so that differences of it keep full float32 precision). Each run's sum is then
    added at its last position, zeros at the others: adding zeros changes nothing, in any
    order, so the result is fixed; and no step needs the number of distinct ids on the host
    (which would make it wait for the GPU).
    """
    xp = get_array_module(target)
    if xp is np or isinstance(indices, tuple) or getattr(indices, "ndim", 0) != 1 \
            or indices.dtype.kind not in "iu":
        xp.add.at(target, indices, values)
        return
    indices = xp.asarray(indices)  # an index made on the host moves to the device
    order = xp.argsort(indices)
    ids = indices[order]  # equal ids now sit in runs
    rows = values.reshape((ids.size,) + target.shape[1:])[order]
    first = xp.searchsorted(ids, ids)  # where each position's run starts
    last = xp.concatenate([ids[1:] != ids[:-1], xp.ones(1, dtype=bool)])  # a run's last one
    running = xp.cumsum(rows, axis=0, dtype=np.float64)
    sums = running - running[first] + rows[first]  # the run's sum, up to each position
    last = last.reshape((-1,) + (1,) * (rows.ndim - 1))
    xp.add.at(target, ids, xp.where(last, sums, 0).astype(target.dtype))


def manual_seed(seed: int) -> None:
    """Seed minibert's global random generator (dropout masks, initialisation, shuffling).

    NumPy and CuPy have different generators: the same seed gives a reproducible stream on
    each backend, but not the same numbers on both.
    """
    global _rng, _seed
    _seed = int(seed)
    _rng = None


def rng() -> Any:
    """The global random generator of the active backend (seeded by `manual_seed`)."""
    global _rng
    if _rng is None:
        _rng = _xp.random.default_rng(_seed)
    return _rng


def use_backend_from_environment() -> None:
    """Use the backend MINIBERT_BACKEND names, if it names one (`import minibert` calls this)."""
    name = os.environ.get("MINIBERT_BACKEND", "").strip()
    if name:
        try:
            use_backend(name)
        except (ValueError, BackendError) as e:  # say which setting asked for it
            raise type(e)(f"MINIBERT_BACKEND={name!r}: {e}") from None


# ----------------------------------------------------------------------------------------------
# The functions the formulas use, on the device of their argument: NumPy's or CuPy's (also
# inside a fused kernel), so that a formula reads exp(x), not xp.exp(x)


def exp(x: Array) -> Array:
    return get_array_module(x).exp(x)


def log(x: Array) -> Array:
    return get_array_module(x).log(x)


def sqrt(x: Array) -> Array:
    return get_array_module(x).sqrt(x)


def absolute(x: Array) -> Array:
    return get_array_module(x).absolute(x)


def tanh(x: Array) -> Array:
    return get_array_module(x).tanh(x)


def copysign(x: Array, sign: Array) -> Array:
    """|x| with the sign of `sign`."""
    return get_array_module(x, sign).copysign(x, sign)


def linear_map(x: Array, W: Array) -> Array:
    """x @ W for rows x (n, in) and a matrix W (in, out), the fastest way the device has.

    On the CPU a few rows (a sentence or two, n <= 64) go as (Wᵀ xᵀ)ᵀ: OpenBLAS is faster at
    that shape (MiniLM, 1 x 32 tokens: -15 %), slower from ~128 rows."""
    if isinstance(x, np.ndarray) and len(x) <= 64:
        return (W.T @ x.T).T.copy()
    return x @ W


# ----------------------------------------------------------------------------------------------
# How a formula runs: blocks of rows on the CPU, fused kernels on the GPU
#
# The ops in functional.py are written as their textbook formula on whole arrays, e.g.
#
#     @backend.elementwise
#     def gelu_formula(x):
#         return x * 0.5 * (1 + erf(x / sqrt(2)))
#
# and the decorator decides how those lines run:
# - NumPy: on blocks of ~128k numbers (whole rows), on the thread pool of parallel.py. Every
#   step of the formula then reads and writes a block that sits in the CPU cache, not the whole
#   array in memory, and the blocks run on all cores at once. The formula's lines run once, on
#   stand-ins that record its steps (`_Lazy`); the record becomes a plan (`_BlockPlan`: which
#   buffer each step writes into, compiled to straight-line code) kept for the formula and the
#   kind of its arguments, and every later call just runs the plan on its arrays and numbers.
#   With `out=` the results go into given arrays, which may be the arguments themselves:
#   that is how AdamW's update (optim.py) runs in place over the parameters.
# - CuPy: elementwise formulas become one GPU kernel (cupy.fuse compiles the Python function):
#   one launch and one pass over memory instead of one per step. Formulas over rows (softmax,
#   layer_norm) become one kernel per row reduction and one for the rest (`rows`, below).


def elementwise(formula: Callable[..., Any]) -> Callable[..., Any]:
    """Run `formula(*arrays_and_numbers)`, an elementwise formula, as fast as the device allows.

    Every array argument has the shape of the first one, or broadcasts against it along the
    last axis (a bias, gamma), or is a per-row value with a last axis of 1. (One that
    broadcasts otherwise, such as each attention head's bias (h, 1, d) against (B, h, T, d),
    works too: on NumPy the plain lines then run on the whole arrays.) The formula returns an
    array, several (a tuple), or nothing when it works in place (`y += b`, on contiguous
    arrays). On NumPy it runs on blocks of rows (parallel.for_blocks); on CuPy it is one fused
    kernel (cupy.fuse). It may be defined inside the op that uses it: the kernel is compiled
    once per formula (its code), so values must come in as arguments, not from the enclosing
    function. `formula` itself stays reachable as `.formula`, so tests can compare the fast
    path with the plain lines.

    ``out=(a, b, ...)``, one array per result, writes the results there instead of into new
    arrays, and returns `out`. An output may be an argument too: ``f(theta, g, out=(theta,))``
    updates θ in place (AdamW's update does), each block's old values read before its new
    ones are written.
    """
    if formula.__closure__:
        names = ", ".join(formula.__code__.co_freevars)
        raise TypeError(f"backend.elementwise: {formula.__name__} reads {names} from the "
                        "function around it; pass them as arguments (a compiled kernel would "
                        "keep the first values)")
    made, key = _made_before(elementwise, formula)
    if made is not None:
        return made

    @functools.wraps(formula)
    def run(*args: Any, out: tuple | None = None) -> Any:
        xp = get_array_module(*args)
        if xp is np:
            return _on_blocks(formula, args, out)
        kernel = _KERNELS.get((xp, formula.__code__))
        if kernel is None:
            kernel = _KERNELS[(xp, formula.__code__)] = xp.fuse(formula)
        result = kernel(*args)
        return result if out is None else _write(out, result)

    run.formula = formula  # type: ignore[attr-defined]  # the plain lines, for tests
    return _keep(key, run)


def rows(formula: Callable[..., Any]) -> Callable[..., Any]:
    """Run `formula(*arrays_and_numbers)`, a formula over the last axis (each row on its own,
    with sums, means or maxima over the row: `row_sum`, `row_mean`, `row_max`), as fast as the
    device allows.

    The arguments are as for `elementwise`. On NumPy it runs on blocks of whole rows on the
    thread pool. On CuPy the formula runs once on stand-ins that record its steps instead of
    computing them (`_Lazy`): each row reduction becomes one fused kernel (the steps that lead
    to it, then the reduction), and the arrays the formula returns one more; a softmax then
    costs three launches instead of one per step. A row value the formula returns (a reduction's
    result, shape (..., 1)) comes back as it is.
    """
    made, key = _made_before(rows, formula)
    if made is not None:
        return made

    @functools.wraps(formula)
    def run(*args: Any) -> Any:
        xp = get_array_module(*args)
        if xp is np:
            return _on_blocks(formula, args)
        result = formula(*(_Lazy(None, (a,)) if is_device_array(a) else a for a in args))
        return _compute(xp, result)

    run.formula = formula  # type: ignore[attr-defined]  # the plain lines, for tests
    return _keep(key, run)


# An op that defines its formulas inside itself (GELU's forward and backward, side by side)
# makes new function objects on every call, and so decorates them again: ~1.4 µs each, ~90 µs
# of a one-sentence MiniLM forward (16 ms). A formula with the same code, defaults and module
# and no values from the function around it computes the same: the runner made for the first
# one serves it.
_MADE: dict = {}


def _made_before(decorator, formula):
    """(the runner `decorator` made for a formula like this one before, or None; the key to
    keep a new one under, or None when it must not be kept)."""
    if formula.__closure__:  # it reads values of the function around it: they may change
        return None, None
    key = (decorator, formula.__code__, formula.__defaults__, formula.__module__)
    try:
        return _MADE.get(key), key
    except TypeError:  # a default value that cannot be a key
        return None, None


def _keep(key, run):
    """Keep `run` under `key` (from _made_before) for the next formula like it; returns it."""
    if key is not None:
        _MADE[key] = run
    return run


def into_heads(formula: Callable[..., Any], arrays: list, vectors: list,
               num_heads: int) -> tuple:
    """formula(*arrays, *vectors), an elementwise formula (`elementwise`) with one result per
    array, on arrays (B, T, H) and a vector (H,) for each, with each result cut into
    attention's heads: (B, h, T, d), d = H/h. The arrays are the caller's to give up (such as
    attention_heads' x W): the results may be written into them (on NumPy, from PLAN_FROM
    numbers on).

    Where the heads' numbers lie is the device's business. On NumPy the formula runs on the
    (B, T, H) arrays, in place (blocks of rows on the threads), and each head is a view of
    its result, which BLAS reads as it is. On CuPy it runs on the heads themselves (views of
    the arrays, each vector as (h, 1, d)), so that its one kernel writes each head's rows one
    after another, as cuBLAS reads them: a head that is a view of (B, T, H) it would copy
    first."""
    B, T, H = arrays[0].shape
    d = H // num_heads

    def split(y):  # (B, T, H) -> (B, h, T, d), a view
        return y.reshape(B, T, num_heads, d).transpose(0, 2, 1, 3)

    if isinstance(arrays[0], np.ndarray):
        # in place from PLAN_FROM numbers on; below, the plain lines' new arrays are faster
        out = tuple(arrays) if arrays[0].size >= PLAN_FROM else None
        return tuple(split(r) for r in formula(*arrays, *vectors, out=out))
    return tuple(formula(*(split(a) for a in arrays),
                         *(v.reshape(num_heads, 1, d) for v in vectors)))


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Within ``with backend.together():`` the formulas that write into arrays given by `out=`
    (on NumPy) are made ready but not run; at its end, all their blocks run at once on the
    thread pool, shared out by size. Many small arrays (an optimizer's parameters, each less
    than a block) then share the cores, where one at a time each would run on one. Their
    results are there once the `with` ends; calls that return new arrays run at once (and
    on one thread, everything does)."""
    if getattr(_together, "tasks", None) is not None:  # inside another: that one runs them
        yield
        return
    _together.tasks, _together.read, _together.written = [], set(), set()
    try:
        yield
        _run_collected()
    finally:
        _together.tasks = None


def _collect(args: tuple, out: tuple, tasks: list) -> None:
    """Add a formula's blocks to those together() runs at its end; if it reads an array that
    an earlier one writes, or writes one that an earlier one reads (the same parameter given
    twice), those run first."""
    read = {id(a) for a in args if isinstance(a, np.ndarray)}
    written = {id(t) for t in out}
    if read & _together.written or written & _together.read:
        _run_collected()
    _together.tasks += tasks
    _together.read |= read | written
    _together.written |= written


def _run_collected() -> None:
    tasks = _together.tasks
    _together.tasks, _together.read, _together.written = [], set(), set()
    parallel.for_tasks([task for task, _ in tasks], [size for _, size in tasks])


_together = threading.local()  # what together() collects, on the thread that called it


def row_sum(a: Array) -> Array:
    """Σ over the last axis, keeping it (size 1): (..., n) -> (..., 1).

    NumPy's a.sum(axis=-1) is slow over BERT's short rows (n = 128-1536: it reduces each row on
    its own); the same sums as a matrix-vector product a @ ones run in BLAS, several times
    faster. On the GPU (inside `rows`) it is one fused reduction kernel."""
    if isinstance(a, _Lazy):
        return a.reduce("sum")
    if isinstance(a, np.ndarray):
        return (a @ np.ones(a.shape[-1], dtype=a.dtype))[..., None]
    return a.sum(axis=-1, keepdims=True)


def row_mean(a: Array) -> Array:
    """The mean over the last axis, keeping it (size 1): (..., n) -> (..., 1)."""
    if isinstance(a, _Lazy):
        return a.reduce("sum", mean=True)
    return row_sum(a) / a.shape[-1]


def row_max(a: Array) -> Array:
    """The maximum over the last axis, keeping it (size 1): (..., n) -> (..., 1)."""
    if isinstance(a, _Lazy):
        return a.reduce("max")
    return a.max(axis=-1, keepdims=True)


def _on_blocks(formula, args, out=None):
    """formula(*args) on NumPy arrays, a block of rows at a time on the thread pool.

    The formula runs once on stand-ins that record its steps (`_Lazy`, as for the GPU), its
    numbers among them; a `_BlockPlan` made from the record then runs the steps on each block
    with `out=`: into a few block-sized buffers that each thread keeps, and the last ones
    straight into the outputs (new arrays, or `out`). A block's passes stay in the CPU cache,
    and no result is copied. Record and plan are kept per formula (its code) and kind of
    arguments (the arrays' row shapes and dtypes, the numbers' types): a later call records
    nothing, it looks its plan up and runs it on this call's arrays and numbers. (A formula
    that works in place runs as it is, a block at a time; so does one that fits in one block,
    unless it writes into `out` or is at least PLAN_FROM numbers.)"""
    first = next((a for a in args if isinstance(a, np.ndarray) and a.ndim), None)
    if first is None or first.size == 0 or (
            out is None and first.size <= max(first.shape[-1], PLAN_FROM - 1)):
        return _plain(formula, args, out)  # a few rows of new arrays: the plain lines are faster
    lead, count = first.shape[:-1], first.size // first.shape[-1]
    # the arguments with one value (or a row) per row of `first` are cut up: as (rows, n)
    blocks, cuts, kinds = [], [], []
    for a in args:
        cut = isinstance(a, np.ndarray) and a.ndim == first.ndim and a.shape[:-1] == lead
        if not cut and isinstance(a, np.ndarray) and a.ndim > 1 and (a.ndim > 2 or len(a) > 1):
            # it broadcasts other than as one row for all (each head's bias (h, 1, d), rows
            # (T, n) for (B, T, n)): no block of rows takes it, the plain lines run on it all
            return _plain(formula, args, out)
        if cut:
            a = a.reshape(count, a.shape[-1])
        blocks.append(a)
        cuts.append(cut)
        kinds.append((cut, a.shape[1:] if cut else a.shape, a.dtype)
                     if isinstance(a, np.ndarray) else type(a) if isinstance(a, _NUMBERS)
                     else (None, a))
    aliases = () if out is None else tuple(
        next((i for i, a in enumerate(args) if a is target), None) for target in out)
    key = (formula.__code__, aliases, count > 1, *kinds)
    try:  # (a formula that reads values of the function around it: they may change)
        entry = _PLAIN if formula.__closure__ else _RECORDED.get(key)
    except TypeError:  # an argument that is not hashable
        entry = _PLAIN
    if entry is None:
        entry = _RECORDED[key] = _record(formula, blocks, cuts, aliases)
    if entry is _PLAIN:  # no plan: its lines as they are, on the whole arrays
        return _plain(formula, args, out)
    rows = blocks[cuts.index(True)]  # for_blocks cuts the rows of this one (as of the others)
    if entry.plan is None:  # it works in place: run it as it is on each block
        parallel.for_blocks(lambda block: formula(*(
            a[block] if c else a for a, c in zip(blocks, cuts, strict=True))), rows)
        return None
    plan = entry.plan
    inputs = [blocks[i] for i in entry.order]
    outputs = None if out is None else _targets(out, plan, lead, count, args)
    fresh = outputs is None
    if fresh:
        outputs = [np.empty((count,) + shape, dtype=dtype) for shape, dtype in plan.out_shapes]
    if getattr(_together, "tasks", None) is not None and not fresh \
            and parallel.get_num_threads() > 1:  # inside together(): run at its end
        _collect(args, out, [(functools.partial(plan.run, inputs, outputs, block),
                              rows[block].size) for block in parallel.blocks(rows)])
        return out
    parallel.for_blocks(lambda block: plan.run(inputs, outputs, block), rows)
    if out is not None:
        return out if not fresh else _write(out, tuple(o.reshape(lead + o.shape[1:])
                                                       for o in outputs))
    results = tuple(o.reshape(lead + o.shape[1:]) for o in outputs)
    return results if entry.returns_tuple else results[0]


_NUMBERS = (int, float, complex, np.number, np.bool_)  # numbers: inputs of a plan, as arrays
# From how many numbers a formula that fits in one block runs by its plan all the same (in
# place, in a few buffers) rather than as its plain lines (a new array per step). A plan costs
# ~5 µs a call; below ~32k numbers that is more than its in-place steps save. Measured on one
# thread: GELU on 32 x 1536 (one sentence through MiniLM's feed-forward, 22 steps) 171 µs
# plain, 154 µs by plan; add & norm on 32 x 384 34 µs plain, 42 µs by plan.
PLAN_FROM = 1 << 15


def _plain(formula, args, out):
    """The formula's plain lines on the whole arrays; its results into `out`, if given."""
    result = formula(*args)
    return result if out is None else _write(out, result)


def _write(out, result):
    """Each result into its array of `out`; returns `out`."""
    results = result if isinstance(result, tuple) else (result,)
    _check_out_count(out, len(results))
    for target, r in zip(out, results, strict=True):
        target[...] = r
    return out


def _check_out_count(out: tuple, results: int) -> None:
    if len(out) != results:
        raise ValueError(f"out= has {len(out)} arrays for a formula with {results} results; "
                         "give one array per result")


def _targets(out, plan, lead, count, args):
    """The arrays of `out` as (rows, ...) views for a plan to write into, or None when one
    cannot take its result block by block (shape, dtype, layout), or overlaps an argument
    other than itself: then the results go to new arrays first, and are copied."""
    _check_out_count(out, len(plan.out_shapes))
    others = {id(a): a for a in args if isinstance(a, np.ndarray)}
    targets = {id(t): t for t in out}
    if len(targets) < len(out):  # one array for two results
        return None
    for i in targets:
        others.pop(i, None)
    views = []
    for k, (target, (shape, dtype)) in enumerate(zip(out, plan.out_shapes, strict=True)):
        if not isinstance(target, np.ndarray) or target.shape != lead + shape \
                or target.dtype != dtype:
            return None
        flags = target.flags
        if not (flags.c_contiguous and flags.writeable):
            return None
        for a in (*others.values(), *out[k + 1:]):  # each pair once
            if np.may_share_memory(target, a):
                return None
        views.append(target.reshape((count,) + shape))
    return views


class _Recording:
    """What `_on_blocks` keeps of a formula for arguments of one kind: its plan (None: the
    formula works in place), which argument each of the plan's inputs is, and whether it
    returns a tuple."""

    __slots__ = ("plan", "order", "returns_tuple")

    def __init__(self, plan, order=(), returns_tuple=False):
        self.plan, self.order, self.returns_tuple = plan, order, returns_tuple


_PLAIN = _Recording(None)  # no plan: the formula runs as it is, on the whole arrays


def _record(formula: Callable[..., Any], blocks: list, cuts: list, aliases: tuple
            ) -> _Recording:
    """Run `formula` on stand-ins for its arguments (arrays and numbers), and make the plan of
    what it recorded (or find it: equal records share one plan). `aliases`: for each array of
    `out=`, the argument it is (or None). A formula that computes with a number in plain
    Python (math.sqrt(t), `if t > 1`) cannot be recorded for all numbers: `_PLAIN`."""
    wrapped = [_Lazy(None, (a,)) if isinstance(a, (np.ndarray, *_NUMBERS)) else a
               for a in blocks]
    try:
        recorded = formula(*wrapped)
    except TypeError:
        return _PLAIN
    if recorded is None:
        return _Recording(None)  # it works in place
    nodes: list = []
    program, inputs = _program(recorded if isinstance(recorded, tuple) else (recorded,), nodes)
    index = {id(w): i for i, w in enumerate(wrapped)}
    order = tuple(index[id(node)] for node in nodes)
    is_cut = tuple(cuts[i] for i in order)
    slots = tuple(order.index(i) if i in order else None for i in aliases)
    key = (program, is_cut, slots, tuple(
        (x.shape[1:] if c else x.shape, x.dtype.str) if isinstance(x, np.ndarray) else type(x)
        for x, c in zip(inputs, is_cut, strict=True)))
    try:
        plan = _PLANS.get(key)
    except TypeError:  # it computes with an array of its own (recorded as a constant)
        return _PLAIN
    if plan is None:
        plan = _PLANS[key] = _BlockPlan(program, inputs, is_cut, slots)
    return _Recording(plan, order, isinstance(recorded, tuple))


_RECORDED: dict = {}  # _Recording by (formula's code, outputs that are inputs, argument kinds)
_PLANS: dict = {}  # _BlockPlan by (recorded program, which inputs are cut, aliases, row shapes)
_scratch = threading.local()  # each thread's block-sized buffers, reused from block to block


def _buffer(shape, dtype, k, rows):
    """The calling thread's k-th scratch buffer for values of one row `shape` and `dtype`, as
    `rows` rows. (A thread runs one block at a time, so its buffers are free between blocks.)"""
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buf = buffers.get((shape, dtype, k))
    if buf is None or len(buf) < rows:
        buf = buffers[(shape, dtype, k)] = np.empty((rows,) + shape, dtype=dtype)
    return buf[:rows]


def _row_dot(a, b):  # Σ a·b over each row, without the (rows, n) product array
    return np.einsum("ij,ij->i", a, b)[:, None]


def _row_dot_mean(a, b):
    return np.einsum("ij,ij->i", a, b)[:, None] / a.shape[-1]


def _reciprocal(a):  # of row values, or of a number in Python's arithmetic (a float stays one)
    try:
        return 1.0 / a
    except ZeroDivisionError:  # a Python number 0: ±inf, as NumPy's division gives
        return math.copysign(math.inf, a)


class _BlockPlan:
    """A recorded formula (`_program`), compiled to run on NumPy blocks of rows with no new
    arrays but its row values: every step writes (`out=`) into a slot — a thread's scratch
    buffer that no later step still reads (`_buffer`), or the block of an output — worked out
    once here from the shapes the steps give on two rows. These rewrites spare passes over a
    block, as hand-written NumPy would: a row sum of a product, `row_sum(a * b)`, is one
    `einsum` (no product array), and a division by a row value or by a number (AdamW's
    m / (1 − β1^t)) is a multiplication by its reciprocal (one division per row or per block,
    not one per number, which takes 2-3 times as long as a multiplication; the last bit may
    differ); a number times an array times a number, lr·(m·r), is the array times one
    number, m·(lr·r) (one pass, not two; the last bit may differ). And
    `x ** 2` is `square(x)`, as NumPy's own `**` makes it (the same numbers; `power` takes
    3.5 times as long).

    Numbers are inputs like the arrays: a step on numbers alone (AdamW's 1 − β1^t) is computed
    once per block with Python's arithmetic, as the formula's own lines would, so one plan
    serves every learning rate and step t. `aliases[k]`: the input that the k-th output is
    (`out=`), or None; a step writes into such an output's block only once the input's
    values there are read for the last time."""

    def __init__(self, program, inputs, is_cut, aliases=()):
        steps, outs = _reductions_first(program)
        sample = [x[:2] if c else x for x, c in zip(inputs, is_cut, strict=True)]
        rows = len(sample[is_cut.index(True)])
        values: list = []  # each step's value on the two rows: its shape and dtype
        scalar = set()  # the steps on numbers alone
        for j, (op, refs, kwargs) in enumerate(steps):
            args = [sample[v] if kind == "in" else values[v] if kind == "step" else v
                    for kind, v in refs]
            if all(kind == "num" or (kind == "in" and not isinstance(inputs[v], np.ndarray))
                   or (kind == "step" and v in scalar) for kind, v in refs):
                scalar.add(j)
                values.append(_number_function(op)(*args, **dict(kwargs)))
            else:
                values.append(_step_function(op)(*args, **dict(kwargs)))

        def per_row(ref):  # (row shape, dtype) of a value with one row per row, else None
            kind, v = ref
            x = values[v] if kind == "step" else inputs[v] if kind == "in" and is_cut[v] \
                else None
            if x is None or (kind == "step" and (np.ndim(x) != 2 or len(x) != rows)):
                return None
            return x.shape[1:], x.dtype

        def is_number(ref):  # a real number: a constant, a number argument, a step on numbers
            kind, v = ref
            if kind in ("step", "new"):
                return v in (scalar if kind == "step" else numbers_new)
            x = v if kind == "num" else inputs[v]
            return isinstance(x, _NUMBERS) and not isinstance(x, complex | np.complexfloating)

        readers: dict = {}
        for j, (_, refs, _) in enumerate(steps):
            for kind, v in refs:
                if kind == "step":
                    readers.setdefault(v, set()).add(j)
        out_steps = {v for kind, v in outs if kind == "step"}
        # the steps, rewritten: (step it computes, function, argument refs, kwargs, in place?)
        # where a ref ("new", i) is the i-th rewritten step
        rewritten: list = []
        skip = set()  # steps not computed (folded into the step that reads them)
        dropped = set()  # rewritten steps not computed
        numbers_new: set = set()  # rewritten steps that compute a number
        final: dict = {}  # step -> its last rewritten step

        def scaled(ref):  # (array ref, number ref) if `ref` is a step array · number, else None
            if ref[0] != "step" or ref[1] in scalar or readers[ref[1]] != {j} \
                    or ref[1] in out_steps:
                return None
            _, fn_m, refs_m, kw_m, _ = rewritten[final[ref[1]]]
            if fn_m is not np.multiply or kw_m or len(refs_m) != 2:
                return None
            array, number = refs_m if is_number(refs_m[1]) else refs_m[::-1]
            a = per_row(array)
            return (array, number) if is_number(number) and a is not None \
                and a[1].kind == "f" else None

        for j, (op, refs, kwargs) in enumerate(steps):
            fn = _number_function(op) if j in scalar else _step_function(op)
            if op in ("row_sum", "row_mean") and refs[0][0] == "step":
                m = refs[0][1]
                op_m, refs_m, kw_m = steps[m]
                if (op_m == "multiply" and not kw_m and readers[m] == {j} and m not in out_steps
                        and per_row(refs_m[0]) is not None
                        and per_row(refs_m[0]) == per_row(refs_m[1]) == per_row(("step", m))):
                    skip.add(m)  # no product array: one einsum
                    fn, refs = (_row_dot if op == "row_sum" else _row_dot_mean), refs_m
            elif op == "divide" and not kwargs:
                a, b = per_row(refs[0]), per_row(refs[1])
                by_row = (a is not None and b is not None and b[0] == (1,) and a[0] != (1,)
                          and b[1].kind == "f")
                # an array over a number (AdamW's m / (1 − β1^t)): the number's reciprocal
                # once per block, in Python (a division takes 2-3 times as long per number)
                by_number = (a is not None and a[1].kind == "f" and j not in scalar
                             and is_number(refs[1]))
                if by_row or by_number:
                    rewritten.append((j, _reciprocal, (refs[1],), {}, False))
                    if by_number:
                        numbers_new.add(len(rewritten) - 1)
                    fn, refs = np.multiply, (refs[0], ("new", len(rewritten) - 1))
            elif op == "power" and refs[1] == ("num", 2) and j not in scalar:
                fn, refs = np.square, refs[:1]  # as NumPy's x**2 does: 3.5x faster than power
            if fn is np.multiply and not kwargs and j not in scalar and len(refs) == 2:
                # a number times (an array times a number), such as lr·m̂ with m̂ = m/(1 − β1^t):
                # the array times the product of the two numbers, one pass instead of two
                number, other = refs if is_number(refs[0]) else refs[::-1]
                inner = scaled(other) if is_number(number) else None
                if inner is not None:
                    dropped.add(final[other[1]])
                    rewritten.append((j, operator.mul, (inner[1], number), {}, False))
                    numbers_new.add(len(rewritten) - 1)
                    refs = (inner[0], ("new", len(rewritten) - 1))
            in_place = (op not in _ROW_STEPS and op != "astype" and fn is not _row_dot
                        and fn is not _row_dot_mean and per_row(("step", j)) is not None)
            rewritten.append((j, fn, refs, dict(kwargs), in_place))
            final[j] = len(rewritten) - 1
            if j in scalar:
                numbers_new.add(len(rewritten) - 1)
        keep = [i for i, s in enumerate(rewritten) if s[0] not in skip and i not in dropped]

        # slots: the inputs, then one per kept step (its value), then the numbers
        n_in = len(inputs)
        slot_of_new = {i: n_in + p for p, i in enumerate(keep)}
        slot_of_step = {rewritten[i][0]: slot_of_new[i] for i in keep}  # the last wins
        self.inputs = n_in  # slots 0 .. n_in - 1: the inputs, given to each run (never kept)
        self.template: list = [None] * n_in
        self.template += [None] * len(keep)
        self.cut = [i for i in range(n_in) if is_cut[i]]

        def slot(ref):
            kind, v = ref
            if kind == "in":
                return v
            if kind == "step":
                return slot_of_step[v]
            if kind == "new":
                return slot_of_new[v]
            self.template.append(v)  # a number
            return len(self.template) - 1

        self.steps = [(rewritten[i][1], tuple(slot(r) for r in rewritten[i][2]),
                       slot_of_new[i], rewritten[i][3], rewritten[i][4]) for i in keep]
        last_read = {}
        for p, (_, args, _, _, _) in enumerate(self.steps):
            for a in args:
                last_read[a] = p
        end = len(self.steps)
        for kind, v in outs:  # an input returned as it is: read at the end, when it is copied
            if kind == "in":
                last_read[v] = end
        # an output that is an input too holds the input's values until their last reading
        held = {k: last_read.get(a, -1) for k, a in enumerate(aliases) if a is not None}

        # the outputs: an in-place step writes straight into its output's block (if that no
        # longer holds an input still to be read), the rest (inputs, numbers, row values,
        # einsums) is copied there after the steps
        self.outputs, self.copies, self.out_shapes = [], [], []
        owned: dict = {}
        for k, ref in enumerate(outs):
            kind, v = ref
            s = slot(ref)
            x = np.asarray(values[v] if kind == "step" else inputs[v] if kind == "in" else v)
            self.out_shapes.append((x.shape[1:], x.dtype) if per_row(ref) is not None
                                   or (kind == "in" and is_cut[v]) else (x.shape, x.dtype))
            if kind == "step":
                last_read[s] = end  # read at the end
                if self.steps[s - n_in][4] and s not in owned and held.get(k, -1) <= s - n_in:
                    owned[s] = k
                    self.outputs.append((s, k))
                    continue
            self.copies.append((k, s))
        # copied inputs are read before any copy writes (one may be another's output)
        self.snapshots = [s for _, s in self.copies if s < n_in] if held else []

        # every other in-place step writes into an output's block that is not needed yet (the
        # output's own step comes at or after the value's last reader), as hand-written code
        # would work in place in its result; else into a thread's scratch buffer of its (row
        # shape, dtype) that no later step reads. It may be one that this step reads itself
        # (ufuncs allow that).
        defined = {s: p for p, (_, _, s, _, _) in enumerate(self.steps) if s in owned}
        kind_of = {s: per_row(("step", rewritten[keep[p]][0])) for s, p in defined.items()}
        busy = {s: held.get(k, -1) for s, k in owned.items()}  # a block is taken until then
        free: dict = {}
        used: dict = {}  # slot -> (row shape, dtype, k): the k-th buffer of that kind
        self.scratch, self.aliases = [], []
        for p, (_, args, s, _, in_place) in enumerate(self.steps):
            for a in set(args):
                if a in used and last_read[a] == p:
                    free.setdefault(used[a][:2], []).append(used[a][2])
            if not in_place or s in owned:
                continue
            kind, end = per_row(("step", rewritten[keep[p]][0])), last_read.get(s, p)
            fits = [o for o in owned if kind_of[o] == kind and defined[o] >= end
                    and busy[o] <= p]
            if fits:
                o = min(fits, key=defined.get)
                busy[o] = end
                self.aliases.append((s, o))
                continue
            pool = free.get(kind)
            k = pool.pop() if pool else sum(1 for u in used.values() if u[:2] == kind)
            used[s] = kind + (k,)
            self.scratch.append((s,) + used[s])

        self.run = self._compiled()

    def _compiled(self):
        """run(inputs, outputs, rows): the formula on one block of rows (a slice; ... for all)
        of `inputs`, written into `outputs`, as straight-line Python made here: one line per
        step, a name per slot (s0, s1, ...; `self.source` shows it). A block then pays no loop
        over the steps and builds no argument lists: at ~1 µs a step, that was ~5 % of GELU
        (48 blocks x 25 steps)."""
        names: dict = {"buffer": _buffer}
        names.update((f"s{i}", v) for i, v in enumerate(self.template)
                     if i >= self.inputs)  # the numbers (inputs come with each call)
        lines = ["def run(inputs, outputs, rows):",
                 "    block = slice(None) if rows is ... else rows"]
        lines += [f"    s{i} = inputs[{i}][block]" if i in self.cut else f"    s{i} = inputs[{i}]"
                  for i in range(self.inputs)]
        lines.append(f"    size = len(s{self.cut[0]})")
        buffers: dict = {}  # one line per buffer; the steps that share it name it too
        for s, row_shape, dtype, k in self.scratch:
            b = buffers.get((row_shape, dtype, k))
            if b is None:
                b = buffers[(row_shape, dtype, k)] = f"b{len(buffers)}"
                names[f"kind_{b}"] = (row_shape, dtype)
                lines.append(f"    {b} = buffer(*kind_{b}, {k}, size)")
            lines.append(f"    s{s} = {b}")
        lines += [f"    s{s} = outputs[{k}][block]" for s, k in self.outputs]
        lines += [f"    s{s} = s{o}" for s, o in self.aliases]
        for p, (fn, args, s, kwargs, in_place) in enumerate(self.steps):
            names[f"f{p}"] = fn
            call = ", ".join(f"s{a}" for a in args)
            if kwargs:
                names[f"kw{p}"] = kwargs
                call += f", **kw{p}"
            lines.append(f"    f{p}({call}, out=s{s})" if in_place else f"    s{s} = f{p}({call})")
        lines += [f"    s{s} = s{s}.copy()" for s in self.snapshots]
        lines += [f"    outputs[{k}][block] = s{s}" for k, s in self.copies]
        self.source = "\n".join(lines)
        exec(compile(self.source, "<minibert block plan>", "exec"), names)  # noqa: S102
        return names["run"]


def _reductions_first(program):
    """The same program with each row reduction moved up to just after the steps it reads: the
    arrays it reads are then done with sooner, and a later step can overwrite them in place
    (layer_norm's backward needs one block-sized buffer less). The steps compute the same."""
    steps, outs = program
    readers: dict = {}
    for j, (_, refs, _) in enumerate(steps):
        for kind, v in refs:
            if kind == "step":
                readers.setdefault(v, []).append(j)
    for kind, v in outs:
        if kind == "step":
            readers.setdefault(v, []).append(None)

    def key(j):  # a reduction, and a product only a row sum reads (an einsum later), move up
        op, refs, _ = steps[j]
        if op in _ROW_STEPS:
            up = 0.5
        elif op == "multiply" and [steps[r][0] if r is not None else None
                                   for r in readers.get(j, [None])] in (["row_sum"], ["row_mean"]):
            up = 0.25
        else:
            return j
        return max((key(v) for kind, v in refs if kind == "step"), default=-1) + up

    order = sorted(range(len(steps)), key=key)
    new = {j: i for i, j in enumerate(order)}

    def renumber(refs):
        return tuple((kind, new[v]) if kind == "step" else (kind, v) for kind, v in refs)

    return (tuple((steps[j][0], renumber(steps[j][1]), steps[j][2]) for j in order),
            renumber(outs))


def _step_function(op):
    """The NumPy function of a recorded step."""
    return _ROW_STEPS.get(op) or (_astype if op == "astype" else getattr(np, op))


def _number_function(op):
    """The function of a recorded step on numbers alone: Python's operator for arithmetic (a
    Python float stays one, and so keeps float32 arrays float32), else NumPy's."""
    return _OPERATORS.get(op) or _step_function(op)


_OPERATORS = {"add": operator.add, "subtract": operator.sub, "multiply": operator.mul,
              "divide": operator.truediv, "power": operator.pow, "negative": operator.neg,
              "absolute": operator.abs, "greater_equal": operator.ge, "greater": operator.gt,
              "less_equal": operator.le, "less": operator.lt}


def _astype(a, dtype):
    return a.astype(np.dtype(dtype))


def _ones(n, dtype):  # the vector of ones that row sums multiply by, made once per size
    ones = _ONES.get((n, dtype))
    if ones is None:
        ones = _ONES[(n, dtype)] = np.ones(n, dtype=dtype)
        ones.flags.writeable = False
    return ones


_ONES: dict = {}
_ROW_STEPS = {  # row_sum & co. on NumPy blocks (2-D), as row_sum's a @ ones
    "row_sum": lambda a: (a @ _ones(a.shape[-1], a.dtype))[..., None],
    "row_max": lambda a: a.max(axis=-1, keepdims=True),
    "row_mean": lambda a: (a @ _ones(a.shape[-1], a.dtype))[..., None] / a.shape[-1],
}


class _Lazy:
    """A GPU array not computed yet: the formula step that makes it (`op`, None for an input),
    and that step's arguments.

    `rows` runs a formula on these: arithmetic and the array module's functions (`xp.exp`, ...)
    record steps instead of launching a kernel for each. A row reduction then compiles the
    recorded steps and the reduction into one fused kernel (cupy.fuse), and so does `_compute`
    for what the formula returns."""

    __slots__ = ("op", "args", "kwargs")
    __array_priority__ = 200  # `array * lazy` is recorded too (CuPy defers to the higher one)

    def __init__(self, op, args, kwargs=()):
        self.op, self.args, self.kwargs = op, args, tuple(kwargs)

    def reduce(self, name: str, mean: bool = False) -> _Lazy:
        """One fused kernel: the steps up to here, then `name` ("sum", "max") over the last
        axis (divided by its length for a mean); its result is an input of later steps."""
        if isinstance(_array_read(self), np.ndarray):  # recorded for NumPy blocks: a step
            return _Lazy("row_mean" if mean else f"row_{name}", (self,))
        program, inputs = _program([self])
        n = np.broadcast_shapes(*(a.shape for a in inputs))[-1]
        kernel = _fused(get_array_module(*inputs), (name, n if mean else 1, program))
        return _Lazy(None, (kernel(*inputs)[..., None],))

    def astype(self, dtype, copy=True):
        return _Lazy("astype", (self,), (("dtype", np.dtype(dtype).str),))

    def __bool__(self):
        raise TypeError("a formula run by backend.rows cannot branch on array values")


for _method, _ufunc in {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
                      "pow": "power"}.items():
    setattr(_Lazy, f"__{_method}__", lambda self, o, _u=_ufunc: _Lazy(_u, (self, o)))
    setattr(_Lazy, f"__r{_method}__", lambda self, o, _u=_ufunc: _Lazy(_u, (o, self)))
for _method, _ufunc in {"neg": "negative", "abs": "absolute"}.items():
    setattr(_Lazy, f"__{_method}__", lambda self, _u=_ufunc: _Lazy(_u, (self,)))
for _method, _ufunc in {"ge": "greater_equal", "gt": "greater", "le": "less_equal",
                      "lt": "less"}.items():
    setattr(_Lazy, f"__{_method}__", lambda self, o, _u=_ufunc: _Lazy(_u, (self, o)))


class _LazyModule(ModuleType):
    """What `get_array_module` gives for recorded arrays: the array module's elementwise
    functions (ufuncs), recording a step each."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: _Lazy(name, args, sorted(kwargs.items()))


_LAZY_MODULE = _LazyModule("recorded")


def _array_read(node: _Lazy) -> Any:
    """An array that the recorded `node` reads (a number is an input too, on NumPy)."""
    todo = [node]
    while todo:
        node = todo.pop()
        if node.op is None:
            if isinstance(node.args[0], np.ndarray) or is_device_array(node.args[0]):
                return node.args[0]
        else:
            todo.extend(a for a in node.args if isinstance(a, _Lazy))
    return None


def _program(outputs: Any, nodes: list | None = None) -> tuple:
    """The recorded steps that make `outputs`, as a hashable program, and the arrays it reads
    (their stand-ins appended to `nodes`, if given).

    program = (steps, outputs): each step is (op, argument refs, kwargs), a ref being ("in", i)
    (the i-th array read), ("step", j) or ("num", value). Equal programs share one kernel; the
    arrays are passed to it, so a cached kernel keeps none alive."""
    steps: list = []
    inputs: list = []
    refs: dict = {}
    outs = tuple(_visit(o, steps, inputs, refs, nodes) for o in outputs)
    return (tuple(steps), outs), inputs


def _visit(node: Any, steps: list, inputs: list, refs: dict, nodes: list | None = None) -> tuple:
    """The ref of `node`, after recording the steps that make it (for _program). A function of
    the module, not a closure that calls itself: such a closure is a reference cycle, and the
    arrays it holds would wait for the garbage collector instead of being freed at once."""
    if not isinstance(node, _Lazy):
        return ("num", node)
    if id(node) not in refs:
        if node.op is None:
            inputs.append(node.args[0])
            if nodes is not None:
                nodes.append(node)
            refs[id(node)] = ("in", len(inputs) - 1)
        else:
            args = tuple(_visit(a, steps, inputs, refs, nodes) for a in node.args)
            steps.append((node.op, args, node.kwargs))
            refs[id(node)] = ("step", len(steps) - 1)
    return refs[id(node)]


def _run(program, xp, inputs):
    """The program's outputs, computed with `xp` from `inputs` (a tuple of them)."""
    steps, outs = program
    values = []

    def get(ref):
        kind, v = ref
        return inputs[v] if kind == "in" else values[v] if kind == "step" else v

    for op, args, kwargs in steps:
        a = [get(r) for r in args]
        kw = dict(kwargs)
        values.append(a[0].astype(np.dtype(kw["dtype"])) if op == "astype"
                      else getattr(xp, op)(*a, **kw))
    return tuple(get(r) for r in outs)




def _fused(xp, key):
    """The fused kernel (cupy.fuse) for key = (reduction or None, divisor, program)."""
    kernel = _KERNELS.get((xp, key))
    if kernel is None:
        reduction, n, program = key

        def computed(*inputs):
            out = _run(program, xp, inputs)
            if reduction is None:
                return out if len(out) > 1 else out[0]
            reduced = getattr(xp, reduction)(out[0], axis=-1)
            return reduced / n if n != 1 else reduced

        computed.__name__ = f"minibert_{reduction or 'map'}"
        kernel = _KERNELS[(xp, key)] = xp.fuse(computed)
    return kernel


def _compute(xp, result):
    """The arrays a `rows` formula returned (recorded steps): one fused kernel computes all of
    them; inputs and reductions' results come back as they are."""
    parts = result if isinstance(result, tuple) else (result,)
    pending = [p for p in parts if isinstance(p, _Lazy) and p.op is not None]
    if pending:
        program, inputs = _program(pending)
        out = _fused(xp, (None, 1, program))(*inputs)
        computed = iter(out if isinstance(out, tuple) else (out,))
    done = tuple(p if not isinstance(p, _Lazy) else p.args[0] if p.op is None
                 else next(computed) for p in parts)
    return done if isinstance(result, tuple) else done[0]


# ----------------------------------------------------------------------------------------------
# Many arrays as one: flat buffers (the optimizer's, on the GPU)


def flatten(arrays: list[Array]) -> tuple[Array, list[Array]]:
    """(flat, views): one 1-D array holding `arrays` one after the other, and each of them
    again, as a view of `flat` with its own shape.

    A GPU starts a kernel for every call: an optimizer that updates BERT-base's 201 parameter
    tensors one by one starts hundreds, one flat array of them all takes one. Whoever makes
    the views their arrays (parameters, gradients, optimizer state) reads and writes `flat`.
    """
    xp = get_array_module(*arrays)
    flat = xp.concatenate([a.reshape(-1) for a in arrays])
    return flat, views(flat, [a.shape for a in arrays])


def views(flat: Array, shapes: list[tuple[int, ...]]) -> list[Array]:
    """Consecutive pieces of the 1-D array `flat`, as views with the given shapes."""
    out: list[Array] = []
    start = 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out
