"""Lesson 17: how probable a sentence is, what full fine-tuning forgets, and the road between.

    .venv/bin/python lessons/17_forgetting_and_partial_unfreezing.py
    .venv/bin/python lessons/17_forgetting_and_partial_unfreezing.py --general FILE  # your text

Two small BERTs are pre-trained with the masked LM, one on the support tickets and one on
general English prose. (1) The probability of a sentence under a masked LM, its
pseudo-log-likelihood, computed under each: each model prefers text like its own training text.
(2) The prose model is then fine-tuned on labelled tickets, fully, frozen, and with only its
last k layers unfrozen: accuracy, trained numbers, time, and its masked-LM loss on the prose
it was pre-trained on, before and after (forgetting). No weights needed.

The default prose is the explanatory text of this course itself (the paragraphs of the lessons'
.md files and of the quizzes' explanations): English about language models, which ships with
the project. Any text file works (--general), one paragraph or sentence per line.
"""

import argparse
import contextlib
import io
import itertools
import json
import math
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import REPO, banner

import minibert
from minibert.config import BertConfig
from minibert.data import MLMCollator, chunk_corpus, read_labelled, read_text_corpus
from minibert.datasets import support_tickets_dir
from minibert.evaluation import evaluate, evaluate_mlm, pseudo_log_likelihood
from minibert.model import BertForMaskedLM, BertForSequenceClassification
from minibert.tokenizer import Tokenizer
from minibert.train import finetune, pretrain_mlm

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--general", type=Path, default=None, help="a text file of general text, "
                    "one paragraph or sentence per line (default: the course's own prose)")
parser.add_argument("--pretrain-steps", type=int, default=600, help="MLM steps for each model")
parser.add_argument("--finetune-epochs", type=int, default=4)
parser.add_argument("--finetune-lr", type=float, default=1e-3)
parser.add_argument("--max-train", type=int, default=None, help="labelled tickets to fine-tune "
                    "on (default: all)")
args = parser.parse_args()


def course_prose() -> list[str]:
    """The sentences of the course's explanations: lesson paragraphs and quiz explanations."""
    paragraphs = []
    for md in sorted((REPO / "lessons").glob("[0-9]*.md")):
        for block in md.read_text(encoding="utf-8").split("\n\n"):
            if block.lstrip().startswith(("#", "|", "```", "    ", "**Run")):
                continue  # headings, tables, code: not prose
            paragraphs.append(" ".join(block.split()))
    for quiz in sorted((REPO / "minibert" / "course" / "quizzes").glob("*.json")):
        for q in json.loads(quiz.read_text(encoding="utf-8")).get("questions", []):
            if isinstance(q.get("explanation"), str):
                paragraphs.append(q["explanation"])
    text = " ".join(p for p in paragraphs if p)
    text = re.sub(r"[`*_]", "", text)  # Markdown marks are not words
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 6]


tickets = read_labelled(support_tickets_dir() / "train.tsv")
test = read_labelled(support_tickets_dir() / "test.tsv")
if args.general is None:
    prose, source = course_prose(), "the course's own prose (lessons and quiz explanations)"
else:
    prose, source = read_text_corpus(args.general), str(args.general)
rng = np.random.default_rng(0)
order = rng.permutation(len(prose))
held = [prose[i] for i in order[: len(prose) // 10]]  # never trained on
prose_train = [prose[i] for i in order[len(prose) // 10:]]
print(f"tickets: {len(tickets)} training texts, {len(test)} held-out; general text: {source}, "
      f"{len(prose_train)} sentences to train on, {len(held)} held out")

tok = Tokenizer.train(tickets.texts + prose_train, vocab_size=1500)  # one vocabulary for both
config = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=3,
                    num_attention_heads=2, intermediate_size=128, max_position_embeddings=64)


def pretrained_on(texts: list[str]) -> BertForMaskedLM:
    """The same starting θ and the same number of steps for both (a smaller corpus: more
    epochs over it)."""
    minibert.manual_seed(0)
    model = BertForMaskedLM(config)
    steps_per_epoch = -(-len(chunk_corpus(tok, texts, 48)) // 32)
    epochs = max(1, round(args.pretrain_steps / steps_per_epoch))
    with contextlib.redirect_stdout(io.StringIO()):  # one line per epoch: not needed here
        pretrain_mlm(model, tok, texts, epochs=epochs, batch_size=32, lr=3e-3, max_length=48,
                     warmup_ratio=0.1, seed=0, progress=False)
    return model.eval()


banner("1. Two masked LMs from the same start: one reads tickets, one reads prose")
start = time.perf_counter()
minibert.manual_seed(0)
untrained = BertForMaskedLM(config).eval()
on_tickets = pretrained_on(tickets.texts)
on_prose = pretrained_on(prose_train)
print(f"{config.num_hidden_layers} layers, hidden {config.hidden_size}: "
      f"{untrained.num_parameters():,} parameters each; about {args.pretrain_steps} MLM steps "
      f"each, {time.perf_counter() - start:.0f} s for both")

banner("2. The probability of a sentence under a masked LM (pseudo-log-likelihood)")
print("A masked LM scores one hidden token at a time, so a sentence's log-probability is taken")
print("as PLL(x) = Σᵢ log P(xᵢ | x with xᵢ masked): mask each token in turn, add up the log P")
print("of the true token. Per token (PLL / m) compares sentences of different lengths.\n")
TICKET = "I was charged twice for my subscription this month."
SENTENCE = held[0]
for text in (TICKET, SENTENCE):
    print(f"{text[:90]!r}")
    rows = {name: pseudo_log_likelihood(m, tok, text, max_length=64)
            for name, m in (("untrained", untrained), ("tickets", on_tickets),
                            ("prose", on_prose))}
    print(f"  {'token':<14}" + "".join(f"{'log P, ' + n:>20}" for n in rows))
    for k, (token, _) in enumerate(rows["untrained"]["tokens"][:12]):
        print(f"  {token:<14}" + "".join(f"{r['tokens'][k][1]:>20.2f}" for r in rows.values()))
    print(f"  {'per token':<14}" + "".join(f"{r['per_token']:>20.2f}" for r in rows.values()))
    print()


def mean_pll(model, texts: list[str]) -> float:
    return float(np.mean([pseudo_log_likelihood(model, tok, t, max_length=64)["per_token"]
                          for t in texts]))


ticket_sample, prose_sample = test.texts[:30], held[:30]
table = {name: (mean_pll(m, ticket_sample), mean_pll(m, prose_sample))
         for name, m in (("untrained", untrained), ("pre-trained on tickets", on_tickets),
                         ("pre-trained on prose", on_prose))}
print("mean PLL per token on 30 held-out texts of each kind (higher = more probable):")
print(f"  {'model':<26}{'ticket texts':>14}{'prose':>10}")
for name, (t, p) in table.items():
    print(f"  {name:<26}{t:>14.2f}{p:>10.2f}")
prefers = (table["pre-trained on tickets"][0] > table["pre-trained on prose"][0]
           and table["pre-trained on prose"][1] > table["pre-trained on tickets"][1])
print(f"each model finds text like its own training text more probable: {prefers}")
ahead_t = table["pre-trained on tickets"][0] - table["pre-trained on prose"][0]
ahead_p = table["pre-trained on prose"][1] - table["pre-trained on tickets"][1]
print(f"per token, the ticket model is ahead on ticket texts by {ahead_t:+.2f} (a factor "
      f"e^{ahead_t:.2f} = {math.exp(ahead_t):.1f} in probability), the prose model on prose by "
      f"{ahead_p:+.2f} ({math.exp(ahead_p):.1f}x); untrained, a token gets about 1/V: "
      f"ln(1/V) = {-math.log(tok.vocab_size):.2f}")

banner("3. Fine-tuning the prose model on tickets: what it learns, what it forgets")
labels = sorted(set(tickets.labels))
small = tickets if args.max_train is None else tickets.subset(list(range(args.max_train)))
# What the prose model learned: its masked-LM loss on the prose it was pre-trained on, masked
# once (the same masks for every measurement).
masker = MLMCollator(tok, 0.15, rng=1)
known = chunk_corpus(tok, prose_train, 48)
known_batches = [masker(known[i:i + 64]) for i in range(0, len(known), 64)]
mlm_before = evaluate_mlm(on_prose, known_batches)["loss"]
print(f"{len(small)} labelled tickets, {args.finetune_epochs} epochs, lr {args.finetune_lr:g}, "
      "the same fresh head each time;")
print(f"masked-LM loss of the prose model on the prose it was pre-trained on, before: "
      f"{mlm_before:.3f}\n")
L = config.num_hidden_layers
results = []
with tempfile.TemporaryDirectory() as tmp:
    on_prose.save_pretrained(tmp)
    for k in [0, *range(1, L), None]:  # frozen, the last k layers, full (None)
        minibert.manual_seed(0)  # the same fresh head for every run
        with warnings.catch_warnings():  # "fresh head, MLM head discarded": lesson 13
            warnings.simplefilter("ignore")
            clf = BertForSequenceClassification.from_pretrained(
                tmp, id2label=dict(enumerate(labels)))
        options = {} if k is None else {"freeze_encoder": True, "unfreeze_last_layers": k}
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # one line per epoch: not needed here
            finetune(clf, tok, small, epochs=args.finetune_epochs, batch_size=16,
                     lr=args.finetune_lr,
                     max_length=48, seed=0, progress=False, **options)
        seconds = time.perf_counter() - start
        acc = evaluate(clf, tok, test, max_length=48)["accuracy"]
        # The fine-tuned encoder under the prose model's MLM head: what is left of its MLM?
        probe = BertForMaskedLM.from_pretrained(tmp)
        encoder = {n: v for n, v in clf.bert.state_dict().items() if not n.startswith("pooler.")}
        probe.bert.load_state_dict(encoder, strict=False)
        mlm_after = evaluate_mlm(probe, known_batches)["loss"]
        frozen_names = () if k is None else tuple(
            ["embeddings."] + [f"layers.{i}." for i in range(L - k)])
        n_trained = sum(p.data.size for n, p in clf.named_parameters()
                        if not n.removeprefix("bert.").startswith(frozen_names))
        name = "full" if k is None else ("frozen" if k == 0 else f"last {k} of {L} layers")
        results.append((name, acc, n_trained, seconds, mlm_after))
print(f"  {'what trains':<20}{'accuracy':>9}{'trained numbers':>17}{'time':>7}"
      f"{'MLM loss on prose':>19}{'forgetting':>12}")
for name, acc, n_trained, seconds, mlm_after in results:
    print(f"  {name:<20}{acc:>9.3f}{n_trained:>17,}{seconds:>6.1f}s{mlm_after:>19.3f}"
          f"{mlm_after - mlm_before:>+12.3f}")
frozen, full = results[0], results[-1]
print(f"\nforgetting = MLM loss after − before ({mlm_before:.3f}). A frozen encoder forgets "
      f"nothing: {abs(frozen[4] - mlm_before) < 1e-9}")
print(f"full fine-tuning forgets more than the frozen encoder: {full[4] > frozen[4]}")


def grows(values: list[float]) -> bool:
    """Each value at least the one before: frozen, the last 1, 2, ... layers, full."""
    return all(a <= b for a, b in itertools.pairwise(values))


# What holds by construction, and what this run's numbers show (they are not quoted: with
# models this small, neighbouring rows can swap places from one corpus or seed to the next).
print(f"the trained numbers grow with every layer unfrozen: {grows([r[2] for r in results])}")
print("in this run, from frozen to full, row by row:")
print(f"  the forgetting grows with every layer unfrozen: {grows([r[4] for r in results])}")
print(f"  the accuracy grows with every layer unfrozen: {grows([r[1] for r in results])}")
print("Partial unfreezing sits between frozen and full in what it trains and what it costs. How")
print("much it adapts and forgets is measured, not promised: a 'False' above is two neighbouring")
print("rows in the other order, the noise of small models trained briefly on little text. Read")
print("the comparison of frozen and full, checked above, and the direction of the rows between.")
