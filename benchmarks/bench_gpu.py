"""GPU benchmark: minibert on CuPy against PyTorch on the same GPU, in the same run.

1. One training step (forward + backward + AdamW) of a BERT-base-sized classifier
   (L=12, H=768, A=12, intermediate 3072, vocab 30522), sequence 128, batch 32: tokens/s for
   both, the ratio, and the share of the GPU's float32 matmul peak the step reaches (the peak
   is measured here, with an 8192³ float32 matmul on CuPy).
2. all-MiniLM-L6-v2 inference (batch 32 × 128 tokens): sequences/s for both and the ratio.

    python benchmarks/bench_gpu.py [--steps 10] [--batch 32] [--seq 128] [--smoke]
    python benchmarks/bench_gpu.py --count [--batch 2] [--seq 16]

`--count` needs no GPU: it runs on the simulated CuPy of tests/cupy_sim.py and prints how many
kernels a real CuPy would launch, and how often the host would wait for the GPU (device->host
syncs), in a BERT-base-shaped training step (forward, backward, AdamW step, each on its own)
and an all-MiniLM-L6-v2-shaped forward (random weights). Launches do not depend on the batch
and sequence sizes, so small ones keep it quick.

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


def count_on_simulation(batch: int, seq: int, configs=None) -> dict:
    """Launches and syncs, counted on the simulated CuPy (tests/cupy_sim.py), of a BERT-base
    training step (forward, backward, AdamW step) and a MiniLM-shaped forward:
    {"train": {"forward": (launches, syncs), "backward": ..., "step": ...},
     "minilm": {"forward": (launches, syncs)}}. `configs` replaces the two BertConfigs (tests)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import cupy_sim
    import minibert
    from minibert import backend
    from minibert.config import BertConfig
    from minibert.model import BertForSequenceClassification, BertModel

    if configs is None:
        configs = (BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=3072, num_labels=2),
                   BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                              intermediate_size=1536))
    counts, previous = cupy_sim.counts, backend.get_backend()
    cupy_sim.install()
    try:
        backend.use_backend("cupy")
        xp = backend.xp()
        rng = np.random.default_rng(0)

        def measured(fn):
            counts.reset()
            result = fn()
            return result, (counts.launches, counts.syncs)

        train_cfg, minilm_cfg = configs
        minibert.manual_seed(0)
        model = BertForSequenceClassification(train_cfg).train()
        opt = minibert.AdamW(model.parameters(), lr=1e-5)
        # the batch arrives on the device once, as a data loader would put it there
        ids = xp.asarray(rng.integers(5, train_cfg.vocab_size, (batch, seq)))
        labels = xp.asarray(rng.integers(0, train_cfg.num_labels, batch))
        train = {}
        for _ in range(2):  # the first step makes the optimizer's state: count the second
            opt.zero_grad()
            loss, train["forward"] = measured(lambda: model(ids, labels=labels).loss)
            _, train["backward"] = measured(loss.backward)
            _, train["step"] = measured(opt.step)
        minibert.manual_seed(0)
        encoder = BertModel(minilm_cfg).eval()
        ids = xp.asarray(rng.integers(5, minilm_cfg.vocab_size, (batch, seq)))
        with minibert.no_grad():
            encoder(ids)  # as bench_inference: one call before the measured one
            _, forward = measured(lambda: encoder(ids))
        return {"train": train, "minilm": {"forward": forward}}
    finally:
        backend.use_backend(previous)
        cupy_sim.uninstall()


def print_counts(batch: int, seq: int) -> None:
    result = count_on_simulation(batch, seq)
    print(f"kernel launches and device->host syncs on the simulated CuPy (batch {batch} x "
          f"{seq}; launches do not depend on the sizes)")
    rows = [(f"BERT-base train step: {part}", n) for part, n in result["train"].items()]
    total = tuple(sum(n[i] for n in result["train"].values()) for i in range(2))
    rows += [("BERT-base train step: total", total),
             ("all-MiniLM-L6-v2 forward", result["minilm"]["forward"])]
    print(f"{'':<36} {'launches':>9} {'syncs':>6}")
    for name, (launches, syncs) in rows:
        print(f"{name:<36} {launches:>9,} {syncs:>6}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=None, help="batch size (default 32; 2 with "
                   "--count)")
    p.add_argument("--seq", type=int, default=None, help="sequence length (default 128; 16 "
                   "with --count)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: check the script runs")
    p.add_argument("--count", action="store_true",
                   help="count kernel launches and syncs on the simulated CuPy (no GPU needed)")
    args = p.parse_args(argv)
    if args.count:
        print_counts(args.batch or 2, args.seq or 16)
        return 0
    args.batch, args.seq = args.batch or 32, args.seq or 128

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
