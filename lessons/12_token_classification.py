"""Lesson 12: one label per token — entities in support tickets.

    .venv/bin/python lessons/12_token_classification.py              # about a minute
    .venv/bin/python lessons/12_token_classification.py --epochs 4   # longer, in the .md

A sequence classifier puts one prediction network on the pooled [CLS] vector: one label per
text. A token classifier puts it on every token's hidden state: one label per token. Words are
cut into word pieces, so a word's label goes on its first piece and the other pieces get -100.
We fine-tune all-MiniLM-L6-v2 on the shipped ticket_entities data and score whole entities.
"""

import argparse
import time

import numpy as np
from _common import banner, load_quietly, minilm_dir, show

import minibert
from minibert.datasets import ticket_entities_dir
from minibert.evaluation import evaluate_tokens
from minibert.metrics import entity_spans
from minibert.model import BertForSequenceClassification, BertForTokenClassification
from minibert.pipeline import Tagger, format_tags
from minibert.token_data import (
    align_labels,
    encode_words,
    read_token_labelled,
    tag_names,
    token_classification_batch,
)
from minibert.tokenizer import Tokenizer
from minibert.train import finetune_tokens

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=2, help="passes over the training sentences")
parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
parser.add_argument("--max-train", type=int, default=None,
                    help="train on only the first N sentences (quick runs)")
args = parser.parse_args()

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
train = read_token_labelled(ticket_entities_dir() / "train.conll")
test = read_token_labelled(ticket_entities_dir() / "test.conll")
if args.max_train:
    train = train.subset(range(min(args.max_train, len(train))))
tags = tag_names(train.tags)
label2id = {t: i for i, t in enumerate(tags)}

banner("1. The data: one tag per word (BIO)")
print(f"{len(train)} training and {len(test)} test sentences; tags: {tags}")
# the first test sentence with an order number: its words are cut into several pieces
first = next(i for i, t in enumerate(test.tags) if "B-ORDER" in t)
words, word_tags = test.words[first], test.tags[first]
for w, t in zip(words, word_tags, strict=True):
    print(f"  {w:<14} {t}")
print("B- begins an entity, I- continues it, O is outside. The entities of this sentence:",
      sorted(entity_spans(word_tags), key=lambda e: e[1]))

banner("2. Words -> word pieces: only the first piece of a word is labelled")
ids, word_ids = encode_words(tok, words, max_length=64)
labels = align_labels(word_ids, [label2id[t] for t in word_tags])
print(f"{'piece':<12} {'word':>4}  label")
for piece, w, y in zip(tok.convert_ids_to_tokens(ids), word_ids, labels, strict=True):
    name = "-100 (ignored)" if y == -100 else f"{y} = {tags[y]}"
    print(f"  {piece:<12} {'' if w is None else w:>4}  {name}")
n_words, n_pieces = len(words), len(ids) - 2
print(f"{n_words} words became {n_pieces} pieces; {sum(y != -100 for y in labels)} positions "
      f"carry a label (one per word), {labels.count(-100)} are -100: [CLS], [SEP] and the "
      "pieces after a word's first.")

banner("3. One label per text vs one label per token: the same encoder, another head")
batch = token_classification_batch(tok, test, [first, first + 1], label2id, max_length=64)
minibert.manual_seed(0)
seq_model = load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                         id2label={0: "a", 1: "b", 2: "c", 3: "d"})
minibert.manual_seed(0)
model = load_quietly(BertForTokenClassification.from_pretrained, model_dir,
                     id2label=dict(enumerate(tags)))
with minibert.no_grad():
    seq_logits = seq_model.eval()(batch["input_ids"], batch["attention_mask"]).logits
    tok_logits = model.eval()(batch["input_ids"], batch["attention_mask"]).logits
show("input_ids (B, T)", batch["input_ids"], values=False)
show("sequence head: logits (B, C)", seq_logits, values=False)
show("token head:    logits (B, T, C)", tok_logits, values=False)
print(f"The token head is one Linear(384 -> {len(tags)}) applied to every hidden state: "
      f"{model.classifier.W.shape} weights, no pooler.")

banner(f"4. Fine-tuning the token classifier ({args.epochs} epochs, lr {args.lr:g})")
o_share = np.mean([t == "O" for s in test.tags for t in s])
before = evaluate_tokens(model, tok, test, max_length=64)
print(f"fresh head: word accuracy {before['word_accuracy']:.3f}, entity F1 "
      f"{before['f1']:.3f}")
start = time.perf_counter()
history = finetune_tokens(model, tok, train, test, epochs=args.epochs, batch_size=16,
                          lr=args.lr, max_length=64, seed=0, progress=False)
seconds = time.perf_counter() - start
after = history["epochs"][-1]["eval"]
print(f"trained in {seconds:.0f} s on {len(train)} sentences")

banner("5. Entity-level scores: whole entities, not words")
print(f"{'type':<9} {'precision':>9} {'recall':>7} {'F1':>6} {'true':>5} {'predicted':>9}")
for kind, s in after["per_type"].items():
    print(f"{kind:<9} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['f1']:>6.3f} "
          f"{s['num_true']:>5} {s['num_pred']:>9}")
print(f"all       {after['precision']:>9.3f} {after['recall']:>7.3f} {after['f1']:>6.3f} "
      f"{after['num_entities']:>5} {after['num_predicted']:>9}")
print(f"{after['num_correct']} entities exactly right: precision = {after['num_correct']} / "
      f"{after['num_predicted']} predicted, recall = {after['num_correct']} / "
      f"{after['num_entities']} true, F1 = their harmonic mean.")
print(f"word accuracy {after['word_accuracy']:.3f}. But a model that tags every word O would "
      f"already score {o_share:.3f} word accuracy, with entity F1 0: most words are O, so word "
      "accuracy flatters. An entity counts only when its type and every one of its words are "
      "right.")

banner("6. The trained tagger on new text: a tag per word")
tagger = Tagger(model, tok)
new = ["I paid $35.00 for the wall mount on 3 May but order KS-771190 never came.",
       "Can I switch the Teams plan to monthly before September?"]
print(format_tags(tagger.tag(new)))
print("\nRead next: minibert/token_data.py (align_labels: exercise 12.1), entity_spans and "
      "entity_scores in minibert/metrics.py, finetune_tokens in minibert/train.py.")
