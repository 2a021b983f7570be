"""A strict stand-in for CuPy, so that the GPU code path runs in CI on a machine with no GPU.

It computes with NumPy underneath, but its arrays keep CuPy's rules about *where data lives*,
which is what breaks first when NumPy code moves to a GPU:

- no silent copy to the host: ``np.asarray(device_array)`` raises TypeError, as CuPy does
  ("use .get()"); so does any NumPy function called on a device array (call it through ``xp``);
- no mixing: an arithmetic op or an ``xp`` function given a NumPy array raises TypeError
  (CuPy: "Unsupported type <class 'numpy.ndarray'>"); only ``xp.asarray``/``xp.array`` copy
  host -> device, and only ``.get()``/``xp.asnumpy`` copy device -> host;
- its random generator gives a different stream from NumPy's for the same seed, and its state
  cannot be exported (CuPy's cuRAND states cannot either);
- arrays report ``type(a).__module__ == "cupy..."``, so minibert's backend treats them as CuPy.

It also counts, for `benchmarks/bench_gpu.py --count` and the tests: ``counts.launches``, the
kernels a real CuPy would start (every computation on device arrays: an operator, a ufunc, a
reduction, a matmul (plus the copies CuPy makes of operands that cuBLAS cannot read as they
are: ``_matmul_copies``), a copy, a fill; views and ``empty`` start none; a function made by
``fuse`` counts once, as CuPy compiles it into one kernel), and ``counts.syncs``, the device->host
copies that make the host wait for the GPU (``.get()``, ``asnumpy``, ``bool``/``int``/``float``
of an array, ``.item()``, ``.tolist()``). ``fuse`` runs the Python function itself, so the very
lines a fused kernel is compiled from are what the simulation tests; inside it, what
``cupy.fuse`` cannot compile fails as it would there (a sync, ``.shape``, indexing, a non-ufunc
function, a second reduction, ``keepdims``).

What it cannot tell: GPU numerics and speed, CUDA errors, whether GPU kernels give the same
bits from run to run, and whether every function we call exists in CuPy (it forwards any NumPy
name). Those need a real GPU: ``tests/test_gpu.py`` and ``benchmarks/bench_gpu.py``.

Use: ``install()`` makes ``import cupy`` give this module (until ``uninstall()``). The test
suite does that for the "cupy-sim" backend case; ``pytest --cupy`` on a machine without a GPU
runs the whole suite with it as the active backend, as ``MINIBERT_BACKEND=cupy pytest`` does on
a GPU, and carries it into the processes the tests start (``simulated_gpu/sitecustomize.py``).
"""

from __future__ import annotations

import collections
import functools
import numbers
import operator
import os
import sys
import types

import numpy as np

_HOST_ERROR = ("Unsupported type <class 'numpy.ndarray'> (simulated CuPy: a NumPy array met a "
               "device array; copy it over with xp.asarray first)")


class ndarray:  # noqa: N801 - the name CuPy gives its array type
    """A "device" array: a NumPy array that refuses to meet the host implicitly."""

    __array_priority__ = 100  # below minibert's Tensor (1000), so `array * tensor` defers to it
    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray):
        self._a = a

    # -- the two explicit doors between host and device ----------------------------------------
    def get(self) -> np.ndarray:
        _sync("get()")
        return self._a.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly. (simulated CuPy)")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a device array (simulated CuPy); "
                        "call it through the array module xp instead")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy scalars meeting a device array (np.float32(2) * a) are fine in CuPy too
        name = ufunc.__name__ if method == "__call__" else method
        return _call(getattr(ufunc, method), inputs, kwargs, name)

    # -- the NumPy-like surface ----------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ & co: NumPy must not read our data
            raise AttributeError(name)
        value = getattr(self._a, name)
        if name in _SYNCS:  # .item(), .tolist(): the values come to the host

            def read(*args, **kwargs):
                _sync(f".{name}()")
                return value(*args, **kwargs)
            return read
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs, name, self)
        return _wrap(value)

    def __getitem__(self, index):
        _not_in_fuse("indexing")
        index = _unwrap_index(index)
        if any(getattr(i, "dtype", None) == np.bool_ and getattr(i, "ndim", 0)
               for i in (index if isinstance(index, tuple) else (index,))):
            _sync("a boolean mask index")  # how many are true decides the result's size
        return _computed(self._a[index], (self._a,), {})

    def __setitem__(self, index, value):
        _not_in_fuse("indexing")
        self._a[_unwrap_index(index)] = value._a if isinstance(value, ndarray) else value
        _launch()  # a copy (or fill) kernel

    def __len__(self):
        _not_in_fuse("len()")
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        _sync("repr()")
        return "sim" + repr(self._a)

    # size-1 arrays convert to Python numbers (a device sync in CuPy); no __index__ in CuPy
    def __float__(self):
        _sync("float()")
        return float(self._a)

    def __int__(self):
        _sync("int()")
        return int(self._a)

    def __bool__(self):
        _sync("bool()")
        return bool(self._a)

    @property
    def shape(self):
        _not_in_fuse(".shape")  # a fused function sees no shapes: it is compiled for any
        return self._a.shape

    @property
    def size(self):
        _not_in_fuse(".size")
        return self._a.size

    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    T = property(lambda self: ndarray(self._a.T))


def _binary(fn):
    def forward(self, other):
        if not _is_operand(other):
            return NotImplemented  # e.g. a Tensor: Python then asks Tensor.__rop__
        return _operator(fn, self, other, self._a, _unwrap(other))

    def reverse(self, other):
        if not _is_operand(other):
            return NotImplemented
        return _operator(fn, self, other, _unwrap(other), self._a)

    def inplace(self, other):
        if not _is_operand(other):
            return NotImplemented
        if _fuse.depth:
            _fuse_step(getattr(fn, "__name__", "operator"), (self, other), {})
        fn(self._a, _unwrap(other), out=self._a)  # in place, as `a += b` is on a device array
        _launch()
        return self

    return forward, reverse, inplace


for _name, _fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                   "truediv": np.true_divide, "floordiv": np.floor_divide, "mod": np.remainder,
                   "pow": np.power, "matmul": np.matmul, "and": np.bitwise_and,
                   "or": np.bitwise_or, "xor": np.bitwise_xor}.items():
    _f, _r, _i = _binary(_fn)
    setattr(ndarray, f"__{_name}__", _f)
    setattr(ndarray, f"__r{_name}__", _r)
    setattr(ndarray, f"__i{_name}__", _i)
for _name, _fn in {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
                   "gt": operator.gt, "ge": operator.ge}.items():
    setattr(ndarray, f"__{_name}__", _binary(_fn)[0])
for _name, _fn in {"neg": np.negative, "pos": np.positive, "abs": np.abs,
                   "invert": np.invert}.items():
    setattr(ndarray, f"__{_name}__",
            lambda self, _fn=_fn: _operator(_fn, self, None, self._a))
ndarray.__hash__ = None
ndarray.__module__ = "cupy._simulated"  # what minibert's backend looks at to spot a device array


# -- checking and converting arguments ---------------------------------------------------------


def _is_operand(x) -> bool:
    if isinstance(x, np.ndarray):
        raise TypeError(_HOST_ERROR)
    return isinstance(x, ndarray | numbers.Number | np.generic)


def _unwrap(x):
    """Device arrays -> their NumPy data, inside lists/tuples/dicts too; host arrays -> error."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(_HOST_ERROR)
    if isinstance(x, list | tuple):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _unwrap_index(index):
    # CuPy accepts host integer arrays and lists as indices (it copies them over)
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    return index._a if isinstance(index, ndarray) else index


def _wrap(x):
    if isinstance(x, np.ndarray):
        return ndarray(x)
    if isinstance(x, np.generic):
        return ndarray(np.asarray(x))  # CuPy gives 0-d device arrays where NumPy gives scalars
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _arrays(x) -> list:
    """The NumPy data of every device array in x (nested in lists, tuples and dicts too)."""
    if isinstance(x, ndarray):
        return [x._a]
    if isinstance(x, list | tuple):
        return [a for v in x for a in _arrays(v)]
    if isinstance(x, dict):
        return [a for v in x.values() for a in _arrays(v)]
    return []


def _call(fn, args, kwargs, name=None, self=None):
    """fn(*args, **kwargs) on the NumPy data; counted as a launch unless it only made a view."""
    name = name or getattr(fn, "__name__", "")
    operands = (() if self is None else (self,)) + tuple(args)
    if _fuse.depth:
        _fuse_step(name, operands, kwargs)
    inputs = _arrays(operands) + _arrays(kwargs)
    if name in _DATA_SIZED:
        _sync(f"{name}()")  # the size of the result: CuPy reads it back before allocating
    if name == "matmul" and not _fuse.depth:
        _matmul_copies(*_unwrap(args)[:2])
    result = fn(*_unwrap(args), **_unwrap(kwargs))
    if name in _NO_KERNEL:  # allocations, shape queries
        return _wrap(result)
    if _is_ufunc_name(name) and kwargs.get("out") is None:
        result = _c_order(result)
    return _computed(result, inputs, kwargs)


def _computed(result, inputs, kwargs):
    """Wrap a result, counting one launch unless it is only a view of an input (reshape,
    transpose, a slice, astype to the same dtype) or no array at all."""
    made = [r for r in (result if isinstance(result, tuple | list) else (result,))
            if isinstance(r, np.ndarray | np.generic)]
    if made and (kwargs.get("out") is not None or not all(
            isinstance(r, np.ndarray) and any(np.may_share_memory(r, a) for a in inputs)
            for r in made)):
        _launch()
    out = _wrap(result)
    if _fuse.depth and _fuse.reduced:
        _fuse.postmap.update(id(o) for o in (out if isinstance(out, tuple | list) else (out,)))
    return out


def _operator(fn, a, b, *data):
    """An arithmetic or comparison operator on device data: always one kernel (a matrix product
    may need more: _matmul_copies)."""
    if _fuse.depth:
        _fuse_step(getattr(fn, "__name__", "operator"), (a, b), {})
    elif fn is np.matmul:
        _matmul_copies(*data)
    return _computed(_c_order(fn(*data)), (), {})


def _c_order(result):
    """A new array as CuPy lays it out: an elementwise kernel writes its result in C order
    (NumPy keeps the order of its input, e.g. a transposed one), which decides whether a later
    matrix product must copy it (_matmul_copies)."""
    if isinstance(result, tuple):
        return tuple(_c_order(r) for r in result)
    if isinstance(result, np.ndarray) and not result.flags.c_contiguous:
        return np.ascontiguousarray(result)
    return result


def _matmul_copies(a, b) -> None:
    """The kernels CuPy's matmul starts besides the product (cupy/_core/_routines_linalg.pyx):
    cuBLAS reads each matrix in row- or column-major order, so
    - two matrices (`dot`): an operand in neither order (e.g. a strided slice x[:, 0]) is
      copied first (`_mat_to_cublas_contiguous`); a transposed one is read as it is;
    - stacks of matrices: each operand not in C order (a transposed view such as kᵀ, the heads
      of a (B, T, h, d) array seen as (B, h, T, d)) is copied (`ascontiguousarray`), and when
      one side is broadcast over the other's batch axes, pointer arrays are built for the
      batched call: one kernel per operand and result, and one more per batch axis past the
      first (`_mat_ptrs`)."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return
    ndim = max(a.ndim, b.ndim)
    if ndim <= 2:
        copies = sum(x.ndim == 2 and not (x.flags.c_contiguous or x.flags.f_contiguous)
                     for x in (a, b))
    else:
        copies = sum(not x.flags.c_contiguous for x in (a, b))
        lead_a = (1,) * (ndim - a.ndim) + a.shape[:-2]
        lead_b = (1,) * (ndim - b.ndim) + b.shape[:-2]
        if any(m != n and 1 in (m, n) for m, n in zip(lead_a, lead_b, strict=True)):
            copies += 3 * (ndim - 2)
    for _ in range(copies):
        _launch()


# -- counting launches and syncs -----------------------------------------------------------------


class Counts:
    """What the simulated GPU was asked to do since the last `reset()`."""

    def __init__(self):
        self.reset()

    def reset(self, sites: bool = False) -> None:
        """Start counting from 0; `sites=True` also records where in minibert each launch and
        sync comes from (`counts.sites`: {"file.py:line function": n}), to see where they go."""
        self.launches = 0  # kernels a real CuPy would start (a fused function: one)
        self.syncs = 0  # device->host copies: the host waits for the GPU each time
        self.sites = collections.Counter() if sites else None

    def _record(self, kind: str) -> None:
        if self.sites is None:
            return
        frame = sys._getframe(2)
        while frame is not None and f"{os.sep}minibert{os.sep}" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None:
            where = os.path.basename(frame.f_code.co_filename)
            self.sites[f"{kind} {where}:{frame.f_lineno} {frame.f_code.co_name}"] += 1

    def __repr__(self):
        return f"Counts(launches={self.launches}, syncs={self.syncs})"


counts = Counts()

# reading values on the host: `a.item()`, `a.tolist()`
_SYNCS = {"item", "tolist", "tobytes"}
# results whose size depends on the values: CuPy copies a count back to the host first
_DATA_SIZED = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"}
# these start no kernel: allocations and queries
_NO_KERNEL = {"empty", "empty_like", "shape", "ndim", "size", "result_type", "get_array_module"}


def _launch() -> None:
    if not _fuse.depth:  # inside a fused function the whole call counts once
        counts.launches += 1
        counts._record("launch")


def _sync(what: str) -> None:
    if _fuse.depth:
        raise TypeError(f"Cannot convert to Python scalar in cupy.fuse ({what} on a value "
                        "inside a fused function; simulated)")
    counts.syncs += 1
    counts._record("sync")


# -- cupy.fuse: the Python function, checked for what CuPy can compile, counted once ------------

_fuse = types.SimpleNamespace(depth=0, reduced=False, postmap=set())
# what a fused function may call besides ufuncs and operators: reductions over one axis (or all)
_REDUCTIONS = {"sum", "max", "min", "prod", "amax", "amin", "all", "any"}
_FUSABLE_METHODS = {"astype", "copy"}


def _not_in_fuse(what: str) -> None:
    if _fuse.depth:
        raise TypeError(f"{what} is not supported inside cupy.fuse (simulated): a fused "
                        "function sees values one element at a time")


def _fuse_step(name: str, operands, kwargs) -> None:
    """Check one step of a fused function against what cupy.fuse compiles: ufuncs and
    operators, at most one reduction (with `axis`, no `keepdims`), and after it only work on
    the reduced values."""
    arrays = [a for a in operands if isinstance(a, ndarray)]
    if name in _REDUCTIONS:
        if kwargs.get("keepdims"):
            raise TypeError(f"{name}(keepdims=True) is not supported inside cupy.fuse "
                            "(simulated): reduce with axis=, then add the axis outside")
        if _fuse.reduced:
            raise NotImplementedError("Multiple reduction is not implemented yet (simulated "
                                      "cupy.fuse: one reduction per fused function)")
        _fuse.reduced = True
        return
    if name not in _FUSABLE_METHODS and not _is_ufunc_name(name):
        raise TypeError(f"{name} cannot run inside cupy.fuse (simulated): only ufuncs, "
                        "operators and one reduction can")
    if _fuse.reduced and any(id(a) not in _fuse.postmap for a in arrays):
        raise ValueError("Shape mismatch (simulated cupy.fuse: after its reduction a fused "
                         "function can only work on the reduced values)")


def _is_ufunc_name(name: str) -> bool:
    if name == "matmul":  # a ufunc in NumPy, but a cuBLAS call in CuPy
        return False
    return isinstance(getattr(np, name, None), np.ufunc) or name in (
        "eq", "ne", "lt", "le", "gt", "ge", "where")


class _Fused:
    """What `fuse` returns: the function, run on the simulated arrays, counted as one kernel."""

    def __init__(self, fn):
        self._fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args):
        if not any(isinstance(a, ndarray) for a in args):
            return self._fn(*args)  # no device array: CuPy runs the Python function as is
        for a in args:
            if not isinstance(a, ndarray | numbers.Number | np.generic) and a is not None:
                raise TypeError(f"Invalid argument type for '{self.__name__}': {type(a)} "
                                "(simulated cupy.fuse takes arrays and scalars)")
        if _fuse.depth:
            return self._fn(*args)  # a fused function called inside another: inlined
        _fuse.depth, _fuse.reduced, _fuse.postmap = 1, False, set()
        try:
            out = self._fn(*args)
            reduced = _fuse.reduced
        finally:
            _fuse.depth, _fuse.reduced, _fuse.postmap = 0, False, set()
        _launch()
        if not reduced and out is not None:  # elementwise: outputs take the broadcast shape
            shape = np.broadcast_shapes(*(a._a.shape for a in args if isinstance(a, ndarray)))
            out = _wrap(tuple(np.broadcast_to(o._a, shape).copy() if o._a.shape != shape
                              else o._a for o in (out if isinstance(out, tuple) else (out,))))
            out = out if len(out) > 1 else out[0]
        return out


def fuse(*args, **kwargs):
    """cupy.fuse: ``@fuse``, ``@fuse()`` or ``@fuse(kernel_name=...)``."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return _Fused(args[0])
    return _Fused


# -- the module: `cupy.<name>` -------------------------------------------------------------------


class _Ufunc:
    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs, self.__name__)

    def at(self, a, indices, b=None):
        _not_in_fuse(f"{self.__name__}.at")
        self._ufunc.at(_unwrap(a), _unwrap_index(indices), _unwrap(b) if b is not None else b)
        _launch()

    def __getattr__(self, method):  # reduce, accumulate, outer
        fn = getattr(self._ufunc, method)
        return lambda *args, **kwargs: _call(fn, args, kwargs, f"{self.__name__}.{method}")


def asarray(a, dtype=None, order=None):
    """host or device -> device (the one door from the host, with `array`)."""
    _not_in_fuse("asarray")
    if isinstance(a, ndarray):
        if dtype is None:
            return a
        return _computed(a._a.astype(dtype, copy=False), (a._a,), {})
    return ndarray(np.array(a, dtype=dtype, order=order))  # always a copy: new device memory


def array(a, dtype=None, copy=True, order="K"):
    _not_in_fuse("array")
    if isinstance(a, ndarray):
        return _computed(np.array(a._a, dtype=dtype, copy=copy, order=order), (a._a,), {})
    return ndarray(np.array(a, dtype=dtype, order=order))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


class _Generator:
    """cupy.random.Generator's methods that minibert uses, on a different stream than NumPy."""

    def __init__(self, seed):
        self._g = np.random.Generator(np.random.SFC64(seed))
        self.bit_generator = types.SimpleNamespace(state=lambda: 0)  # a method, as in CuPy

    def random(self, size=None, dtype=np.float64):
        return _drawn(self._g.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=np.float64):
        return _drawn(self._g.standard_normal(size, dtype=dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _drawn(np.asarray(self._g.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _drawn(self._g.integers(low, high, size, dtype, endpoint))


def _drawn(values) -> ndarray:
    _not_in_fuse("random numbers")
    _launch()  # one generator kernel
    return ndarray(np.asarray(values))


_global = _Generator(0)
random = types.SimpleNamespace(default_rng=_Generator, Generator=_Generator,
                               random=_global.random, standard_normal=_global.standard_normal)

_synchronizable = types.SimpleNamespace(synchronize=lambda: None)
cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    Device=lambda device=0: _synchronizable,
    Stream=types.SimpleNamespace(null=_synchronizable),
    get_current_stream=lambda: _synchronizable,
)

_PLAIN = {"dtype", "finfo", "iinfo", "result_type", "can_cast", "newaxis", "pi", "e", "inf",
          "nan", "issubdtype", "floating", "integer", "number", "bool_"}


def __getattr__(name):
    """Any other name: NumPy's, with the device rules applied to its arguments and results."""
    value = getattr(np, name)  # AttributeError for names NumPy lacks
    if isinstance(value, np.ufunc):
        return _Ufunc(value)
    if name in _PLAIN or isinstance(value, type) or not callable(value):
        return value  # dtypes, constants, finfo: the same objects in CuPy
    return lambda *args, **kwargs: _call(value, args, kwargs, name)


# -- installing it as `cupy` -------------------------------------------------------------------

_saved: list = []


def install() -> None:
    """Make `import cupy` give this simulator (and forget any CuPy minibert cached)."""
    _saved.append(sys.modules.get("cupy"))
    sys.modules["cupy"] = sys.modules[__name__]
    _forget_cached_cupy()


def is_installed() -> bool:
    return sys.modules.get("cupy") is sys.modules[__name__]


def uninstall() -> None:
    previous = _saved.pop()
    if previous is None:
        sys.modules.pop("cupy", None)
    else:
        sys.modules["cupy"] = previous
    _forget_cached_cupy()


def _forget_cached_cupy() -> None:
    backend = sys.modules.get("minibert.backend")  # not imported yet at interpreter start-up
    if backend is not None:
        backend._cupy = None
