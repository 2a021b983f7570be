"""A real fine-tuning job, minibert against transformers on PyTorch (CPU): time and accuracy.

    .venv/bin/python benchmarks/bench_finetune.py                   # all cores
    .venv/bin/python benchmarks/bench_finetune.py --threads 1 2 --train 2000 --held-out 1000

The recipe (the same for both): all-MiniLM-L6-v2 with a new 2-class head, `--train` rows of
SST-2 drawn at random (seed 0) from ../shared/data/sst2/train.tsv, 1 epoch, batch 32,
max_length 64 (each batch padded to its longest row), AdamW lr 5e-5, weight decay 0.01 (not on
biases and LayerNorm), 10 % linear warm-up then linear decay, gradient norm clipped to 1.0,
dropout on. Accuracy is measured on `--held-out` other rows of the same file.

Both frameworks run twice: with plain shuffled batches (transformers' Trainer default) and with
length-grouped batches (minibert's default; for PyTorch, transformers' own LengthGroupedSampler,
what Trainer uses with `group_by_length=True`). Each run is a fresh process, and the ratios
compare each minibert run with the PyTorch run that batches the same way. Reported: wall time
of the training (tokenization included, evaluation not), real and padded tokens per second
(padded: what the model computed on), held-out accuracy, peak memory, and for minibert where
the time goes (matmul / elementwise / Python overhead, the matmuls' share of NumPy's float32
matmul peak measured in the same process), from 8 extra profiled steps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    MACHINE_CORES,
    ROOT,
    OpProfile,
    matmul_peak_gflops,
    print_profiles,
    rss_mb,
    run_worker,
)

DATA = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
RECIPE = dict(epochs=1, batch_size=32, max_length=64, lr=5e-5, weight_decay=0.01,
              warmup_ratio=0.1, max_grad_norm=1.0, seed=0)


def load_rows(n_train: int, n_held: int):
    """(train, held_out) LabelledData: disjoint random rows of SST-2 (seed 0)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from minibert.data import read_labelled

    data = read_labelled(DATA, "sentence", "label", quoting=False)
    order = np.random.default_rng(0).permutation(len(data))
    return data.subset(order[:n_train].tolist()), \
        data.subset(order[n_train:n_train + n_held].tolist())


def worker_minibert(n_train, n_held, group_by_length) -> dict:
    import warnings

    import minibert
    from minibert.checkpoint import resolve_model_dir
    from minibert.evaluation import evaluate
    from minibert.train import finetune

    train, held = load_rows(n_train, n_held)
    model_dir = resolve_model_dir("all-MiniLM-L6-v2")
    minibert.manual_seed(RECIPE["seed"])
    with warnings.catch_warnings():  # the new head is the point
        warnings.simplefilter("ignore")
        model = minibert.BertForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    tokenizer = minibert.Tokenizer.from_pretrained(model_dir)
    start, cpu = time.perf_counter(), time.process_time()
    history = finetune(model, tokenizer, train, None, progress=False,
                       group_by_length=group_by_length, **RECIPE)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    epoch = history["epochs"][0]
    metrics = evaluate(model, tokenizer, held, batch_size=64, max_length=RECIPE["max_length"])
    peak = rss_mb()
    # Where the time goes: 8 more steps of the same recipe with every op timed (the timers
    # slow it down, so this pass is not part of the time above).
    sample = train.subset(range(min(len(train), 8 * RECIPE["batch_size"])))
    start = time.perf_counter()
    with OpProfile() as prof:
        finetune(model, tokenizer, sample, None, progress=False,
                 group_by_length=group_by_length, **RECIPE)
    breakdown = prof.breakdown(time.perf_counter() - start)
    return {"seconds": seconds, "cpu_seconds": cpu, "train_seconds": epoch["seconds"],
            "tokens_per_s": epoch["tokens_per_s"],
            "padded_tokens_per_s": epoch["padded_tokens_per_s"],
            "accuracy": metrics["accuracy"], "peak_mb": peak, "breakdown": breakdown,
            "matmul_peak_gflops": matmul_peak_gflops()}


def worker_torch(n_train, n_held, threads, group_by_length) -> dict:
    import numpy as np
    import torch
    import transformers

    sys.path.insert(0, str(ROOT))
    from minibert.checkpoint import resolve_model_dir

    torch.set_num_threads(threads)
    train, held = load_rows(n_train, n_held)
    model_dir = str(resolve_model_dir("all-MiniLM-L6-v2"))
    torch.manual_seed(RECIPE["seed"])
    transformers.logging.set_verbosity_error()  # "newly initialized classifier": expected
    model = transformers.BertForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, attn_implementation="eager").train()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    y = torch.tensor([int(label) for label in train.labels])
    bs, max_length = RECIPE["batch_size"], RECIPE["max_length"]
    steps = -(-len(train) // bs)
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not any(p is q for q in no_decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": RECIPE["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=RECIPE["lr"])
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, round(RECIPE["warmup_ratio"] * steps), steps)
    generator = torch.Generator().manual_seed(RECIPE["seed"])
    if group_by_length:  # transformers' own grouping, as Trainer(group_by_length=True) does
        from transformers.trainer_pt_utils import LengthGroupedSampler

        lengths = [len(ids) for ids in tokenizer(train.texts, truncation=True,
                                                  max_length=max_length)["input_ids"]]
        order = list(LengthGroupedSampler(bs, lengths=lengths, generator=generator))
    else:
        order = torch.randperm(len(train), generator=generator).tolist()
    start, cpu, real, padded = time.perf_counter(), time.process_time(), 0, 0
    for i in range(0, len(train), bs):
        idx = order[i:i + bs]
        enc = tokenizer([train.texts[j] for j in idx], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
        real += int(enc["attention_mask"].sum())
        padded += enc["attention_mask"].numel()
        loss = model(**enc, labels=y[idx]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), RECIPE["max_grad_norm"])
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    model.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(held), 64):
            enc = tokenizer(held.texts[i:i + 64], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            preds.append(model(**enc).logits.argmax(-1).numpy())
    accuracy = float((np.concatenate(preds) == np.array([int(v) for v in held.labels])).mean())
    return {"seconds": seconds, "cpu_seconds": cpu, "train_seconds": seconds,
            "tokens_per_s": real / seconds,
            "padded_tokens_per_s": padded / seconds, "accuracy": accuracy, "peak_mb": rss_mb()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[MACHINE_CORES],
                        help="thread counts to measure (default: all cores)")
    parser.add_argument("--train", type=int, default=2000, help="training rows")
    parser.add_argument("--held-out", type=int, default=1000, help="held-out rows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not DATA.is_file():
        sys.exit(f"bench_finetune: {DATA} not found (the shared SST-2 data)")

    if args.worker:
        if args.worker.startswith("torch"):
            result = worker_torch(args.train, args.held_out, args.threads[0],
                                  args.worker == "torch-grouped")
        else:
            result = worker_minibert(args.train, args.held_out, args.worker == "minibert")
        print(json.dumps(result))
        return

    print(f"fine-tuning all-MiniLM-L6-v2 on {args.train} SST-2 rows, 1 epoch, batch 32, "
          f"max_length 64; accuracy on {args.held_out} held-out rows; each run a fresh process")
    header = (f"{'run':<34} {'thr':>3} {'wall s':>7} {'ratio':>6} {'cpu s':>7} {'ratio':>6} "
              f"{'real tok/s':>11} "
              f"{'padded tok/s':>13} {'accuracy':>9} {'peak MB':>8}")
    print(header)
    print("-" * len(header))
    # (worker, title, the PyTorch run it is compared with)
    runs = [("torch-plain", "PyTorch (plain shuffled batches)", "torch-plain"),
            ("minibert-plain", "minibert (plain shuffled batches)", "torch-plain"),
            ("torch-grouped", "PyTorch (LengthGroupedSampler)", "torch-grouped"),
            ("minibert", "minibert (group_by_length)", "torch-grouped")]
    profiles = []
    for threads in args.threads:
        results = {}
        for worker, title, against in runs:
            r = run_worker(__file__, ["--worker", worker, "--train", str(args.train),
                                      "--held-out", str(args.held_out)], threads)
            if "error" in r:
                print(f"{title:<34} {threads:>3} error: {r['error']}")
                continue
            results[worker] = r
            if "breakdown" in r:
                profiles.append((title, threads, r))
            reference = results.get(against)
            ratio = f"{reference['seconds'] / r['seconds']:.2f}" if reference else "-"
            cpu_ratio = f"{reference['cpu_seconds'] / r['cpu_seconds']:.2f}" if reference else "-"
            print(f"{title:<34} {threads:>3} {r['seconds']:>7.1f} {ratio:>6} "
                  f"{r['cpu_seconds']:>7.1f} {cpu_ratio:>6} "
                  f"{r['tokens_per_s']:>11,.0f} {r['padded_tokens_per_s']:>13,.0f} "
                  f"{r['accuracy']:>9.3f} {r['peak_mb']:>8,.0f}", flush=True)
    print("ratio = the PyTorch run with the same batching: its time / this run's (above 1: "
          "faster than PyTorch), wall-clock and CPU time (CPU: steadier on a shared machine, "
          "blind to what extra threads gain)")
    print_profiles("8 more steps of the same recipe, every op timed", profiles)


if __name__ == "__main__":
    main()
