"""Matrix products alone: minibert's linear layer (NumPy's BLAS) against PyTorch's, shape by shape.

    .venv/bin/python benchmarks/bench_matmul.py                 # 1 thread and all cores
    .venv/bin/python benchmarks/bench_matmul.py --threads 1 --repeat 30

The whole-model benchmarks report how fast minibert's matmuls run against NumPy's own float32
peak; this one asks how fast the BLAS behind NumPy (OpenBLAS in NumPy's wheels) is against the
one behind PyTorch, on the products a BERT layer makes: the forward y = x W of a linear layer
(minibert's `functional.linear`, without bias; PyTorch's `F.linear`) and its two backward
products dx = dy Wᵀ and dW = xᵀ dy. Shapes: MiniLM's (hidden 384, intermediate 1536) at 4,096
rows (batch 32 x 128) and at 32 rows (one sentence), and the L4/H256 model of
bench_train_step.py (256 -> 1024). Each framework runs in a fresh process of its own with the
thread count fixed before import (common.py). Reported: GFLOP/s from the best of `--repeat`
runs (wall time), and the speed ratio PyTorch time / minibert time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MACHINE_CORES, failed, run_frameworks, timed_runs  # noqa: E402

# (rows, in, out): y (rows, out) = x (rows, in) @ W (in, out)
SHAPES = [(4096, 384, 384), (4096, 384, 1536), (4096, 1536, 384), (4096, 256, 1024),
          (32, 384, 1536), (32, 1536, 384)]
PRODUCTS = ("forward x W", "backward dy Wᵀ", "backward xᵀ dy")


def _arrays(rows, n_in, n_out):
    import numpy as np

    rng = np.random.default_rng(0)
    return (rng.standard_normal((rows, n_in), dtype=np.float32),
            rng.standard_normal((n_in, n_out), dtype=np.float32) * 0.05,
            rng.standard_normal((rows, n_out), dtype=np.float32))


def _best(fn, repeat: int) -> float:
    walls, _ = timed_runs(fn, repeat)
    return min(walls)


def _minibert_products(x, W, dy):
    """minibert's linear forward, and the two products of its backward (functional.linear)."""
    import minibert
    import minibert.functional as F

    xt, Wt = minibert.tensor(x), minibert.tensor(W)

    def forward():
        with minibert.no_grad():
            F.linear(xt, Wt)

    return forward, lambda: dy @ W.T, lambda: x.T @ dy


def _torch_products(x, W, dy):
    """PyTorch's F.linear (weight kept as (out, in)), and autograd's two backward products."""
    import torch

    W = W.t().contiguous()

    def forward():
        with torch.inference_mode():
            torch.nn.functional.linear(x, W)

    return forward, lambda: dy @ W, lambda: dy.t() @ x


def worker(framework: str, repeat: int, threads: int) -> dict:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    results = {}
    for rows, n_in, n_out in SHAPES:
        arrays = _arrays(rows, n_in, n_out)
        if framework == "torch":
            products = _torch_products(*(torch.from_numpy(a) for a in arrays))
        else:
            products = _minibert_products(*arrays)
        results[f"{rows}x{n_in}x{n_out}"] = [_best(fn, repeat) for fn in products]
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, MACHINE_CORES}),
                        help="thread counts to measure (default: 1 and all cores)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per product")
    parser.add_argument("--worker", choices=["minibert", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.repeat, args.threads[0])))
        return

    print(f"linear-layer matrix products, float32, best of {args.repeat} runs; each framework "
          f"in a fresh process")
    header = (f"{'rows x in x out':<18} {'product':<16} {'thr':>3} {'minibert GFLOP/s':>17} "
              f"{'PyTorch GFLOP/s':>16} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        res = run_frameworks(__file__, ["--repeat", str(args.repeat)], threads)
        if failed(res):
            continue
        for rows, n_in, n_out in SHAPES:
            key, gflop = f"{rows}x{n_in}x{n_out}", 2 * rows * n_in * n_out / 1e9
            for i, product in enumerate(PRODUCTS):
                ours, theirs = res["minibert"][key][i], res["torch"][key][i]
                print(f"{key:<18} {product:<16} {threads:>3} {gflop / ours:>17.0f} "
                      f"{gflop / theirs:>16.0f} {theirs / ours:>6.2f}")
    print("ratio = PyTorch time / minibert time (above 1: minibert is faster)")


if __name__ == "__main__":
    main()
