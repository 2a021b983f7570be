"""Lesson 15: adapting with few examples and little compute — without training, or barely.

    .venv/bin/python lessons/15_adapting_without_training.py               # about a minute
    .venv/bin/python lessons/15_adapting_without_training.py --sizes 4,16,64,all   # the .md

Three ways to adapt all-MiniLM-L6-v2 to the ticket classes, as the number of labelled tickets
per class grows:

    (a) no training at all: embed each class's *description* once; a ticket gets the class whose
        description is most similar to it (cosine of sentence embeddings) -- a prompt-like
        zero-shot classifier, needing no labelled example
    (b) frozen encoder + trained head: embed the labelled tickets once, train only a linear
        layer on those fixed vectors
    (c) full fine-tuning: every parameter trains (lesson 8)

Accuracy on the 142 held-out tickets, and the time each took. A figure of the learning curve
goes to lessons/out/15_learning_curve.png.
"""

import argparse
import time

import numpy as np
from _common import banner, load_quietly, minilm_dir, out_dir

import minibert
from minibert import functional as F
from minibert.data import read_labelled
from minibert.datasets import support_tickets_dir
from minibert.evaluation import evaluate
from minibert.metrics import accuracy
from minibert.model import BertForSequenceClassification
from minibert.nn import Linear
from minibert.optim import AdamW
from minibert.sentence import SentenceEncoder
from minibert.tokenizer import Tokenizer
from minibert.train import finetune

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sizes", default="4,16", help="labelled tickets per class, comma-separated "
                    "('all' = every training ticket); default 4,16")
parser.add_argument("--full-up-to", default="16", help="run full fine-tuning only up to this "
                    "size per class ('all' for every size); it is the slow one")
parser.add_argument("--max-test", type=int, default=None, help="evaluate on at most N tickets")
args = parser.parse_args()

train_all = read_labelled(support_tickets_dir() / "train.tsv")
test = read_labelled(support_tickets_dir() / "test.tsv")
if args.max_test:
    test = test.subset(range(min(args.max_test, len(test))))
labels = sorted(set(train_all.labels))
y_test = np.array([labels.index(y) for y in test.labels])
largest = max(train_all.labels.count(y) for y in labels)
sizes = [largest if s == "all" else int(s) for s in args.sizes.split(",")]
full_limit = largest if args.full_up_to == "all" else int(args.full_up_to)

# The class descriptions: what each team handles, in words (from the dataset's README). They
# are the only "training data" of (a).
DESCRIPTIONS = {
    "Billing Issue": "money: charges, double charges, refunds, invoices and receipts, failed "
                     "payments, prices and plan changes, coupons, tax",
    "Technical Support": "something does not work: the app or the device crashes, errors, bugs, "
                         "sync problems, slowness, installation, firmware",
    "Account Question": "who can get in and how: passwords, two-factor login, locked accounts, "
                        "email and profile changes, team members, deleting an account",
    "Shipping & Delivery": "physical goods in transit: order status and tracking, delays, lost "
                           "or damaged parcels, wrong items, addresses, returns of an item",
}

encoder = SentenceEncoder.from_pretrained(minilm_dir())
start = time.perf_counter()
E_test = encoder.encode(test.texts)  # (n, 384) unit vectors, computed once for (a) and (b)
embed_test_s = time.perf_counter() - start

banner("(a) No training: the most similar class description")
start = time.perf_counter()
E_desc = encoder.encode([DESCRIPTIONS[y] for y in labels])  # (C, 384)
pred = (E_test @ E_desc.T).argmax(axis=1)  # cosine similarity: the vectors have length 1
zero_shot = accuracy(y_test, pred)
zero_shot_s = time.perf_counter() - start
print(f"accuracy {zero_shot:.3f} with 0 labelled tickets; it cost {len(labels)} sentence "
      f"embeddings ({zero_shot_s:.1f} s) and {len(test)} to classify ({embed_test_s:.1f} s)")
for y, d in DESCRIPTIONS.items():
    print(f"  {y:<20} '{d[:60]}…'")


def per_class(n: int):
    picked = [i for y in labels for i in [j for j, t in enumerate(train_all.labels) if t == y][:n]]
    return train_all.subset(sorted(picked))


def train_head(E: np.ndarray, y: np.ndarray, epochs: int = 100, lr: float = 1e-2) -> Linear:
    """A linear layer 384 -> C on fixed embeddings: full-batch AdamW on the cross-entropy."""
    minibert.manual_seed(0)
    head = Linear(E.shape[1], len(labels))
    opt = AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    x = minibert.tensor(E)
    for _ in range(epochs):
        opt.zero_grad()
        loss = F.cross_entropy(head(x), y)
        loss.backward()
        opt.step()
    return head


model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
rows = []
banner("(b) frozen encoder + a trained head, and (c) full fine-tuning, as the data grows")
for n in sizes:
    train = per_class(n)
    y_train = np.array([labels.index(y) for y in train.labels])
    start = time.perf_counter()
    head = train_head(encoder.encode(train.texts), y_train)
    with minibert.no_grad():
        frozen = accuracy(y_test, head(minibert.tensor(E_test)).numpy().argmax(axis=1))
    frozen_s = time.perf_counter() - start
    full = full_s = None
    if n <= full_limit:
        minibert.manual_seed(0)
        model = load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                             id2label=dict(enumerate(labels)))
        start = time.perf_counter()
        finetune(model, tok, train, epochs=3, batch_size=16, lr=1e-4, max_length=64, seed=0,
                 progress=False)
        full_s = time.perf_counter() - start
        full = evaluate(model, tok, test, max_length=64)["accuracy"]
    rows.append((n, len(train), frozen, frozen_s, full, full_s))
    full_text = "not run" if full is None else f"{full:.3f} ({full_s:.0f} s)"
    print(f"  {n:>3} per class ({len(train):>3} tickets): frozen + head {frozen:.3f} "
          f"({frozen_s:.1f} s), full {full_text}")

banner("Side by side: accuracy on the held-out tickets (training time)")
print(f"{'per class':>9} {'no training':>12} {'frozen + head':>16} {'full fine-tuning':>18}")
for n, _, frozen, frozen_s, full, full_s in rows:
    full_text = "—" if full is None else f"{full:.3f} ({full_s:.0f}s)"
    print(f"{n:>9} {zero_shot:>12.3f} {frozen:>9.3f} ({frozen_s:>3.0f}s) {full_text:>18}")
first = rows[0]
print(f"\nWith {first[0]} examples per class, training a head on frozen embeddings "
      f"{'beats' if first[2] > zero_shot else 'does not beat'} the zero-shot descriptions "
      f"({first[2]:.3f} vs {zero_shot:.3f}); with {rows[-1][0]} per class the frozen head reaches "
      f"{rows[-1][2]:.3f}.")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [r[0] for r in rows]
    ax1.axhline(zero_shot, color="gray", linestyle="--", label="(a) no training")
    ax1.plot(xs, [r[2] for r in rows], "o-", label="(b) frozen + head")
    done = [r for r in rows if r[4] is not None]
    ax1.plot([r[0] for r in done], [r[4] for r in done], "s-", label="(c) full fine-tuning")
    ax1.set(xscale="log", xlabel="labelled tickets per class", ylabel="held-out accuracy",
            title="Accuracy")
    ax1.legend()
    ax2.plot(xs, [r[3] for r in rows], "o-", label="(b) frozen + head")
    ax2.plot([r[0] for r in done], [r[5] for r in done], "s-", label="(c) full fine-tuning")
    ax2.set(xscale="log", yscale="log", xlabel="labelled tickets per class",
            ylabel="seconds", title="Training time")
    ax2.legend()
    for ax in (ax1, ax2):  # the sizes themselves as ticks, not powers of ten
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.minorticks_off()
    fig.tight_layout()
    path = out_dir() / "15_learning_curve.png"
    fig.savefig(path, dpi=120)
    print(f"\nlearning curve saved to {path}")
except ImportError:
    print("\n(matplotlib is not installed: no figure)")
print("\nRead next: SentenceEncoder in minibert/sentence.py (the embeddings of (a) and (b)),")
print("lesson 14 (frozen vs full with the training loop itself).")
