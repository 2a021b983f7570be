"""GPU benchmark: minibert on CuPy against PyTorch on the same GPU, in the same run.

1. One training step (forward + backward + AdamW) of a BERT-base-sized classifier
   (L=12, H=768, A=12, intermediate 3072, vocab 30522), sequence 128, batch 32: tokens/s for
   both, the ratio, and the share of the GPU's float32 matmul peak the step reaches (the peak
   is measured here, with an 8192³ float32 matmul on CuPy).
2. all-MiniLM-L6-v2 inference (batch 32 × 128 tokens): sequences/s for both and the ratio.

    python benchmarks/bench_gpu.py [--steps 10] [--batch 32] [--seq 128] [--smoke]

Without CuPy and a GPU it says so and exits 0 (nothing to measure). PyTorch is optional: without
it (or without CUDA in it) only minibert's figures are printed. `--smoke` runs every step on a
tiny model and small inputs: a check that the script works, not a measurement (the test suite
runs it on the simulated CuPy).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np


def _cupy():
    """The cupy module, through minibert's backend (the one place that imports it); main()
    makes CuPy the active backend before anything is measured."""
    from minibert import backend

    return backend.xp()


def _cuda_torch():
    """PyTorch with CUDA, or ImportError saying why there is no GPU reference."""
    import torch

    if not torch.cuda.is_available():
        raise ImportError("this PyTorch has no CUDA")
    return torch


def _sync():
    _cupy().cuda.Device().synchronize()


def matmul_peak_tflops(n: int, reps: int = 10) -> float:
    """Float32 matmul throughput of this GPU as CuPy reaches it (TF32 off)."""
    cupy = _cupy()
    a = cupy.random.standard_normal((n, n), dtype=np.float32)
    b = cupy.random.standard_normal((n, n), dtype=np.float32)
    a @ b
    _sync()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def step_flops(cfg, batch: int, seq: int) -> float:
    """Matmul FLOPs of one training step: forward ×3 (backward costs about twice the forward)."""
    H, L, I, T = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, batch * seq
    per_layer = 2 * T * (4 * H * H + 2 * H * I) + 2 * 2 * batch * seq * seq * H
    return 3 * L * per_layer


def bench_minibert_train(cfg, batch, seq, steps):
    import minibert
    from minibert.model import BertForSequenceClassification

    minibert.manual_seed(0)
    model = BertForSequenceClassification(cfg).train()
    opt = minibert.AdamW(model.parameters(), lr=1e-5)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, cfg.vocab_size, (batch, seq))
    labels = rng.integers(0, cfg.num_labels, batch)

    def step():
        opt.zero_grad()
        model(ids, labels=labels).loss.backward()
        opt.step()

    step()
    _sync()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync()
    return steps * batch * seq / (time.perf_counter() - t)


def bench_torch_train(cfg, batch, seq, steps):
    torch = _cuda_torch()
    from transformers import BertConfig as HFConfig
    from transformers import BertForSequenceClassification as HFModel

    torch.backends.cuda.matmul.allow_tf32 = False  # compare float32 with float32
    torch.manual_seed(0)
    model = HFModel(HFConfig(**cfg.to_dict())).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(5, cfg.vocab_size, (batch, seq), device="cuda")
    labels = torch.randint(0, cfg.num_labels, (batch,), device="cuda")

    def step():
        opt.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()

    step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * batch * seq / (time.perf_counter() - t)


def bench_inference(batch, seq, reps):
    import minibert
    from minibert.model import BertModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertModel.from_pretrained("all-MiniLM-L6-v2").to("gpu")
    ids = np.random.default_rng(0).integers(1000, 30000, (batch, seq))
    with minibert.no_grad():
        model(ids)
        _sync()
        t = time.perf_counter()
        for _ in range(reps):
            model(ids)
        _sync()
    ours = reps * batch / (time.perf_counter() - t)
    try:
        torch = _cuda_torch()
        from transformers import BertModel as HFBert

        from minibert.checkpoint import resolve_model_dir
    except ImportError:
        return ours, None
    torch.backends.cuda.matmul.allow_tf32 = False
    ref = HFBert.from_pretrained(str(resolve_model_dir("all-MiniLM-L6-v2"))).cuda().eval()
    tids = torch.as_tensor(ids, device="cuda")
    with torch.no_grad():
        ref(input_ids=tids)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            ref(input_ids=tids)
        torch.cuda.synchronize()
    return ours, reps * batch / (time.perf_counter() - t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: check the script runs")
    args = p.parse_args(argv)

    from minibert import backend
    from minibert.config import BertConfig

    if not backend.cupy_available():
        print("bench_gpu: skipped — CuPy is not installed or sees no GPU on this machine")
        return 0
    backend.use_backend("cupy")
    cfg = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, num_labels=2)
    peak_n, inference_reps = 8192, 20
    if args.smoke:
        cfg = BertConfig(vocab_size=2000, hidden_size=64, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=128, num_labels=2)
        args.steps, args.batch, args.seq, peak_n, inference_reps = 1, 2, 16, 128, 1
        print("smoke run: tiny sizes; the figures below measure nothing")
    peak = matmul_peak_tflops(peak_n)
    print(f"float32 matmul peak (CuPy, {peak_n}³): {peak:.1f} TFLOP/s")
    ours = bench_minibert_train(cfg, args.batch, args.seq, args.steps)
    achieved = step_flops(cfg, args.batch, args.seq) * ours / (args.batch * args.seq) / 1e12
    print(f"BERT-base train step, minibert/CuPy: {ours:,.0f} tokens/s "
          f"({achieved:.1f} TFLOP/s = {100 * achieved / peak:.0f}% of the matmul peak)")
    try:
        theirs = bench_torch_train(cfg, args.batch, args.seq, args.steps)
        print(f"BERT-base train step, PyTorch:       {theirs:,.0f} tokens/s   "
              f"ratio minibert/PyTorch = {ours / theirs:.2f}")
    except ImportError as e:
        print(f"no PyTorch reference for the training step ({e})")
    inf_ours, inf_theirs = bench_inference(args.batch, args.seq, reps=inference_reps)
    line = f"MiniLM inference {args.batch}×{args.seq}: minibert/CuPy {inf_ours:,.1f} seq/s"
    if inf_theirs:
        line += f", PyTorch {inf_theirs:,.1f} seq/s, ratio {inf_ours / inf_theirs:.2f}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
