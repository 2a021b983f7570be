"""Lesson 7: masked-language-model (MLM) pre-training.

    .venv/bin/python lessons/07_mlm_pretraining.py

BERT learns from raw text by hiding words and predicting them. The MLM collator picks 15% of
the ordinary tokens; of those, 80% become [MASK], 10% a random token, 10% stay unchanged; the
labels hold the original id there and -100 (ignored by the loss) everywhere else. Then a few
dozen steps of plain gradient descent (lesson 6's step) pre-training a tiny BERT on the support
tickets, with a falling loss.
No weights needed: the vocabulary is learned from the tickets here.
"""

import numpy as np
from _common import banner, show

import minibert
from minibert import functional as F
from minibert import no_grad
from minibert.config import BertConfig
from minibert.data import IGNORE_INDEX, MLMCollator, chunk_corpus, pad_sequences, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.model import BertForMaskedLM
from minibert.tokenizer import Tokenizer

texts = read_labelled(support_tickets_dir() / "train.tsv").texts
tok = Tokenizer.train(texts, vocab_size=1000)
print(f"a WordPiece vocabulary learned from {len(texts)} tickets: {tok}")
chunks = chunk_corpus(tok, texts, max_length=32)  # [CLS] ... [SEP], at most 32 tokens each
print(f"{len(chunks)} training sequences")

banner("1. The collator masks a batch")
collator = MLMCollator(tok, mlm_probability=0.15, rng=1)
batch = collator(chunks[:4])
for key in ("input_ids", "attention_mask", "labels"):
    show(key, batch[key], values=False)
row = 0
original = chunks[row]
masked, labels = batch["input_ids"][row], batch["labels"][row]
print(f"\nrow {row}, token by token (only positions with a label count in the loss):")
print(f"  {'pos':>3}  {'original':<14} {'model sees':<14} label")
for i in range(len(original)):
    orig, seen = tok.convert_ids_to_tokens(int(original[i])), tok.convert_ids_to_tokens(
        int(masked[i]))
    label = "-100 (ignored)" if labels[i] == IGNORE_INDEX else f"{labels[i]} = {orig!r}"
    mark = "  <- chosen" if labels[i] != IGNORE_INDEX else ""
    print(f"  {i:>3}  {orig:<14} {seen:<14} {label}{mark}")

banner("2. Over the whole corpus: 15% chosen, then 80 / 10 / 10")
big = MLMCollator(tok, rng=0)(chunks)
ids = big["input_ids"]
orig_ids, mask = pad_sequences(chunks, tok.pad_token_id)  # the same padding, before masking
ordinary = (mask == 1) & ~np.isin(orig_ids, list(tok.special_ids))
chosen = big["labels"] != IGNORE_INDEX
print(f"ordinary tokens: {ordinary.sum():,}; chosen: {chosen.sum():,} = "
      f"{chosen.sum() / ordinary.sum():.1%}   (never [CLS], [SEP] or [PAD])")
as_mask = chosen & (ids == tok.mask_token_id)
unchanged = chosen & (ids == orig_ids)
other = chosen & ~as_mask & ~unchanged
print(f"of the chosen: [MASK] {as_mask.sum() / chosen.sum():.1%}, random token "
      f"{other.sum() / chosen.sum():.1%}, unchanged {unchanged.sum() / chosen.sum():.1%}")
print("(a random token can by chance equal the original; it then counts as unchanged)")

banner("3. A tiny BERT for MLM, and a few epochs of pre-training")
minibert.manual_seed(0)
config = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=128, max_position_embeddings=64)
model = BertForMaskedLM(config)
print(f"hidden 64, 2 layers, 2 heads: {model.num_parameters():,} parameters "
      f"(the decoder reuses the word-embedding table)")
with no_grad():
    out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
show("logits (B, T, V)", out.logits, values=False)
print(f"loss before training: {out.loss.item():.3f}  (≈ ln V = {np.log(tok.vocab_size):.3f}: "
      "a uniform guess over the vocabulary)")

# The training loop, written out: lesson 6's gradient descent, θ ← θ − η ∇L(θ), on every
# tensor of the model, one masked batch at a time. (pretrain_mlm in minibert/train.py runs the
# same loop with AdamW and a learning-rate schedule, lesson 8; lesson 16 uses it.)
params = model.parameters()
eta, batch_size, epochs = 1.0, 32, 3
order_rng = np.random.default_rng(0)
masker = MLMCollator(tok, mlm_probability=0.15, rng=0)
losses = []
for _ in range(epochs):
    order = order_rng.permutation(len(chunks))  # a new order of the sequences every epoch
    for start in range(0, len(chunks), batch_size):
        b = masker([chunks[i] for i in order[start:start + batch_size]])
        for p in params:
            p.grad = None
        loss = model(b["input_ids"], b["attention_mask"], labels=b["labels"]).loss
        loss.backward()
        with no_grad():
            for p in params:
                if p.grad is not None:
                    p.data -= eta * p.grad  # the gradient-descent step
        losses.append(loss.item())
print(f"\n{len(losses)} steps of gradient descent (η = {eta}, batches of {batch_size}, "
      f"{epochs} epochs); loss every 6th step:")
for step in range(0, len(losses), 6):
    print(f"  step {step:>3}  loss {losses[step]:.3f}")
first, last = np.mean(losses[:5]), np.mean(losses[-5:])
print(f"mean loss of the first 5 steps {first:.3f} -> last 5 steps {last:.3f}")
print(f"the loss fell: {last < first}")
print("(each batch is masked afresh, so the loss is noisy from step to step; lesson 16 trains")
print("longer with AdamW and a schedule)")

banner("4. What the tiny model guesses for a [MASK]")
sentence = "i was charged [MASK] for my subscription."
enc = tok.encode(sentence)
pos = enc.tokens.index("[MASK]")
with no_grad():
    probs = F.softmax(model(np.array([enc.input_ids])).logits, axis=-1).numpy()[0, pos]
top = probs.argsort()[::-1][:5]
print(sentence)
print("top 5 guesses:", ", ".join(f"{tok.convert_ids_to_tokens(int(i))!r} {probs[i]:.2f}"
                                  for i in top))
print("After a few dozen steps it has learned mostly which tokens are frequent; real BERT")
print("pre-training runs ~1M steps over billions of words.")
print("\nNext: mask_tokens and MLMCollator in minibert/data.py, BertForMaskedLM in "
      "minibert/model.py (exercise 7.1: the masking); pretrain_mlm in minibert/train.py runs")
print("this loop with AdamW (lesson 8).")
