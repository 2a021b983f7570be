"""parallel.py: elementwise work in blocks, and stacks of matmuls, on a few threads. Same numbers
whatever the threads."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import minibert
import minibert.functional as F
from minibert import parallel, process_settings


@pytest.fixture
def threads():
    """Set the thread count inside a test; the previous setting comes back afterwards."""
    before = minibert.get_num_threads()
    yield minibert.set_num_threads
    minibert.set_num_threads(before)


def test_blocks_cover_every_row_once_with_whole_rows(threads):
    threads(3)
    a = np.zeros((1000, 300), dtype=np.float32)
    seen = []

    def work(rows):
        a[rows] += 1.0
        seen.append(a[rows].shape[1])

    parallel.for_blocks(work, a, block=3000)  # 10 rows per block
    assert np.all(a == 1.0) and len(seen) == 100 and set(seen) == {300}


def test_results_come_back_in_the_order_of_the_rows(threads):
    threads(3)  # three threads, each with a run of blocks
    starts = parallel.for_blocks(lambda rows: rows.start, np.zeros((1000, 300)), block=3000)
    assert starts == list(range(0, 1000, 10))


def test_a_small_array_is_one_call():
    calls = []
    parallel.for_blocks(calls.append, np.zeros(10))
    assert calls == [...]


def test_an_error_in_a_block_reaches_the_caller(threads):
    threads(2)

    def work(rows):
        raise RuntimeError("block failed")

    with pytest.raises(RuntimeError, match="block failed"):
        parallel.for_blocks(work, np.zeros(1 << 20), block=1 << 16)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="integer >= 1"):
        minibert.set_num_threads(bad)


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setenv("MINIBERT_NUM_THREADS", "3")
    assert parallel._threads_from_environment() == 3
    monkeypatch.delenv("MINIBERT_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert parallel._threads_from_environment() == 2
    monkeypatch.setenv("MINIBERT_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="MINIBERT_NUM_THREADS='many'"):
        parallel._threads_from_environment()


def _ops_and_grads(x, gamma, beta):
    """Outputs and input gradients of the blocked ops, on large inputs (many blocks)."""
    xt = minibert.tensor(x, requires_grad=True)
    g, b = (minibert.tensor(v, requires_grad=True) for v in (gamma, beta))
    stack = xt.reshape(8, 8, *x.shape[1:])  # a stack of 64 matrices, as attention has
    outs = [F.gelu(xt), F.softmax(xt), F.layer_norm(xt, g, b),
            F.linear(xt, minibert.tensor(np.eye(x.shape[-1], dtype=np.float32)), b),
            stack @ stack.swapaxes(-1, -2)]
    sum(((o * o).sum() for o in outs), start=minibert.tensor(0.0)).backward()
    return [o.numpy() for o in outs] + [minibert.to_numpy(t.grad) for t in (xt, g, b)]


def test_results_do_not_depend_on_the_number_of_threads(threads, rng):
    x = rng.standard_normal((64, 50, 96)).astype(np.float32)  # 300k elements: many blocks
    gamma, beta = rng.standard_normal((2, 96)).astype(np.float32)
    threads(1)
    one = _ops_and_grads(x, gamma, beta)
    threads(4)
    four = _ops_and_grads(x, gamma, beta)
    for a, b in zip(one, four, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit


@pytest.mark.parametrize("preset", [None, "7"])
def test_import_asks_openblas_threads_to_sleep_but_keeps_a_users_setting(preset):
    # OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when NumPy is first imported, so it is checked in
    # a fresh process in which minibert comes first, as in the command line.
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = "import os, minibert; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == (preset or "1")


# ----------------------------------------------------------------------------------------------
# Stacks of matrix products


@pytest.mark.parametrize("n", [1, 3])
def test_a_stack_of_products_is_numpys_bit_for_bit(threads, rng, n):
    threads(n)
    q = rng.standard_normal((6, 40, 3, 16)).astype(np.float32).transpose(0, 2, 1, 3)  # a view
    k = rng.standard_normal((6, 3, 40, 16)).astype(np.float32)
    for a, b in [(q, k.swapaxes(-1, -2)), (q @ k.swapaxes(-1, -2), k)]:
        np.testing.assert_array_equal(parallel.matmul(a, b), a @ b)


def test_what_is_not_a_stack_of_equal_shapes_goes_to_numpy_as_it_is(threads, rng):
    threads(3)
    a = rng.standard_normal((6, 40, 16)).astype(np.float32)
    for b in (rng.standard_normal((16, 7)), rng.standard_normal((1, 16, 7))):  # broadcast
        b = b.astype(np.float32)
        np.testing.assert_array_equal(parallel.matmul(a, b), a @ b)


def test_blas_gets_its_threads_back_after_a_stack(threads, rng):
    import threadpoolctl
    threads(2)
    a = rng.standard_normal((4, 3, 40, 16)).astype(np.float32)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        parallel.matmul(a, a.swapaxes(-1, -2))  # runs with BLAS on one thread
        blas = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"]
    assert blas and set(blas) == {2}


# ----------------------------------------------------------------------------------------------
# Memory


_FAULTS = """
import resource, numpy as np, minibert
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # six 8 MB arrays alive at once, then all freed, as in a layer's forward
    arrays = [np.ones(1 << 21, dtype=np.float32) for _ in range(6)]
    del arrays
for _ in range(3):  # warm up
    step()
before = faults()
for _ in range(10):
    step()
print(faults() - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.parametrize("keep", ["1", "0"])
def test_freed_arrays_are_reused_not_refaulted(keep):
    env = {**os.environ, "MINIBERT_KEEP_FREED_MEMORY": keep}
    out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                         text=True, check=True)
    faults = int(out.stdout)
    if keep == "1":
        assert faults < 500  # the same memory each time
    else:  # glibc's default: the 48 MB freed at the top of the heap go back to the system
        assert faults > 5000  # and come back as fresh pages (~30,000 faults measured)


def test_a_keep_freed_memory_setting_other_than_0_or_1_is_refused(monkeypatch):
    monkeypatch.setenv("MINIBERT_KEEP_FREED_MEMORY", "off")
    with pytest.raises(ValueError, match="MINIBERT_KEEP_FREED_MEMORY='off': use 1 .* or 0"):
        process_settings.keep_freed_memory()
    monkeypatch.setenv("MINIBERT_KEEP_FREED_MEMORY", "0")
    assert process_settings.keep_freed_memory() is False  # off: nothing asked of malloc
