"""Lesson 16: the two stages at laptop scale — pre-train a small BERT, then fine-tune it.

    .venv/bin/python lessons/16_two_stages.py                      # about two minutes
    .venv/bin/python lessons/16_two_stages.py --corpus FILE         # your own text
    .venv/bin/python lessons/16_two_stages.py --seed 1              # another pre-training

Stage 1: a small BERT learns from raw text by masked-language modelling (no labels). Stage 2:
the same architecture is fine-tuned on a few labelled tickets, from the pre-trained θ and from
random θ, with the same recipe, once per fine-tuning seed. The difference is what stage 1
bought; several seeds show whether it is more than the luck of one run.

The default corpus ships with minibert (CC0): the texts of the training tickets and of the
ticket_entities training sentences, without their labels. The held-out tickets are never
pre-trained on; their text measures the MLM loss.
"""

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _common import banner, out_dir

import minibert
from minibert import functional as F
from minibert import no_grad
from minibert.config import BertConfig
from minibert.data import read_labelled, read_text_corpus
from minibert.datasets import support_tickets_dir, ticket_entities_dir
from minibert.evaluation import evaluate
from minibert.model import BertForMaskedLM, BertForSequenceClassification
from minibert.token_data import read_token_labelled
from minibert.tokenizer import Tokenizer
from minibert.train import finetune, pretrain_mlm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--corpus", type=Path, default=None, help="a text file of your own, one "
                    "paragraph a line (default: the shipped ticket texts)")
parser.add_argument("--epochs", type=int, default=80, help="pre-training epochs (default 80)")
parser.add_argument("--pretrain-lr", type=float, default=3e-3)
parser.add_argument("--mlm-probability", type=float, default=0.3, help="share of tokens masked "
                    "(default 0.3: more to predict in each short ticket)")
parser.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
parser.add_argument("--vocab-size", type=int, default=1000)
parser.add_argument("--seed", type=int, default=0, help="the pre-training's seed")
parser.add_argument("--per-class", type=int, default=16, help="labelled tickets per class for "
                    "fine-tuning (default 16: pre-training matters most with few labels)")
parser.add_argument("--finetune-epochs", type=int, default=10)
parser.add_argument("--finetune-lr", type=float, default=1e-3)
parser.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds (default 3)")
args = parser.parse_args()

train = read_labelled(support_tickets_dir() / "train.tsv")
test = read_labelled(support_tickets_dir() / "test.tsv")
if args.corpus is None:
    corpus = train.texts + [" ".join(w) for w in
                            read_token_labelled(ticket_entities_dir() / "train.conll").words]
    source = "the shipped ticket texts (train.tsv + ticket_entities/train.conll, no labels)"
else:
    corpus, source = read_text_corpus(args.corpus), str(args.corpus)
labels = sorted(set(train.labels))
train = train.subset(sorted(i for y in labels for i in
                            [j for j, t in enumerate(train.labels) if t == y][:args.per_class]))
print(f"corpus: {source}: {len(corpus):,} lines, {sum(len(c.split()) for c in corpus):,} words")

tok = Tokenizer.train(corpus, vocab_size=args.vocab_size)
H = args.hidden
config = BertConfig(vocab_size=tok.vocab_size, hidden_size=H, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=4 * H, max_position_embeddings=64)
minibert.manual_seed(args.seed)
mlm = BertForMaskedLM(config)
print(f"a {tok.vocab_size:,}-piece vocabulary learned from the corpus; a BERT of 2 layers, "
      f"hidden {H}: {mlm.num_parameters():,} parameters")

def quietly():
    """Keep the training loops' own epoch lines (stdout) out of the lesson's output."""
    return contextlib.redirect_stdout(io.StringIO())


PROBE = "i was [MASK] twice for my subscription this month."


def guesses(model, k: int = 5) -> list[tuple[str, float]]:
    enc = tok.encode(PROBE)
    pos = enc.tokens.index("[MASK]")
    with no_grad():
        probs = F.softmax(model.eval()(np.array([enc.input_ids])).logits, axis=-1).numpy()
    p = probs[0, pos]
    return [(tok.convert_ids_to_tokens(int(i)), float(p[i])) for i in p.argsort()[::-1][:k]]


banner("1. Stage 1: masked-language-model pre-training on raw text")
print(f"'{PROBE}' before pre-training, top 5: "
      + ", ".join(f"{t} {q:.3f}" for t, q in guesses(mlm)))
every = max(1, args.epochs // 10)
print(f"\nMLM loss on the held-out tickets' text after each epoch (every {every} shown; the bar "
      "is the loss as a share of ln V, a uniform guess):")
lesson_output = sys.stdout


def show(record: dict) -> None:
    """Called by the training loop after every step and epoch: print some epochs' losses."""
    n = record.get("epoch") if record["event"] == "epoch" else None
    if n is not None and (n % every == 0 or n in (1, args.epochs)):
        loss = record["eval"]["loss"]
        print(f"  epoch {n:>3}  train {record['train_loss']:.3f}  held-out {loss:.3f}  "
              f"{'#' * int(40 * loss / np.log(tok.vocab_size))}", file=lesson_output, flush=True)


start = time.perf_counter()
with quietly():  # the loop's own line per epoch: the lesson prints them above
    history = pretrain_mlm(mlm, tok, corpus, eval_texts=test.texts, epochs=args.epochs,
                           batch_size=32, lr=args.pretrain_lr, max_length=64, seed=args.seed,
                           mlm_probability=args.mlm_probability, progress=False, log=show)
pretrain_s = time.perf_counter() - start
eval_losses = [e["eval"]["loss"] for e in history["epochs"]]
print(f"{args.epochs} epochs, {len(history['steps'])} steps, {pretrain_s:.0f} s")
print(f"held-out MLM loss {eval_losses[0]:.3f} -> {eval_losses[-1]:.3f} "
      f"(a uniform guess: ln V = {np.log(tok.vocab_size):.3f})")
after = guesses(mlm)
print(f"'{PROBE}' after pre-training, top 5: " + ", ".join(f"{t} {q:.3f}" for t, q in after))
folder = out_dir() / "16_pretrained"
mlm.save_pretrained(folder)
tok.save_pretrained(folder)
try:
    from minibert.course.viz import loss_curve

    loss_curve(history, title="MLM pre-training").savefig(out_dir() / "16_mlm_loss.png", dpi=120)
    print(f"loss curve saved to {out_dir() / '16_mlm_loss.png'}")
except ImportError:
    pass

banner("2. Stage 2: the same fine-tuning from pre-trained θ and from random θ")
print(f"{len(train)} labelled tickets, {args.finetune_epochs} epochs, batch 16, lr "
      f"{args.finetune_lr:g}; accuracy on the {len(test)} held-out tickets, per fine-tuning seed "
      "(the seed draws the new head ω and the order of the batches):")
accuracy = {"pre-trained θ": [], "random θ": []}
start = time.perf_counter()
for seed in range(args.seeds):
    for name in accuracy:
        minibert.manual_seed(1000 + seed)
        if name == "pre-trained θ":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the MLM head is discarded, the classifier fresh
                model = BertForSequenceClassification.from_pretrained(
                    folder, id2label=dict(enumerate(labels)))
        else:
            model = BertForSequenceClassification(BertConfig.from_dict(
                dict(config.to_dict(), id2label={str(i): y for i, y in enumerate(labels)})))
        with quietly():
            finetune(model, tok, train, epochs=args.finetune_epochs, batch_size=16,
                     lr=args.finetune_lr, max_length=64, seed=seed, progress=False)
        accuracy[name].append(evaluate(model, tok, test, max_length=64)["accuracy"])
    pre, rnd = accuracy["pre-trained θ"][-1], accuracy["random θ"][-1]
    print(f"  seed {seed}: from pre-trained θ {pre:.3f}   from random θ {rnd:.3f}   "
          f"gain {pre - rnd:+.3f}")
finetune_s = time.perf_counter() - start
for name, accs in accuracy.items():
    print(f"  from {name:<14} accuracy {np.mean(accs):.3f} (spread ±{np.std(accs):.3f} over "
          f"{len(accs)} seeds)")
gains = np.array(accuracy["pre-trained θ"]) - np.array(accuracy["random θ"])
print(f"\nWhat {pretrain_s:.0f} s of pre-training on unlabelled text bought: {gains.mean():+.3f} "
      f"accuracy, the mean over {args.seeds} fine-tuning seeds; pre-trained θ better in "
      f"{int((gains > 0).sum())} of {args.seeds} ({2 * args.seeds} fine-tunings, "
      f"{finetune_s:.0f} s).")
print("\nRead next: pretrain_mlm and finetune in minibert/train.py; lesson 14 for the same")
print("comparison with MiniLM's pre-training (far more text and compute).")
