"""What to train, measured on SST-2: lesson 14's experiment (items 1 and 3 of the course).

    .venv/bin/python benchmarks/bench_what_to_train.py                 # ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_what_to_train.py --threads 1 --head-epochs 3

It runs lessons/14_what_to_train.py (the same code a learner runs, nothing copied) on
../shared/data/sst2/train.tsv in a fresh process with the thread count fixed, and collects what
the lesson writes with --json. The experiment: 2,000 training rows (the first 1,000 of each
class), the last 1,000 rows of the file held out. Full fine-tuning from pre-trained θ and from
random θ (1 epoch, lr 5e-5), frozen with pooler + classifier (`--frozen-epochs`, default 3),
classifier only and mean pooling (`--head-epochs`, default 10; lr 1e-3), and a logistic
regression on the same encoder's sentence embeddings (its penalty chosen on every 5th training
row); batch 32, max 64 tokens, seed 0.
How the frozen runs' epochs were chosen (on training rows only, with the lesson's
`--validation`) is in lessons/14_what_to_train.md.

With PyTorch and transformers installed it also runs the reference's frozen recipe on the same
rows, in its own process: transformers' BertForSequenceClassification with the embeddings and
encoder frozen (requires_grad False), pooler and classifier trained, as a Trainer would (dropout
on, plain shuffled batches, AdamW, weight decay 0.01 off biases and LayerNorm, 10 % warm-up,
gradients clipped at 1.0) with the lesson's batch, lr and `--frozen-epochs`: the number the
issue's "frozen with the pooler trainable matches transformers' frozen recipe" is about.

Printed as Markdown, for benchmarks/README.md and lesson 14: per run the held-out accuracy,
the accuracy on (at most 500 of) its own training rows (a run below the others there has not
fit its data), the trainable numbers and the training time; then the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import MACHINE_CORES, ROOT, THREAD_VARS, run_worker  # noqa: E402

LESSON = ROOT / "lessons" / "14_what_to_train.py"
DATA = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
RECIPE = ["--data", "sst2", "--sst2", str(DATA), "--per-class", "1000", "--batch-size", "32",
          "--epochs", "1",
          "--full-lr", "5e-5", "--frozen-lr", "1e-3", "--max-length", "64"]


def run_lesson(args: list[str], threads: int) -> dict:
    """Lesson 14 with `args` in a fresh process (`threads` threads); the JSON it wrote."""
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, str(LESSON), *args, "--json", str(out)],
                              env=env, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0 or not out.is_file():
            sys.exit(f"bench_what_to_train: lesson 14 failed ({' '.join(args)}):\n"
                     + "\n".join(proc.stderr.strip().splitlines()[-5:]))
        return json.loads(out.read_text(encoding="utf-8"))


def sst2_split():
    """(train, held_out) exactly as lesson 14 --data sst2 --per-class 1000 cuts them."""
    sys.path.insert(0, str(ROOT))
    from minibert.data import read_labelled

    rows = read_labelled(DATA, text_column="sentence")
    train_all = rows.subset(range(len(rows) - 1000))
    held = rows.subset(range(len(rows) - 1000, len(rows)))
    picked = [i for name in sorted(set(train_all.labels))
              for i in [j for j, y in enumerate(train_all.labels) if y == name][:1000]]
    return train_all.subset(sorted(picked)), held


def worker_torch_frozen(epochs: int, threads: int) -> dict:
    """transformers' frozen recipe (pooler + classifier trained) on lesson 14's SST-2 rows."""
    import numpy as np
    import torch
    import transformers

    from minibert.checkpoint import resolve_model_dir

    torch.set_num_threads(threads)
    train, held = sst2_split()
    labels = sorted(set(train.labels))
    y = torch.tensor([labels.index(v) for v in train.labels])
    model_dir = str(resolve_model_dir("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()  # "newly initialized classifier": expected
    model = transformers.BertForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), attn_implementation="eager").train()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    for p in [*model.bert.embeddings.parameters(), *model.bert.encoder.parameters()]:
        p.requires_grad_(False)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not any(p is q for q in no_decay)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    bs, steps_per_epoch = 32, -(-len(train) // 32)
    schedule = transformers.get_linear_schedule_with_warmup(
        optimizer, round(0.1 * epochs * steps_per_epoch), epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=generator).tolist()
        for i in range(0, len(train), bs):
            idx = order[i:i + bs]
            enc = tokenizer([train.texts[j] for j in idx], padding=True, truncation=True,
                            max_length=64, return_tensors="pt")
            model(**enc, labels=y[idx]).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - start
    model.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(held), 64):
            enc = tokenizer(held.texts[i:i + 64], padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
            preds.append(model(**enc).logits.argmax(-1).numpy())
    truth = np.array([labels.index(v) for v in held.labels])
    return {"accuracy": float((np.concatenate(preds) == truth).mean()),
            "trainable": sum(p.numel() for _, p in named), "seconds": seconds}


def machine() -> str:
    """One line on where this ran: CPU, cores, Python, NumPy, commit and load."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip() or "unknown"
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}, {MACHINE_CORES} cores, Python {platform.python_version()}, NumPy "
            f"{np.__version__}, commit {commit}, load average at the end {load}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=MACHINE_CORES,
                        help="threads of each run (default: all cores)")
    parser.add_argument("--frozen-epochs", type=int, default=3,
                        help="epochs of the frozen run with the pooler (default 3)")
    parser.add_argument("--head-epochs", type=int, default=10,
                        help="epochs of the frozen runs with a classifier alone (default 10)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "torch-frozen":
        print(json.dumps(worker_torch_frozen(args.frozen_epochs, args.threads)))
        return
    if not DATA.is_file():
        sys.exit(f"bench_what_to_train: {DATA} not found (the shared SST-2 data)")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    command = [*RECIPE, "--frozen-epochs", str(args.frozen_epochs),
               "--head-epochs", str(args.head_epochs)]
    print(f"lessons/14_what_to_train.py {' '.join(command)}")
    result = run_lesson(command, args.threads)
    print("| run | held-out accuracy | on its training rows | trainable numbers | train time |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in result["runs"].items():
        print(f"| {name} | {r['accuracy']:.3f} | {r['train_accuracy']:.3f} | "
              f"{r['trainable']:,} | {r['seconds']:.0f} s |")
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        print("| transformers (PyTorch), frozen recipe | not run: needs torch and transformers "
              "| | | |")
    else:
        r = run_worker(__file__, ["--worker", "torch-frozen", "--frozen-epochs",
                                  str(args.frozen_epochs)], args.threads)
        if "error" in r:
            print(f"| transformers (PyTorch), frozen recipe | error: {r['error']} | | | |")
        else:
            print(f"| transformers (PyTorch), frozen: pooler + classifier | {r['accuracy']:.3f} "
                  f"| | {r['trainable']:,} | {r['seconds']:.0f} s |")
    print(f"| always the commonest class | {result['commonest_class']:.3f} | | | |")
    print(f"(logistic regression: C = {result['logistic_regression_C']:g}, chosen on every 5th "
          "training row; time includes embedding the rows)")
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    print(f"\nstarted {started}, {threads}; {machine()}")


if __name__ == "__main__":
    main()
