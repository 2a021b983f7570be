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

What it cannot tell: GPU numerics and speed, CUDA errors, whether GPU kernels give the same
bits from run to run, and whether every function we call exists in CuPy (it forwards any NumPy
name). Those need a real GPU: ``tests/test_gpu.py`` and ``benchmarks/bench_gpu.py``.

Use: ``install()`` makes ``import cupy`` give this module (until ``uninstall()``). The test
suite does that for the "cupy-sim" backend case; ``pytest --cupy`` on a machine without a GPU
runs the whole suite with it as the active backend, as ``MINIBERT_BACKEND=cupy pytest`` does on
a GPU, and carries it into the processes the tests start (``simulated_gpu/sitecustomize.py``).
"""

from __future__ import annotations

import numbers
import operator
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
        return self._a.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly. (simulated CuPy)")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a device array (simulated CuPy); "
                        "call it through the array module xp instead")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy scalars meeting a device array (np.float32(2) * a) are fine in CuPy too
        return _call(getattr(ufunc, method), inputs, kwargs)

    # -- the NumPy-like surface ----------------------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ & co: NumPy must not read our data
            raise AttributeError(name)
        value = getattr(self._a, name)
        if callable(value):
            return lambda *args, **kwargs: _call(value, args, kwargs)
        return _wrap(value)

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap_index(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap_index(index)] = value._a if isinstance(value, ndarray) else value

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        return "sim" + repr(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    # size-1 arrays convert to Python numbers (a device sync in CuPy); no __index__ in CuPy
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: ndarray(self._a.T))


def _binary(fn):
    def forward(self, other):
        if not _is_operand(other):
            return NotImplemented  # e.g. a Tensor: Python then asks Tensor.__rop__
        return _wrap(fn(self._a, _unwrap(other)))

    def reverse(self, other):
        if not _is_operand(other):
            return NotImplemented
        return _wrap(fn(_unwrap(other), self._a))

    def inplace(self, other):
        if not _is_operand(other):
            return NotImplemented
        fn(self._a, _unwrap(other), out=self._a)  # in place, as `a += b` is on a device array
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
    setattr(ndarray, f"__{_name}__", lambda self, _fn=_fn: _wrap(_fn(self._a)))
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


def _call(fn, args, kwargs):
    return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))


# -- the module: `cupy.<name>` -------------------------------------------------------------------


class _Ufunc:
    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs)

    def at(self, a, indices, b=None):
        self._ufunc.at(_unwrap(a), _unwrap_index(indices), _unwrap(b) if b is not None else b)

    def __getattr__(self, method):  # reduce, accumulate, outer
        fn = getattr(self._ufunc, method)
        return lambda *args, **kwargs: _call(fn, args, kwargs)


def asarray(a, dtype=None, order=None):
    """host or device -> device (the one door from the host, with `array`)."""
    if isinstance(a, ndarray):
        return ndarray(a._a.astype(dtype, copy=False) if dtype is not None else a._a)
    return ndarray(np.array(a, dtype=dtype, order=order))  # always a copy: new device memory


def array(a, dtype=None, copy=True, order="K"):
    if isinstance(a, ndarray):
        return ndarray(np.array(a._a, dtype=dtype, copy=copy, order=order))
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
        return ndarray(np.asarray(self._g.random(size, dtype=dtype)))

    def standard_normal(self, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._g.standard_normal(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return ndarray(np.asarray(self._g.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return ndarray(np.asarray(self._g.integers(low, high, size, dtype, endpoint)))


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
    return lambda *args, **kwargs: _call(value, args, kwargs)


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
