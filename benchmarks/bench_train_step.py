"""Benchmark one training step (forward + backward + AdamW) of minibert against PyTorch on CPU.

    python benchmarks/bench_train_step.py            # L=2/H=128 and L=4/H=256, batch 32, seq 128
    python benchmarks/bench_train_step.py --quick    # L=2/H=128 only, batch 8, seq 64
    python benchmarks/bench_train_step.py --threads 4 --steps 5    # default: 1 and all cores
    python benchmarks/bench_train_step.py --head mlm    # a pre-training (masked LM) step

Both frameworks train the same model, a BertForSequenceClassification with vocabulary 30522,
H/64 attention heads and intermediate size 4H (minibert's own, and transformers' running on
PyTorch), on the same random batch, with the same number of threads. With `--head mlm` the
model is a BertForMaskedLM instead, its loss on a random 15 % of the positions (the others
labelled -100, as a masked-LM collator leaves them). Each framework runs in a
subprocess of its own, so that its peak memory (ru_maxrss) is its own and one framework's
thread pools cannot slow the other. Reported per configuration: tokens/s for each, the ratio
minibert/PyTorch, and the peak resident memory of each process (after-import baseline in
brackets: PyTorch alone takes a few hundred MB just to import), and where minibert's time goes
(matmul / elementwise / Python overhead, the matmuls' share of NumPy's float32 matmul peak
measured in the same process; see common.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    MACHINE_CORES,
    OpProfile,
    failed,
    matmul_peak_gflops,
    median_time,
    print_profiles,
    run_frameworks,
)
from common import rss_mb as _rss_mb  # noqa: E402

VOCAB = 30522


def _batch(batch: int, seq: int, head: str, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, VOCAB, size=(batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP], as in real data
    mask = np.ones((batch, seq), dtype=np.int64)
    if head == "mlm":  # predict 15 % of the positions (never [CLS] or [SEP])
        chosen = rng.random((batch, seq)) < 0.15
        chosen[:, 0] = chosen[:, -1] = False
        labels = np.where(chosen, ids, -100)
    else:
        labels = rng.integers(0, 2, size=batch, dtype=np.int64)
    return ids, mask, labels


def _time_steps(step, warmup: int, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step: medians over `steps` steps after `warmup` (common.py)."""
    return median_time(step, steps, warmup)


def worker_minibert(layers, hidden, batch, seq, steps, threads, head) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import minibert
    from minibert.config import BertConfig
    from minibert.model import BertForMaskedLM, BertForSequenceClassification
    from minibert.optim import AdamW, weight_decay_groups

    baseline = _rss_mb()
    minibert.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=hidden // 64, intermediate_size=4 * hidden,
                        num_labels=2)
    model = (BertForMaskedLM if head == "mlm" else BertForSequenceClassification)(config).train()
    optimizer = AdamW(weight_decay_groups(model.named_parameters(), 0.01), lr=1e-4)
    ids, mask, labels = _batch(batch, seq, head)

    def step():
        optimizer.zero_grad()
        out = model(ids, mask, labels=labels)
        out.loss.backward()
        optimizer.step()

    seconds, cpu = _time_steps(step, warmup=1, steps=steps)
    peak = _rss_mb()
    with OpProfile() as prof:
        profiled, _ = _time_steps(step, warmup=0, steps=1)
    return {"seconds_per_step": seconds, "cpu_seconds": cpu, "baseline_mb": baseline,
            "peak_mb": peak,
            "params": model.num_parameters(), "breakdown": prof.breakdown(profiled),
            "matmul_peak_gflops": matmul_peak_gflops()}


def worker_torch(layers, hidden, batch, seq, steps, threads, head) -> dict:
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    torch.set_num_threads(threads)
    baseline = _rss_mb()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=hidden // 64, intermediate_size=4 * hidden,
                        num_labels=2)
    model = (BertForMaskedLM if head == "mlm" else BertForSequenceClassification)(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids, mask, labels = (torch.from_numpy(a) for a in _batch(batch, seq, head))

    def step():
        optimizer.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        optimizer.step()

    seconds, cpu = _time_steps(step, warmup=1, steps=steps)
    return {"seconds_per_step": seconds, "cpu_seconds": cpu, "baseline_mb": baseline,
            "peak_mb": _rss_mb(),
            "params": sum(p.numel() for p in model.parameters())}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small and fast: L=2/H=128, "
                        "batch 8, seq 64, 2 steps")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (after 1 warm-up)")
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, MACHINE_CORES}),
                        help="thread counts to measure, the same for both frameworks "
                             "(default: 1 and all cores)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--seq", type=int, default=None)
    parser.add_argument("--head", choices=["classification", "mlm"], default="classification",
                        help="the model trained: BertForSequenceClassification (default) or "
                             "BertForMaskedLM (a pre-training step)")
    parser.add_argument("--worker", choices=["minibert", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        fn = worker_minibert if args.worker == "minibert" else worker_torch
        result = fn(args.layers, args.hidden, args.batch, args.seq, args.steps, args.threads[0],
                    args.head)
        print(json.dumps(result))
        return

    configs = [(2, 128)] if args.quick else [(2, 128), (4, 256)]
    batch = args.batch or (8 if args.quick else 32)
    seq = args.seq or (64 if args.quick else 128)
    steps = args.steps or (2 if args.quick else 3)
    tokens = batch * seq
    what = "masked-LM pre-training" if args.head == "mlm" else "training"
    print(f"one {what} step (forward + backward + AdamW), batch {batch} x seq {seq} = "
          f"{tokens} tokens, vocab {VOCAB}, {steps} timed steps, each framework in a fresh "
          f"process; python {sys.version.split()[0]}")
    header = (f"{'config':<10} {'thr':>3} {'params':>7} {'minibert tok/s':>15} "
              f"{'torch tok/s':>12} {'ratio (cpu)':>12} {'minibert peak MB':>18} "
              f"{'torch peak MB':>14}")
    print(header)
    print("-" * len(header))
    profiles = []
    for threads in args.threads:
        for layers, hidden in configs:
            res = run_frameworks(__file__, ["--layers", str(layers), "--hidden", str(hidden),
                                            "--batch", str(batch), "--seq", str(seq),
                                            "--steps", str(steps), "--head", args.head], threads)
            cells = {}
            for fw, r in res.items():
                if "error" in r:
                    cells[fw] = ("error", "-")
                else:
                    cells[fw] = (f"{tokens / r['seconds_per_step']:,.0f}",
                                 f"{r['peak_mb']:,.0f} ({r['baseline_mb']:,.0f})")
            ok = not failed(res)
            ratio = (f"{res['torch']['seconds_per_step'] / res['minibert']['seconds_per_step']:.2f}"
                     f" ({res['torch']['cpu_seconds'] / res['minibert']['cpu_seconds']:.2f})"
                     if ok else "-")
            params = next((f"{r['params'] / 1e6:.1f}M" for r in res.values() if "params" in r),
                          "-")
            config = f"L={layers}/H={hidden}"
            print(f"{config:<10} {threads:>3} {params:>7} {cells['minibert'][0]:>15} "
                  f"{cells['torch'][0]:>12} {ratio:>12} {cells['minibert'][1]:>18} "
                  f"{cells['torch'][1]:>14}", flush=True)
            if "breakdown" in res["minibert"]:
                profiles.append((config, threads, res["minibert"]))
    print("ratio = minibert tokens/s / PyTorch tokens/s (1.00 = as fast), wall-clock medians; "
          "(cpu) = the same with CPU time, steadier on a shared machine but blind to what extra "
          "threads gain; peak MB = ru_maxrss of each process, (after-import baseline)")
    print_profiles("one profiled step", profiles)


if __name__ == "__main__":
    main()
