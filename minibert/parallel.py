"""Threads: large elementwise work, cut into cache-sized blocks and spread over the CPU cores.

NumPy runs one ufunc call on one core, and streams a large array through memory once per call:
a formula of ten passes (erf, softmax, layer norm, AdamW) reads and writes the array ten times.
Two cheap fixes, which backend.elementwise / backend.rows apply to the formulas of
functional.py and to AdamW's update (optim.py; its gradient norm uses for_blocks directly):

- Work block by block. A block of ~128k floats (512 KB) stays in the CPU cache while every pass
  of the formula runs over it, so the array crosses memory once, not once per pass.
- Hand the blocks to a few threads. NumPy releases the GIL inside each ufunc call, so threads
  really do run blocks on different cores at the same time (BLAS matmuls already do this).
  Blocks much smaller than this lose the gain: every ufunc call must take the GIL back to
  start, and the threads queue for it. (Measured, MiniLM 32 x 128: 128k-float blocks against
  64k: ~10 % faster on 2 threads, ~2 % slower on one; 256k: -12 % / +5 %.)

The number of threads: ``minibert.set_num_threads(n)``, or the environment variable
``MINIBERT_NUM_THREADS`` (else ``OMP_NUM_THREADS``, which also sets the BLAS threads); by
default every core this process may use. The result never depends on it: each block is the
same computation whichever thread runs it.

The same pool runs stacks of small matrix products (attention's B·h products, `matmul` below):
BLAS threads one product at a time, which pays for a big product but not for a (128 x 32) one.

On the GPU (CuPy arrays) none of this applies: one kernel over the whole array is what is fast,
so `for_blocks` then makes a single call. (Process-wide settings that help these threads, such
as OpenBLAS's thread timeout, are in process_settings.py.)
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

BLOCK = 1 << 17  # elements per block: 512 KB of float32. The same on any number of threads,
# so that results never depend on it (a row sum's rounding depends on the block it ran in).

_num_threads: int | None = None  # None: not chosen yet (read from the environment on first use)
_pool: ThreadPoolExecutor | None = None


def _threads_from_environment() -> int:
    for var in ("MINIBERT_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{var}={value!r}: the number of threads must be an integer >= 1")
            return int(value)
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """How many threads run minibert's elementwise work on the CPU."""
    global _num_threads
    if _num_threads is None:
        _num_threads = _threads_from_environment()
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use `n` threads (1: everything on the calling thread) for elementwise work on the CPU.

    BLAS (the matmuls) keeps its own setting: set OMP_NUM_THREADS before starting Python.
    """
    global _num_threads, _pool
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: n must be an integer >= 1, got {n!r}")
    if _pool is not None:
        _pool.shutdown()
        _pool = None
    _num_threads = n


def for_blocks(work: Callable, a: Any, block: int = BLOCK) -> list:
    """Call ``work(rows)`` for slices ``rows`` that together cover the first axis of `a`.

    `a` is the (2-D or 1-D) array being processed; each slice holds about `block` elements
    (whole rows: row-wise ops such as softmax need them). `work` reads and writes only its
    own rows, so the slices may run at the same time on different threads. Returns what each
    call returned, in the order of the rows (partial sums add up the same way every time).
    """
    slices = blocks(a, block)
    if len(slices) == 1 or get_num_threads() == 1:
        return [work(s) for s in slices]
    return for_tasks([functools.partial(work, s) for s in slices])


def blocks(a: Any, block: int = BLOCK) -> list:
    """The slices of rows that `for_blocks` cuts `a` into: [...] (all of it) when it is small,
    or on the GPU."""
    n = a.shape[0] if a.ndim else 1
    row = max(1, a.size // max(n, 1))
    step = max(1, block // row)
    if not isinstance(a, np.ndarray) or n <= step:
        return [...]  # on the GPU, or small: one call over everything (a[...] is all)
    return [slice(i, i + step) for i in range(0, n, step)]


def for_tasks(tasks: list[Callable[[], Any]], sizes: list[int] | None = None) -> list:
    """Call each of `tasks` (functions of no argument, independent of each other) on the
    threads; what they returned, in their order. `sizes`, the work of each (e.g. numbers
    processed; equal by default), splits them into shares of about equal work."""
    threads = min(get_num_threads(), len(tasks))
    if threads <= 1:
        return [task() for task in tasks]
    sizes = sizes or [1] * len(tasks)
    total, done, cuts = sum(sizes), 0, [0]
    for i, size in enumerate(sizes):  # a share ends once it holds its part of the work
        done += size
        if len(cuts) < threads and done * threads >= total * len(cuts):
            cuts.append(i + 1)
    cuts.append(len(tasks))
    shares = [tasks[i:j] for i, j in zip(cuts, cuts[1:], strict=False) if i < j]

    def run(share):  # one thread's share: a run of consecutive tasks
        return [task() for task in share]

    # One share per thread, not one hand-over per task: each hand-over between threads costs a
    # wake-up (tens of µs on a virtual machine), as much as a block's work. The calling thread
    # takes the first share itself instead of waiting idle.
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(get_num_threads() - 1, thread_name_prefix="minibert")
    others = [_pool.submit(run, share) for share in shares[1:]]
    try:
        first = run(shares[0])
    finally:
        wait(others)  # every task has finished before we return, or raise
    return first + [r for f in others for r in f.result()]  # in the order of the tasks


# ----------------------------------------------------------------------------------------------
# Stacks of matrix products


def matmul(a: Any, b: Any) -> Any:
    """a @ b for two stacks of matrices: (S..., n, k) @ (S..., k, m) -> (S..., n, m).

    Attention multiplies B·h small matrices at once (queries by keys, probabilities by values).
    NumPy hands each product to BLAS, which splits every small product over its threads; on
    2 cores that ran *slower* than on one (MiniLM, 32 x 128: 7.8 ms against 4.5 ms for the 384
    products of (128 x 32) @ (32 x 128)). Here the stack is cut into blocks along its first
    axis instead, and each thread runs whole products with BLAS on one thread: 2.7 ms. Each
    product is the same BLAS call with or without threads, so the numbers do not change.
    Anything else (a plain matrix, broadcast stacks) goes to `a @ b` unchanged.
    """
    if (get_num_threads() == 1 or not isinstance(a, np.ndarray) or a.ndim < 3
            or a.shape[:-2] != b.shape[:-2] or a.shape[0] == 1):
        return a @ b
    out = np.empty(a.shape[:-1] + b.shape[-1:], dtype=np.result_type(a, b))

    def products(s):  # whole products: a block of the stack's first axis
        np.matmul(a[s], b[s], out=out[s])

    with _blas_on_one_thread():
        for_blocks(products, out)
    return out


_blas = None  # threadpoolctl's handle on the BLAS libraries NumPy loaded (None: not looked yet)


@contextlib.contextmanager
def _blas_on_one_thread():
    """BLAS on one thread for a while, so that it does not split products over the cores that
    minibert's threads are using (threadpoolctl finds OpenBLAS, MKL or BLIS in the process)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas")
    with _blas.limit(limits=1):
        yield
