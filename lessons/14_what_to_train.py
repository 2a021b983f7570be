"""Lesson 14: start from pre-trained θ or random θ; train everything, or only the head.

    .venv/bin/python lessons/14_what_to_train.py                    # one to three minutes
    .venv/bin/python lessons/14_what_to_train.py --data sst2 --sst2 FILE ...   # SST-2, in the .md
    (benchmarks/bench_what_to_train.py runs the SST-2 experiment and records its results)

The same fine-tuning (data, recipe, seed, architecture: all-MiniLM-L6-v2's) run five ways:

    full, from pre-trained θ       every parameter trains (the course's fine-tuning)
    full, from random θ            the same, but θ starts random: no pre-training at all
    frozen, pooler + classifier    θ fixed; the head reads the pooled [CLS] (transformers' recipe)
    frozen, classifier only        θ and the pooler fixed (MiniLM's pooler was never trained)
    frozen, mean pooling           θ fixed; the head reads the mean of the token vectors

For each: accuracy on held-out data (and on its own training rows, at most 500 of them: a
run that has not fit them is under-trained), trainable parameters and training time. Then the
yardstick for the frozen runs: a logistic regression on the same encoder's sentence embeddings
(mean-pooled, unit length), fitted in the same run on the same rows, its penalty chosen on a
validation part of the training rows (never on the held-out ones).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import banner, load_quietly, minilm_dir

import minibert
from minibert.data import LabelledData, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.evaluation import evaluate
from minibert.fileio import atomic_write
from minibert.metrics import accuracy
from minibert.model import BertForSequenceClassification, BertModel
from minibert.nn import Linear
from minibert.sentence import SentenceEncoder
from minibert.tokenizer import Tokenizer
from minibert.train import finetune, fit_logistic_regression

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", choices=["tickets", "sst2"], default="tickets",
                    help="tickets (shipped, the default) or sst2 (GLUE's SST-2, given by --sst2)")
parser.add_argument("--sst2", type=Path, metavar="FILE",
                    help="GLUE's SST-2 train.tsv, for --data sst2 (not shipped: see "
                         "lessons/data/README.md); its last 1,000 rows are held out")
parser.add_argument("--per-class", type=int, default=16,
                    help="training examples per class (default 16)")
parser.add_argument("--max-test", type=int, default=None, help="evaluate on at most N examples")
parser.add_argument("--epochs", type=int, default=3, help="epochs of full fine-tuning")
parser.add_argument("--frozen-epochs", type=int, default=3,
                    help="epochs of the frozen run that trains the pooler too (default 3)")
parser.add_argument("--head-epochs", type=int, default=None,
                    help="epochs of the frozen runs that train only the classifier (default: 50 "
                         "on the tickets, 10 on SST-2, a few hundred steps; see the .md)")
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--full-lr", type=float, default=1e-4, help="lr of full fine-tuning")
parser.add_argument("--frozen-lr", type=float, default=1e-3, help="lr of the frozen runs")
parser.add_argument("--max-length", type=int, default=64)
parser.add_argument("--runs", default="full,random,pooler,fixed,mean",
                    help="which runs, comma-separated (default: all five; see RUNS below)")
parser.add_argument("--validation", action="store_true",
                    help="evaluate on every 5th training example (trained on the others) "
                         "instead of the held-out set: for choosing a setting")
parser.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON")
args = parser.parse_args()
if args.data == "sst2" and args.sst2 is None:
    parser.error("--data sst2 needs GLUE's SST-2 training file, which minibert does not ship "
                 "(Stanford states no licence for SST; see lessons/data/README.md): download "
                 "GLUE's SST-2 and add --sst2 PATH/train.tsv. Without it, run the default "
                 "--data tickets, which uses the shipped support tickets.")
if args.sst2 is not None and args.data != "sst2":
    parser.error("--sst2 goes with --data sst2")
if args.sst2 is not None and not args.sst2.is_file():
    parser.error(f"--sst2 {args.sst2}: no such file (GLUE's SST-2 train.tsv, with a "
                 "'sentence<TAB>label' header)")
if args.head_epochs is None:  # a classifier alone needs a few hundred steps: 4 or 63 per epoch
    args.head_epochs = 50 if args.data == "tickets" else 10


def per_class(data: LabelledData, n: int) -> LabelledData:
    """The first n examples of each class, in file order."""
    picked = [i for name in sorted(set(data.labels))
              for i in [j for j, y in enumerate(data.labels) if y == name][:n]]
    return data.subset(sorted(picked))


if args.data == "tickets":
    train_all = read_labelled(support_tickets_dir() / "train.tsv")
    test = read_labelled(support_tickets_dir() / "test.tsv")
else:  # SST-2's training file; the last 1,000 rows are held out and never trained on
    rows = read_labelled(args.sst2, text_column="sentence")
    train_all, test = rows.subset(range(len(rows) - 1000)), rows.subset(
        range(len(rows) - 1000, len(rows)))
train = per_class(train_all, args.per_class)
if args.validation:  # the held-out set is not touched: a setting is chosen on training rows
    every_5th = np.arange(len(train)) % 5 == 4
    train, test = train.subset(np.flatnonzero(~every_5th)), train.subset(np.flatnonzero(every_5th))
if args.max_test:
    test = test.subset(range(min(args.max_test, len(test))))
labels = sorted(set(train.labels))
print(f"{args.data}: {len(train)} training examples ({args.per_class} per class"
      f"{', less every 5th' if args.validation else ''}), {len(test)} "
      f"{'validation' if args.validation else 'held-out'} examples, classes {labels}")

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


RUNS = {  # key: name, pre-trained θ?, pooling, frozen?
    "full": ("full, from pre-trained θ", True, "cls", False),
    "random": ("full, from random θ", False, "cls", False),
    "pooler": ("frozen, pooler + classifier", True, "cls", True),
    "fixed": ("frozen, classifier only", True, "cls", "pooler"),
    "mean": ("frozen, mean pooling", True, "mean", True),
}
chosen = args.runs.split(",")
if not set(chosen) <= set(RUNS):
    raise SystemExit(f"--runs: unknown {sorted(set(chosen) - set(RUNS))}; choose from {list(RUNS)}")
NAME = {key: RUNS[key][0] for key in chosen}

banner(f"1. {len(chosen)} runs: batch {args.batch_size}, AdamW, 10 % warm-up, seed 0; full: "
       f"{args.epochs} epochs, lr {args.full_lr:g}; frozen: lr {args.frozen_lr:g}, "
       f"{args.frozen_epochs} epochs with the pooler, {args.head_epochs} for a classifier alone")
results = {}  # name -> (held-out accuracy, trainable numbers, seconds, training accuracy)
seen = range(min(len(train), 500))  # training rows scored for the training accuracy
for name, pretrained, pooling, frozen in (RUNS[key] for key in chosen):
    model = build(pretrained, pooling)
    if frozen == "pooler":  # the pooler stays as loaded: finetune then freezes θ as well
        for p in model.bert.pooler.parameters():
            p.requires_grad = False
    # trainable numbers, as finetune will see them (θ frozen except what the head reads)
    trainable = sum(p.data.size for n, p in model.named_parameters() if p.requires_grad and (
        not frozen or n.startswith(("classifier.", "bert.pooler.")) and not (
            pooling == "mean" and n.startswith("bert.pooler."))))
    start = time.perf_counter()
    # a classifier alone (770 or 1,540 numbers) moves slowly: it gets more epochs (see the .md)
    epochs = args.epochs if not frozen else (
        args.frozen_epochs if trainable > model.classifier.num_parameters() else args.head_epochs)
    finetune(model, tok, train, epochs=epochs,
             batch_size=args.batch_size, lr=args.frozen_lr if frozen else args.full_lr,
             max_length=args.max_length, freeze_encoder=bool(frozen), seed=0, progress=False)
    seconds = time.perf_counter() - start
    for p in model.parameters():
        p.requires_grad = True
    held_out = evaluate(model, tok, test, max_length=args.max_length)["accuracy"]
    fit = evaluate(model, tok, train.subset(seen), max_length=args.max_length)["accuracy"]
    results[name] = (held_out, trainable, seconds, fit)
    print(f"  {name:<30} accuracy {held_out:.3f}, on its training rows {fit:.3f}  "
          f"({trainable:,} trainable, {seconds:.0f} s)")


def logistic_regression(E: np.ndarray, y: np.ndarray, C: float) -> Linear:
    """Multinomial logistic regression on fixed embeddings E (n, H), classes y (n,): a linear
    layer H -> classes fitted to cross-entropy + λ/2 ‖W‖², λ = 1/(C n), by 500 full-batch AdamW
    steps (fit_logistic_regression in minibert/train.py: exercise 14.1). The problem is convex;
    on SST-2's 2,000 rows 500 steps come within 0.1 % of the minimum for C ≤ 1, 2 % for C = 10.
    """
    minibert.manual_seed(0)  # the same start for every fit
    return fit_logistic_regression(E, y, num_classes=len(labels), C=C, steps=500, lr=1e-2)


def predict(head: Linear, E: np.ndarray) -> np.ndarray:
    with minibert.no_grad():
        return head(minibert.tensor(E)).numpy().argmax(axis=1)


banner("2. The yardstick: a logistic regression on the sentence embeddings")
start = time.perf_counter()
encoder = SentenceEncoder(BertModel.from_pretrained(model_dir), tok, args.max_length)
E_train, E_test = encoder.encode(train.texts), encoder.encode(test.texts)  # unit vectors
y_train = np.array([labels.index(y) for y in train.labels])
y_test = np.array([labels.index(y) for y in test.labels])
# The penalty is the one setting; choose it on every 5th training row, fitted on the others.
val = np.arange(len(train)) % 5 == 4
scores = {C: accuracy(y_train[val], predict(logistic_regression(E_train[~val], y_train[~val], C),
                                            E_train[val]))
          for C in (0.1, 1.0, 10.0)}
best_C = max(scores, key=scores.get)  # ties: the first, i.e. the stronger penalty
head = logistic_regression(E_train, y_train, best_C)  # refitted on all the training rows
seconds = time.perf_counter() - start
logreg = "logistic regression (embeddings)"
results[logreg] = (accuracy(y_test, predict(head, E_test)), head.W.data.size + head.b.data.size,
                   seconds, accuracy(y_train[seen], predict(head, E_train[seen])))
print("validation accuracy (every 5th training row) by C: "
      + ", ".join(f"C={C:g} {a:.3f}" for C, a in scores.items()) + f"; chosen C={best_C:g}")
print(f"  {logreg:<30} accuracy {results[logreg][0]:.3f}, on its training rows "
      f"{results[logreg][3]:.3f}  ({results[logreg][1]:,} trainable, {seconds:.0f} s with "
      "the embeddings)")

banner("3. Side by side")
chance = max(test.labels.count(y) for y in labels) / len(test)
print(f"{'run':<32} {'accuracy':>8} {'train acc':>9} {'trainable':>12} {'train time':>10}")
for name, (a, n, s, fit) in results.items():
    print(f"{name:<32} {a:>8.3f} {fit:>9.3f} {n:>12,} {s:>9.0f}s")
print(f"{'always the commonest class':<32} {chance:>8.3f}")

acc = {key: results[name][0] for key, name in NAME.items()}
print()
if {"full", "random"} <= set(acc):
    print(f"Pre-training is worth {acc['full'] - acc['random']:+.3f} accuracy here: the same "
          f"recipe from random θ reaches {acc['random']:.3f}, from MiniLM's θ {acc['full']:.3f}.")
if {"pooler", "fixed", "mean"} <= set(acc):
    print(f"Frozen, the head's input decides: the pooled [CLS] with the pooler trained "
          f"{acc['pooler']:.3f}, with MiniLM's never-trained pooler fixed {acc['fixed']:.3f}, the "
          f"mean of the token vectors (what MiniLM was trained to produce) {acc['mean']:.3f}.")
if "mean" in acc:
    gap = acc["mean"] - results[logreg][0]
    print(f"Frozen with mean pooling {'matches or beats' if gap >= 0 else 'trails'} the "
          f"logistic regression on the same embeddings by {abs(gap):.3f} ({acc['mean']:.3f} vs "
          f"{results[logreg][0]:.3f}).")
if args.json:  # for benchmarks/bench_what_to_train.py
    record = {"args": {k: v for k, v in vars(args).items() if k != "json"},
              "logistic_regression_C": best_C, "commonest_class": chance,
              "runs": {name: dict(zip(("accuracy", "trainable", "seconds", "train_accuracy"), r,
                                      strict=True)) for name, r in results.items()}}
    atomic_write(args.json, lambda f: json.dump(record, f, indent=1), mode="w")
print("\nRead next: _freeze_encoder in minibert/train.py (what 'frozen' leaves trainable),")
print("fit_logistic_regression there (the yardstick, exercise 14.1),")
print("BertForSequenceClassification.forward in minibert/model.py (config.pooling).")
if args.data == "sst2" and not args.validation:
    print(f"(SST-2: the last 1,000 rows of {args.sst2} are held out)")
