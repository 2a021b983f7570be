"""What the benchmarks share: one process per measurement, peak memory, the matmul peak and
where minibert's time goes.

- `run_worker` starts a benchmark script again in a fresh Python process with the thread
  count fixed in its environment (BLAS reads it at import), and reads back the JSON line the
  worker printed last. A fresh process per framework keeps each one's peak memory its own, and
  keeps one framework's thread pools from slowing the other.
- `matmul_peak_gflops` times NumPy's float32 matmul alone, in the same process and with the same
  threads as the measurement it is compared with.
- `OpProfile` wraps minibert's ops (forward and backward) with timers for one profiled pass and
  splits the time into matmul, elementwise and the rest (Python overhead: the graph, the
  module calls, the optimizer loop).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "MINIBERT_NUM_THREADS")
MACHINE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
    else os.cpu_count() or 1


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(script: str, args: list[str], threads: int, timeout: float = 3600) -> dict:
    """Run `script --worker ...args` in a fresh process with `threads` threads; its JSON result.

    A failed worker gives {"error": its last line of stderr}."""
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    cmd = [sys.executable, script, *args, "--threads", str(threads)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not proc.stdout.strip():
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_frameworks(script: str, args: list[str], threads: int) -> dict:
    """Both workers of `script` (minibert's, then PyTorch's), each in a fresh process:
    {"minibert": result, "torch": result}. A failed worker's error is printed to stderr, and
    its result is {"error": ...} (run_worker)."""
    res = {fw: run_worker(script, ["--worker", fw, *args], threads) for fw in ("minibert", "torch")}
    for fw, r in res.items():
        if "error" in r:
            print(f"  {fw}: {r['error']}", file=sys.stderr)
    return res


def failed(results: dict) -> bool:
    """Whether any run in {name: result} failed (see run_worker)."""
    return any("error" in r for r in results.values())


def median_time(fn, repeat: int, warmup: int = 1) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call of fn, medians of `repeat` calls.

    CPU time (all threads of this process) is what the work cost; on a machine shared with
    other jobs, wall time also counts the waits for a free core. At 1 thread CPU time is the
    steadier measure of speed; with more threads only wall time shows the gain."""
    walls, cpus = timed_runs(fn, repeat, warmup)
    return sorted(walls)[len(walls) // 2], sorted(cpus)[len(cpus) // 2]


def timed_runs(fn, repeat: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of `repeat` calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def matmul_peak_gflops(n: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of NumPy's float32 (n, n) @ (n, n), best of `repeat`: the matmul peak."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# minibert's ops that are matrix products; every other op in functional.py and autograd.py is
# elementwise or a reduction (memory-bound NumPy work).
MATMUL_OPS = {"linear", "matmul"}
FORWARD_OPS = ["linear", "embedding", "gelu", "tanh", "softmax", "log_softmax", "layer_norm",
               "add_layer_norm", "dropout", "cross_entropy"]
TENSOR_OPS = {"__matmul__": "matmul", "__add__": "add", "__sub__": "sub", "__mul__": "mul",
              "__truediv__": "div", "reshape": "reshape", "transpose": "transpose",
              "__getitem__": "getitem", "tanh": "tanh", "sum": "sum"}


class OpProfile:
    """Time spent in each minibert op while active (`with OpProfile() as prof:`).

    Forward: the functions of functional.py and the Tensor methods are wrapped with a timer.
    Backward: every closure an op stores (`out._backward = ...`) is wrapped as it is stored.
    The optimizer's update counts as elementwise. Nested ops count once (the outer one).
    """

    def __init__(self):
        self.seconds = defaultdict(float)
        self.matmul_flops = 0.0
        self._saved = []
        self._depth = 0

    def _timer(self, name, fn, flops=None):
        def timed(*args, **kwargs):
            if self._depth:  # inside another timed op: that one counts the time
                return fn(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self._depth -= 1
                if flops is not None:
                    self.matmul_flops += flops(*args)

        return timed

    def __enter__(self):
        import minibert.functional as F
        from minibert import optim
        from minibert.autograd import Tensor

        def patch(owner, attr, wrapped):
            self._saved.append((owner, attr, owner.__dict__[attr]))
            setattr(owner, attr, wrapped)

        def linear_flops(x, W, b=None):
            return 2.0 * x.size * W.shape[1]

        def matmul_flops(a, b):
            return 2.0 * a.size * b.shape[-1]

        for name in FORWARD_OPS:
            fn = getattr(F, name)
            patch(F, name, self._timer(name, fn, linear_flops if name == "linear" else None))
        for attr, name in TENSOR_OPS.items():
            patch(Tensor, attr, self._timer(
                name, Tensor.__dict__[attr], matmul_flops if name == "matmul" else None))
        patch(optim.AdamW, "step", self._timer("optimizer", optim.AdamW.step))

        prop = Tensor.__dict__["_backward"]
        profile = self

        def store(tensor, fn):  # each backward closure, timed under its op's name
            if fn is not None and tensor.requires_grad:
                op, shapes = tensor._op, _matmul_backward_flops(tensor)
                fn = profile._timer(f"{op} (backward)", fn,
                                    (lambda: shapes) if op in MATMUL_OPS else None)
            prop.fset(tensor, fn)

        patch(Tensor, "_backward", property(prop.fget, store))
        return self

    def __exit__(self, *exc):
        for owner, attr, original in reversed(self._saved):
            setattr(owner, attr, original)
        self._saved.clear()

    def breakdown(self, total_seconds: float) -> dict:
        """{"matmul", "elementwise", "overhead"}: shares of `total_seconds`, plus per-op seconds."""
        matmul = sum(s for name, s in self.seconds.items() if name.split(" ")[0] in MATMUL_OPS)
        ops = sum(self.seconds.values())
        return {
            "matmul": matmul / total_seconds,
            "elementwise": (ops - matmul) / total_seconds,
            "overhead": max(0.0, total_seconds - ops) / total_seconds,
            "matmul_gflops": self.matmul_flops / max(matmul, 1e-12) / 1e9,
            "ops": {name: round(s, 4) for name, s in sorted(self.seconds.items(),
                                                              key=lambda kv: -kv[1])},
        }


def _matmul_backward_flops(out) -> float:
    """FLOPs of the backward of a matmul/linear output: one product per input needing grad."""
    if out._op not in MATMUL_OPS:
        return 0.0
    x, w = out._parents[0], out._parents[1]
    forward = 2.0 * x.size * w.shape[-1]
    return forward * sum(p.requires_grad for p in (x, w))


def format_breakdown(b: dict, peak: float) -> str:
    return (f"matmul {b['matmul']:.0%} (at {b['matmul_gflops']:.0f} GFLOP/s = "
            f"{b['matmul_gflops'] / peak:.0%} of the {peak:.0f} GFLOP/s peak), elementwise "
            f"{b['elementwise']:.0%}, Python overhead {b['overhead']:.0%}")


def print_profiles(what: str, profiles: list) -> None:
    """The breakdown of each profiled minibert run: `profiles` holds (name, threads, result)."""
    print(f"\nwhere minibert's time goes ({what}):")
    for name, threads, r in profiles:
        print(f"  {name}, {threads} thread(s): "
              f"{format_breakdown(r['breakdown'], r['matmul_peak_gflops'])}")
