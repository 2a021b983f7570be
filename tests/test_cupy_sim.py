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
