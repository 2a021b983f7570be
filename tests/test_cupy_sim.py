"""The simulated CuPy refuses what CuPy refuses, so a "cupy-sim" test case can fail.

If these pass, a host/device mix-up in minibert (a NumPy array meeting a device array, a NumPy
function called on one, a silent copy to the host) fails the "cupy-sim" cases in CI, as it
would fail on a GPU.
"""

import json

import numpy as np
import pytest

import cupy_sim as cp
import minibert
from minibert import backend


def test_no_silent_copy_to_the_host():
    a = cp.asarray(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="through the array module"):
        np.concatenate([a, a])
    assert isinstance(a.get(), np.ndarray) and a.get().tolist() == [0.0, 1.0, 2.0]
    assert cp.asnumpy(a * 2).tolist() == [0.0, 2.0, 4.0]


def test_host_and_device_arrays_do_not_mix():
    a, host = cp.asarray(np.ones(3)), np.ones(3)
    for mix in (lambda: a + host, lambda: host + a, lambda: cp.where(host > 0, a, a),
                lambda: cp.concatenate([a, host])):
        with pytest.raises(TypeError, match="numpy.ndarray"):
            mix()
    a += 1  # device with device, and with scalars (NumPy's too), is fine
    assert (np.float32(2) * a).get().tolist() == [4.0] * 3


def test_reductions_stay_on_the_device_like_cupy():
    s = cp.asarray(np.arange(4.0)).sum()
    assert isinstance(s, cp.ndarray) and s.shape == () and float(s) == 6.0


@pytest.fixture
def simulation_as_backend():
    """The simulation as minibert's active backend for one test, whatever the suite runs on.

    With a real CuPy as the backend (`pytest --cupy` on a GPU), minibert would put a tensor's
    data in the real CuPy, and the simulation's arrays must not meet those (they cannot be
    converted into each other, as a NumPy array cannot meet either)."""
    previous = backend.get_backend()
    cp.install()
    try:
        backend.use_backend("cupy")
        yield
    finally:
        cp.uninstall()
        backend.use_backend(previous)


def test_a_tensor_on_the_other_side_gets_its_turn(simulation_as_backend):
    t = minibert.tensor([1.0, 2.0])
    assert isinstance(t.data, cp.ndarray)
    out = cp.asarray(np.ones(2, dtype=np.float32)) * t  # ndarray defers: Tensor.__rmul__
    assert isinstance(out, minibert.Tensor) and out.data.get().tolist() == [1.0, 2.0]


def test_generator_is_seeded_but_not_numpys_stream_and_not_exportable():
    a = cp.random.default_rng(7).random(4).get()
    assert np.array_equal(a, cp.random.default_rng(7).random(4).get())
    assert not np.array_equal(a, np.random.default_rng(7).random(4))
    with pytest.raises(TypeError):
        json.dumps(cp.random.default_rng(7).bit_generator.state)  # as with cuRAND: no state


# -- counting launches and syncs (benchmarks/bench_gpu.py --count) ------------------------------


def counted(fn):
    cp.counts.reset()
    result = fn()
    return result, (cp.counts.launches, cp.counts.syncs)


def test_each_computation_is_one_launch_and_views_are_none():
    a = cp.asarray(np.arange(12.0).reshape(3, 4))
    assert counted(lambda: a + 1)[1] == (1, 0)
    assert counted(lambda: cp.exp(a).sum(axis=-1))[1] == (2, 0)
    assert counted(lambda: a @ a.T)[1] == (1, 0)
    assert counted(lambda: (a.reshape(4, 3), a.T, a[1:], a.astype(a.dtype, copy=False)))[1] \
        == (0, 0)
    assert counted(lambda: cp.empty((3, 4)))[1] == (0, 0)  # memory, no kernel
    assert counted(lambda: cp.zeros((3, 4)))[1] == (1, 0)  # a fill kernel
    assert counted(lambda: a.T.reshape(-1))[1] == (1, 0)  # not a view: a copy kernel

    def add_in_place():
        a[0] = 5.0  # a fill
        b = a
        b += 1  # in place: one kernel
        a[1:] += 1  # a view's += (1), then the copy back that `x[i] += ...` makes (1)
    assert counted(add_in_place)[1] == (4, 0)
    assert counted(lambda: cp.random.default_rng(0).random(4))[1] == (1, 0)


def test_a_matrix_product_also_counts_the_copies_cupy_makes_of_its_operands():
    # cupy/_core/_routines_linalg.pyx: two matrices go to cuBLAS in row- or column-major order
    # as they are, anything else is copied first; stacks of matrices must be in C order
    a = cp.asarray(np.arange(24.0).reshape(4, 6))
    assert counted(lambda: a @ a.T)[1] == (1, 0)  # a transposed matrix is read as it is
    assert counted(lambda: a[:, :3] @ a[:3])[1] == (2, 0)  # a strided slice is copied
    s = cp.asarray(np.arange(48.0).reshape(2, 4, 6))
    assert counted(lambda: s @ s.swapaxes(-1, -2))[1] == (2, 0)  # kᵀ of a stack: copied
    heads = s.reshape(2, 4, 2, 3).transpose(0, 2, 1, 3)  # (B, T, h, d) seen as (B, h, T, d)
    assert counted(lambda: cp.matmul(heads, heads.swapaxes(-1, -2)))[1] == (3, 0)
    # an elementwise result is written in C order, as CuPy does: no copy for it
    ones = cp.ones((2, 2, 3, 1))
    assert counted(lambda: (heads * 2.0) @ ones)[1] == (2, 0)
    # a matrix broadcast over a stack: pointer arrays for the batched call (3 kernels)
    w = cp.asarray(np.ones((6, 5)))
    assert counted(lambda: s @ w)[1] == (4, 0)
    assert counted(lambda: s @ a.T)[1] == (5, 0)  # and a transposed one is copied there


def test_reading_values_on_the_host_counts_a_sync():
    a = cp.asarray(np.arange(4.0))
    for read in (a.get, lambda: cp.asnumpy(a), lambda: float(a.sum()), lambda: bool(a.any()),
                 lambda: int(a.max()), lambda: a[0].item(), a.tolist, lambda: a[a > 1],
                 lambda: cp.flatnonzero(a)):
        assert counted(read)[1][1] == 1
    assert counted(lambda: cp.asarray(np.ones(3)))[1] == (0, 0)  # an upload waits for nothing


def _gelu(x):
    return x * 0.5 * (1 + cp.tanh(x * 0.8))


def test_a_fused_function_runs_its_python_body_and_counts_once():
    x = cp.asarray(np.linspace(-3, 3, 7))
    fused = cp.fuse(_gelu)
    y, n = counted(lambda: fused(x))
    assert n == (1, 0)
    np.testing.assert_array_equal(y.get(), _gelu(x).get())
    row_sum = cp.fuse(lambda x, m: cp.exp(x - m).sum(axis=-1))  # one final reduction: fine
    assert counted(lambda: row_sum(x.reshape(1, 7), 1.0))[1] == (1, 0)


@pytest.mark.parametrize("body,error", [
    (lambda x: x * bool(x.max()), "Python scalar"),  # a sync
    (lambda x: x / x.shape[-1], "shape"),
    (lambda x: x[0] + 1, "indexing"),
    (lambda x: x @ x, "matmul"),
    (lambda x: x - x.max(axis=-1, keepdims=True), "keepdims"),
    (lambda x: x.sum(axis=-1) + x.max(axis=-1), "Multiple reduction"),
    (lambda x: x.sum(axis=-1) + x, "Shape mismatch"),
])
def test_a_fused_function_refuses_what_cupy_fuse_cannot_compile(body, error):
    x = cp.asarray(np.ones((2, 3)))
    with pytest.raises((TypeError, ValueError, NotImplementedError), match=error):
        cp.fuse(body)(x)
    assert counted(lambda: x + 1)[1] == (1, 0)  # and the next call is counted as usual
