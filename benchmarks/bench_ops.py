"""Op by op: minibert's elementwise ops against PyTorch's, on the shapes of MiniLM at 32 x 128.

    .venv/bin/python benchmarks/bench_ops.py                 # 1 thread
    .venv/bin/python benchmarks/bench_ops.py --threads 1 2 --repeat 30

The whole-model benchmarks say how far apart the frameworks are; this one says where: GELU
(32, 128, 1536), softmax over the attention scores (32, 12, 128, 128) and layer norm
(32, 128, 384), each forward alone (no gradient) and forward + backward, float32. The linear
layers and attention products are BLAS matmuls in both frameworks and are left out.

Each framework runs in a fresh process of its own with the thread count fixed before import
(common.py). Reported: the best of `--repeat` runs (the least disturbed one on a shared
machine) in CPU time (all threads of the process) and in wall time, and the speed ratio
PyTorch time / minibert time (above 1: minibert is faster). At 1 thread the CPU-time ratio is
the steady one; with more threads only wall time shows what the extra threads gain.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import failed, run_frameworks, timed_runs  # noqa: E402

# (name, shape of the input, the scale of its random values)
CASES = [("gelu", (32, 128, 1536), 2.0), ("softmax", (32, 12, 128, 128), 3.0),
         ("layer_norm", (32, 128, 384), 1.0)]


def _best(fn, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of fn(): the minimum of each over `repeat` runs, after a warm-up."""
    walls, cpus = timed_runs(fn, repeat)
    return min(walls), min(cpus)


def _inputs(shape, scale):
    import numpy as np

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    return x, np.ones_like(x), rng.standard_normal(shape[-1:]).astype(np.float32)


def worker_minibert(repeat: int) -> dict:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import minibert
    import minibert.functional as F

    results = {}
    for name, shape, scale in CASES:
        x, dy, w = _inputs(shape, scale)
        gamma, beta = minibert.tensor(w, requires_grad=True), minibert.tensor(w, requires_grad=True)

        def op(t, name=name, gamma=gamma, beta=beta):
            if name == "gelu":
                return F.gelu(t)
            if name == "softmax":
                return F.softmax(t, axis=-1)
            return F.layer_norm(t, gamma, beta, eps=1e-12)

        t = minibert.tensor(x, requires_grad=True)

        def forward(t=t, op=op):
            with minibert.no_grad():
                op(t)

        def forward_backward(t=t, dy=dy, op=op, gamma=gamma, beta=beta):
            t.grad = gamma.grad = beta.grad = None
            op(t).backward(dy)

        results[name] = [_best(forward, repeat), _best(forward_backward, repeat)]
    return results


def worker_torch(repeat: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    results = {}
    for name, shape, scale in CASES:
        x, dy, w = (torch.from_numpy(a) for a in _inputs(shape, scale))
        gamma, beta = w.clone().requires_grad_(), w.clone().requires_grad_()

        def op(t, name=name, gamma=gamma, beta=beta):
            if name == "gelu":
                return torch.nn.functional.gelu(t)  # the exact (erf) form, as BERT's
            if name == "softmax":
                return torch.softmax(t, dim=-1)
            return torch.nn.functional.layer_norm(t, t.shape[-1:], gamma, beta, eps=1e-12)

        x.requires_grad_()

        def forward(x=x, op=op):
            with torch.inference_mode():
                op(x)

        def forward_backward(x=x, dy=dy, op=op, gamma=gamma, beta=beta):
            x.grad = gamma.grad = beta.grad = None
            op(x).backward(dy)

        results[name] = [_best(forward, repeat), _best(forward_backward, repeat)]
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="thread counts to measure (default: 1)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per measurement")
    parser.add_argument("--worker", choices=["minibert", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        import json

        result = worker_minibert(args.repeat) if args.worker == "minibert" \
            else worker_torch(args.repeat, args.threads[0])
        print(json.dumps(result))
        return

    print(f"elementwise ops on MiniLM's shapes at batch 32 x 128, float32, best of "
          f"{args.repeat} runs; each framework in a fresh process")
    header = (f"{'op':<11} {'pass':<16} {'thr':>3} {'minibert CPU':>12} {'PyTorch CPU':>12} "
              f"{'ratio':>6} {'minibert wall':>14} {'PyTorch wall':>13} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        res = run_frameworks(__file__, ["--repeat", str(args.repeat)], threads)
        if failed(res):
            continue
        for name, _, _ in CASES:
            for i, kind in enumerate(("forward", "forward+backward")):
                (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = (res[fw][name][i]
                                                                    for fw in ("minibert", "torch"))
                print(f"{name:<11} {kind:<16} {threads:>3} {ours_cpu * 1e3:>9.1f} ms "
                      f"{theirs_cpu * 1e3:>9.1f} ms {theirs_cpu / ours_cpu:>6.2f} "
                      f"{ours_wall * 1e3:>11.1f} ms {theirs_wall * 1e3:>10.1f} ms "
                      f"{theirs_wall / ours_wall:>6.2f}")
    print("ratio = PyTorch time / minibert time (above 1: minibert is faster)")


if __name__ == "__main__":
    main()
