"""Lesson 14: start from pre-trained θ or random θ; train everything, or only the head.

    .venv/bin/python lessons/14_what_to_train.py                    # about a minute or two
    .venv/bin/python lessons/14_what_to_train.py --per-class 64     # longer, in the .md
    .venv/bin/python lessons/14_what_to_train.py --data sst2        # SST-2, in the .md

The same fine-tuning (data, recipe, seed, architecture: all-MiniLM-L6-v2's) run five ways:

    full, from pre-trained θ       every parameter trains (the course's fine-tuning)
    full, from random θ            the same, but θ starts random: no pre-training at all
    frozen, pooler + classifier    θ fixed; the head reads the pooled [CLS] (transformers' recipe)
    frozen, classifier only        θ and the pooler fixed (MiniLM's pooler was never trained)
    frozen, mean pooling           θ fixed; the head reads the mean of the token vectors

For each: accuracy on held-out data, trainable parameters and training time.
"""

import argparse
import time
from pathlib import Path

from _common import REPO, banner, load_quietly, minilm_dir

import minibert
from minibert.data import LabelledData, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.evaluation import evaluate
from minibert.model import BertForSequenceClassification
from minibert.tokenizer import Tokenizer
from minibert.train import finetune

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", choices=["tickets", "sst2"], default="tickets",
                    help="tickets (shipped) or sst2 (../shared/data/sst2, held-out split)")
parser.add_argument("--per-class", type=int, default=16,
                    help="training examples per class (default 16)")
parser.add_argument("--max-test", type=int, default=None, help="evaluate on at most N examples")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--full-lr", type=float, default=1e-4, help="lr of full fine-tuning")
parser.add_argument("--frozen-lr", type=float, default=1e-3, help="lr of the frozen runs")
parser.add_argument("--max-length", type=int, default=64)
args = parser.parse_args()


def per_class(data: LabelledData, n: int) -> LabelledData:
    """The first n examples of each class, in file order."""
    picked = [i for name in sorted(set(data.labels))
              for i in [j for j, y in enumerate(data.labels) if y == name][:n]]
    return data.subset(sorted(picked))


if args.data == "tickets":
    train_all = read_labelled(support_tickets_dir() / "train.tsv")
    test = read_labelled(support_tickets_dir() / "test.tsv")
else:  # SST-2's training file; the last 1,000 rows are held out and never trained on
    path = REPO.parent / "shared" / "data" / "sst2" / "train.tsv"
    if not path.is_file():
        raise SystemExit(f"{path} not found: --data sst2 needs the shared SST-2 folder")
    rows = read_labelled(path, text_column="sentence")
    train_all, test = rows.subset(range(len(rows) - 1000)), rows.subset(
        range(len(rows) - 1000, len(rows)))
train = per_class(train_all, args.per_class)
if args.max_test:
    test = test.subset(range(min(args.max_test, len(test))))
labels = sorted(set(train.labels))
print(f"{args.data}: {len(train)} training examples ({args.per_class} per class), "
      f"{len(test)} held-out examples, classes {labels}")

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
id2label = dict(enumerate(labels))


def build(pretrained: bool, pooling: str = "cls"):
    minibert.manual_seed(0)  # the same fresh head ω in every run
    if pretrained:
        return load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                            id2label=id2label, pooling=pooling)
    pre = BertForSequenceClassification.from_pretrained  # only to read MiniLM's config
    config = load_quietly(pre, model_dir, id2label=id2label).config
    minibert.manual_seed(0)
    return BertForSequenceClassification(config)  # the same architecture, random θ


RUNS = [  # name, pre-trained θ?, pooling, frozen?, what trains
    ("full, from pre-trained θ", True, "cls", False),
    ("full, from random θ", False, "cls", False),
    ("frozen, pooler + classifier", True, "cls", True),
    ("frozen, classifier only", True, "cls", "pooler"),
    ("frozen, mean pooling", True, "mean", True),
]

banner(f"1. Five runs: {args.epochs} epochs, batch {args.batch_size}, AdamW, 10 % warm-up, "
       "seed 0")
results = {}
for name, pretrained, pooling, frozen in RUNS:
    model = build(pretrained, pooling)
    if frozen == "pooler":  # the pooler stays as loaded: finetune then freezes θ as well
        for p in model.bert.pooler.parameters():
            p.requires_grad = False
    # trainable numbers, as finetune will see them (θ frozen except what the head reads)
    trainable = sum(p.data.size for n, p in model.named_parameters() if p.requires_grad and (
        not frozen or n.startswith(("classifier.", "bert.pooler.")) and not (
            pooling == "mean" and n.startswith("bert.pooler."))))
    start = time.perf_counter()
    finetune(model, tok, train, epochs=args.epochs, batch_size=args.batch_size,
             lr=args.frozen_lr if frozen else args.full_lr, max_length=args.max_length,
             freeze_encoder=bool(frozen), seed=0, progress=False)
    seconds = time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad = True
    m = evaluate(model, tok, test, max_length=args.max_length)
    results[name] = (m["accuracy"], trainable, seconds)
    print(f"  {name:<30} accuracy {m['accuracy']:.3f}  ({trainable:,} trainable, "
          f"{seconds:.0f} s)")

banner("2. Side by side")
chance = max(test.labels.count(y) for y in labels) / len(test)
print(f"{'run':<30} {'accuracy':>8} {'trainable':>12} {'train time':>10}")
for name, (acc, n, s) in results.items():
    print(f"{name:<30} {acc:>8.3f} {n:>12,} {s:>9.0f}s")
print(f"{'always the commonest class':<30} {chance:>8.3f}")

full_pre, full_rand = results[RUNS[0][0]][0], results[RUNS[1][0]][0]
print(f"\nPre-training is worth {full_pre - full_rand:+.3f} accuracy here: the same recipe from "
      f"random θ reaches {full_rand:.3f}, from MiniLM's θ {full_pre:.3f}.")
frozen_cls, frozen_fixed, frozen_mean = (results[RUNS[i][0]][0] for i in (2, 3, 4))
print(f"Frozen, the head's input decides: the pooled [CLS] with the pooler trained "
      f"{frozen_cls:.3f}, with MiniLM's never-trained pooler fixed {frozen_fixed:.3f}, the mean "
      f"of the token vectors (what MiniLM was trained to produce) {frozen_mean:.3f}.")
print("\nRead next: _freeze_encoder in minibert/train.py (what 'frozen' leaves trainable),")
print("BertForSequenceClassification.forward in minibert/model.py (config.pooling).")
if args.data == "sst2":
    print(f"(SST-2: the last 1,000 rows of {Path('../shared/data/sst2/train.tsv')} are held out)")
