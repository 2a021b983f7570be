"""The one place that knows about NumPy versus CuPy.

Every array in minibert lives on the *active backend*: NumPy (CPU, the default) or CuPy (an
NVIDIA GPU). CuPy copies NumPy's API, so the rest of the code asks this module for the array
module (`xp`) and then writes ordinary NumPy code with it — `xp.exp`, `xp.matmul`, ... — and the
very same lines run on either device. No other module imports cupy.

Switch with ``minibert.use_backend("cupy")`` or the environment variable
``MINIBERT_BACKEND=cupy`` (read once, by ``import minibert``).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

# In type hints: an array on the active backend (numpy.ndarray, or cupy.ndarray on a GPU: CuPy is
# optional, so the type is spelled Any), and anything that becomes one (an array, nested lists).
Array: TypeAlias = Any
ArrayLike: TypeAlias = Any

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
    """The array module that owns these arrays: cupy if any is a CuPy array, else numpy."""
    for a in arrays:
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
    path sorts the ids and sums each run of equal ids in a fixed order instead.
    """
    xp = get_array_module(target)
    if xp is np or isinstance(indices, tuple) or getattr(indices, "ndim", 0) != 1 \
            or indices.dtype.kind not in "iu":
        xp.add.at(target, indices, values)
        return
    ids = xp.asarray(indices)
    rows = values.reshape((ids.size,) + target.shape[1:])
    order = xp.argsort(ids)
    ids, rows = ids[order], rows[order]
    starts = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), ids[1:] != ids[:-1]]))
    # Sum of rows[a:b] = running_sum[b] - running_sum[a], with the running sum in float64 so
    # that the differences keep full float32 precision.
    running = xp.cumsum(rows, axis=0, dtype=np.float64)
    running = xp.concatenate([xp.zeros((1,) + running.shape[1:], dtype=np.float64), running])
    ends = xp.concatenate([starts[1:], xp.asarray([ids.size])])
    target[ids[starts]] += (running[ends] - running[starts]).astype(target.dtype)  # unique rows


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
