"""The backend: one place that chooses NumPy or CuPy."""

import os
import subprocess
import sys

import numpy as np
import pytest

import minibert
from minibert import backend


def test_default_backend_is_numpy():
    env = {k: v for k, v in os.environ.items() if k != "MINIBERT_BACKEND"}
    code = "import minibert, numpy; print(minibert.get_backend(), minibert.backend.xp() is numpy)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["numpy", "True"]


def test_unknown_backend_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        minibert.use_backend("tpu")


@pytest.mark.skipif(backend.cupy_available(), reason="CuPy works here; the error path is moot")
def test_asking_for_cupy_without_it_says_so():
    with pytest.raises(minibert.BackendError, match="(?i)cupy"):
        minibert.use_backend("cupy")
    assert backend.get_backend() == "numpy"  # a failed switch leaves the backend unchanged


def test_environment_variable_selects_backend():
    env = dict(os.environ, MINIBERT_BACKEND="cpu")
    out = subprocess.run(
        [sys.executable, "-c", "import minibert; print(minibert.get_backend())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "numpy"
    env["MINIBERT_BACKEND"] = "nonsense"
    bad = subprocess.run([sys.executable, "-c", "import minibert"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown backend 'nonsense'" in bad.stderr


def test_to_numpy_and_array_module_of_numpy_arrays():
    a = np.arange(3)
    assert backend.get_array_module(a) is np
    assert backend.to_numpy([1, 2]).tolist() == [1, 2]


def test_scatter_add_adds_repeated_indices(backend_name):
    xp = backend.xp()
    target = xp.zeros((4, 2), dtype=np.float32)
    backend.scatter_add(target, xp.asarray([1, 1, 3]), xp.ones((3, 2), dtype=np.float32))
    assert backend.to_numpy(target)[:, 0].tolist() == [0, 2, 0, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_add_of_rows_matches_numpy_add_at(backend_name, dtype):
    # Embedding-shaped: (N,) ids with many repeats into a (V, H) table. On the GPU this takes
    # the sorted, fixed-order path; it must give add.at's sums.
    rng = np.random.default_rng(3)
    ids, rows = rng.integers(0, 9, 200), rng.standard_normal((200, 5)).astype(dtype)
    start = rng.standard_normal((12, 5)).astype(dtype)
    expected = start.copy()
    np.add.at(expected, ids, rows)
    xp = backend.xp()
    target = xp.asarray(start)
    backend.scatter_add(target, xp.asarray(ids), xp.asarray(rows))
    # float32: add.at rounds after each of ~20 additions, the sorted path once (in float64)
    np.testing.assert_allclose(backend.to_numpy(target), expected,
                               atol=2e-6 if dtype == np.float32 else 1e-12)
    target = xp.zeros((3, 3), dtype=dtype)  # a tuple index: the general path
    backend.scatter_add(target, (xp.asarray([0, 0, 2]), xp.asarray([1, 1, 2])),
                        xp.ones(3, dtype=dtype))
    assert backend.to_numpy(target)[0, 1] == 2.0 and backend.to_numpy(target)[2, 2] == 1.0


def test_manual_seed_makes_the_global_generator_reproducible(backend_name):
    minibert.manual_seed(123)
    a = backend.to_numpy(backend.rng().random(5))
    minibert.manual_seed(123)
    b = backend.to_numpy(backend.rng().random(5))
    minibert.manual_seed(124)
    c = backend.to_numpy(backend.rng().random(5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
