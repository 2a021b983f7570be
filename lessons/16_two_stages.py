"""Lesson 16: the two stages at laptop scale — pre-train a small BERT, then fine-tune it.

    .venv/bin/python lessons/16_two_stages.py                      # about a minute
    .venv/bin/python lessons/16_two_stages.py --corpus FILE         # your own text
    .venv/bin/python lessons/16_two_stages.py --epochs 30           # longer, in the .md

Stage 1: a small BERT learns from raw text by masked-language modelling (no labels). Stage 2:
the same architecture is fine-tuned on the labelled tickets twice, from the pre-trained θ and
from random θ, with the same recipe and seed. The difference is what stage 1 bought.

The default corpus ships with minibert (CC0): the texts of the training tickets and of the
ticket_entities training sentences, without their labels. The held-out tickets are never
pre-trained on; their text measures the MLM loss.
"""

import argparse
import time
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
parser.add_argument("--epochs", type=int, default=12, help="pre-training epochs (default 12)")
parser.add_argument("--pretrain-lr", type=float, default=1e-3)
parser.add_argument("--per-class", type=int, default=16, help="labelled tickets per class for "
                    "fine-tuning (default 16: pre-training matters most with few labels)")
parser.add_argument("--finetune-epochs", type=int, default=10)
parser.add_argument("--finetune-lr", type=float, default=1e-3)
parser.add_argument("--vocab-size", type=int, default=1000)
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
config = BertConfig(vocab_size=tok.vocab_size, hidden_size=128, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=512, max_position_embeddings=64)
minibert.manual_seed(0)
mlm = BertForMaskedLM(config)
print(f"a {tok.vocab_size:,}-piece vocabulary learned from the corpus; a BERT of 2 layers, "
      f"hidden 128: {mlm.num_parameters():,} parameters")

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
start = time.perf_counter()
history = pretrain_mlm(mlm, tok, corpus, eval_texts=test.texts, epochs=args.epochs,
                       batch_size=32, lr=args.pretrain_lr, max_length=64, seed=0,
                       progress=False)
pretrain_s = time.perf_counter() - start
print(f"\n{args.epochs} epochs, {len(history['steps'])} steps, {pretrain_s:.0f} s. MLM loss on "
      "the held-out tickets' text, after each epoch:")
eval_losses = [e["eval"]["loss"] for e in history["epochs"]]
for e, loss in zip(history["epochs"], eval_losses, strict=True):
    print(f"  epoch {e['epoch']:>2}  train {e['train_loss']:.3f}  held-out {loss:.3f}  "
          f"{'#' * int(40 * loss / eval_losses[0])}")
print(f"held-out MLM loss {eval_losses[0]:.3f} -> {eval_losses[-1]:.3f} "
      f"(a uniform guess: ln V = {np.log(tok.vocab_size):.3f})")
after = guesses(mlm)
print(f"'{PROBE}' after pre-training, top 5: " + ", ".join(f"{t} {q:.3f}" for t, q in after))
folder = out_dir() / "16_pretrained"
mlm.save_pretrained(folder)
tok.save_pretrained(folder)
try:
    from minibert.viz import loss_curve

    loss_curve(history, title="MLM pre-training").savefig(out_dir() / "16_mlm_loss.png", dpi=120)
    print(f"loss curve saved to {out_dir() / '16_mlm_loss.png'}")
except ImportError:
    pass

banner("2. Stage 2: the same fine-tuning from pre-trained θ and from random θ")
results = {}
for name in ("pre-trained θ", "random θ"):
    minibert.manual_seed(1)  # the same fresh head ω in both runs
    if name == "pre-trained θ":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the MLM head is discarded, the classifier fresh
            model = BertForSequenceClassification.from_pretrained(
                folder, id2label=dict(enumerate(labels)))
    else:
        model = BertForSequenceClassification(BertConfig.from_dict(
            dict(config.to_dict(), id2label={str(i): y for i, y in enumerate(labels)})))
    start = time.perf_counter()
    finetune(model, tok, train, epochs=args.finetune_epochs, batch_size=16, lr=args.finetune_lr,
             max_length=64, seed=0, progress=False)
    seconds = time.perf_counter() - start
    results[name] = evaluate(model, tok, test, max_length=64)["accuracy"]
    print(f"  from {name:<14} accuracy {results[name]:.3f} on the {len(test)} held-out tickets "
          f"({len(train)} training tickets, {args.finetune_epochs} epochs, {seconds:.0f} s)")
gain = results["pre-trained θ"] - results["random θ"]
print(f"\nWhat {pretrain_s:.0f} s of pre-training on unlabelled text bought: {gain:+.3f} accuracy "
      f"({results['random θ']:.3f} -> {results['pre-trained θ']:.3f}).")
print("\nRead next: pretrain_mlm and finetune in minibert/train.py; lesson 14 for the same")
print("comparison with MiniLM's pre-training (far more text and compute).")
