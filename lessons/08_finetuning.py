"""Lesson 8: fine-tuning — the pre-trained encoder θ plus a fresh head ω, trained on labels.

    .venv/bin/python lessons/08_finetuning.py

    θ̃, ω̃ = argmin over θ, ω of the mean over labelled pairs (x, y) of L(F_ω(BERT_θ(x)), y)
    starting from θ = θ̂ (MiniLM's pre-trained parameters) and a random classifier in ω.

A handful of AdamW steps on 16 support tickets, twice: full fine-tuning (θ and ω change) and a
frozen encoder (only ω changes). We compare the parameters before and after to see which moved.
"""

import numpy as np
from _common import banner, load_quietly, minilm_dir, show

import minibert
from minibert.data import label_names, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.model import BertForSequenceClassification
from minibert.tokenizer import Tokenizer
from minibert.train import finetune

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
train = read_labelled(support_tickets_dir() / "train.tsv")
labels = label_names(train.labels)
# 4 tickets of each class: a tiny, balanced training set (this is a demonstration of the
# mechanics; a real run uses all 571 tickets for a few epochs, see notebooks/02).
picked = [i for name in labels for i in [j for j, y in enumerate(train.labels) if y == name][:4]]
small = train.subset(picked)
print(f"{len(small)} labelled tickets, classes {labels}")
for text, y in list(zip(small.texts, small.labels, strict=True))[::4]:
    print(f"  {y:<20} {text[:70]}")

WATCH = ["bert.embeddings.word_embeddings.weight", "bert.embeddings.layer_norm.gamma",
         "bert.layers.0.attention.query.W", "bert.layers.5.ffn_out.W", "bert.pooler.W",
         "classifier.W", "classifier.b"]


def run(freeze_encoder: bool, lr: float):
    minibert.manual_seed(0)  # the same fresh head ω in both runs
    model = load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                         id2label=dict(enumerate(labels)))
    before = model.state_dict()  # copies of every parameter
    history = finetune(model, tok, small, epochs=2, batch_size=8, lr=lr, warmup_ratio=0.0,
                       weight_decay=0.0, max_length=32, freeze_encoder=freeze_encoder, seed=0,
                       progress=False)
    for s in history["steps"]:
        print(f"  step {s['step']}  loss {s['loss']:.4f}  gradient norm {s['grad_norm']:.3f}  "
              f"learning rate {s['lr']:.3g}")
    # for the explanation below: how many steps, and the sum of their learning rates
    run.steps, run.lr_sum = len(history["steps"]), sum(s["lr"] for s in history["steps"])
    after = model.state_dict()
    changed = {name: float(np.abs(after[name] - before[name]).max()) for name in before}
    print(f"\n  {'parameter':<42} {'shape':<14} max |after - before|")
    for name in WATCH:
        print(f"  {name:<42} {str(before[name].shape):<14} {changed[name]:.2e}")
    moved = [n for n, d in changed.items() if d > 0]
    n_enc = sum(1 for n in moved if n.startswith("bert."))
    print(f"  tensors that changed: {len(moved)} of {len(changed)} "
          f"({n_enc} in the encoder θ, {len(moved) - n_enc} in the head ω)")
    return model, before, after, changed


banner("1. Full fine-tuning: every parameter gets a gradient (lr 5e-5)")
model, before, after, changed = run(freeze_encoder=False, lr=5e-5)
rows = np.abs(after["bert.embeddings.word_embeddings.weight"]
              - before["bert.embeddings.word_embeddings.weight"]).max(axis=1) > 0
seen = {i for text in small.texts for i in tok.encode(text, max_length=32).input_ids}
print(f"  word-embedding rows that changed: {rows.sum()} of {len(rows)} — exactly the "
      f"{len(seen)} distinct tokens of the {len(small)} training tickets (2 batches of 8, "
      f"2 epochs): {set(np.flatnonzero(rows)) == seen}")
print("  (a row gets a gradient only where its token occurs; with weight decay > 0, AdamW would")
print("  also shrink every other row a little)")
largest = max(changed.values())
print(f"  The largest change, {largest:.3g}, is {largest / 5e-5:.2f} × lr: the sum of the "
      f"{run.steps} steps' learning")
print(f"  rates (linear decay, no warm-up: {run.lr_sum:.3g} = {run.lr_sum / 5e-5:.2f} × lr). "
      "Adam divides each gradient by")
print("  its own running size, so in early steps every number moves by about the step's learning")
print("  rate, whatever its gradient's scale; one whose gradient kept its sign moved by the sum.")

banner("2. Frozen encoder: requires_grad=False on θ, only the head ω trains (lr 1e-3)")
model, before, after, changed = run(freeze_encoder=True, lr=1e-3)
encoder_max = max(d for n, d in changed.items()
                  if n.startswith("bert.") and not n.startswith("bert.pooler."))
print(f"  largest change anywhere in the encoder: {encoder_max}  (θ is untouched)")
print(f"  only the head changed: {encoder_max == 0 and changed['classifier.W'] > 0}")
head = {n: p.data.size for n, p in model.named_parameters()
        if n.startswith(("classifier.", "bert.pooler."))}
n_classifier = sum(v for n, v in head.items() if n.startswith("classifier."))
print(f"  The pooler moved too ({changed['bert.pooler.W']:.2e}): the head reads the pooled [CLS]")
print("  vector, so in frozen mode the pooler trains with the classifier, as in transformers'")
print(f"  recipe: {sum(head.values()):,} numbers ({n_classifier:,} classifier + "
      f"{sum(head.values()) - n_classifier:,} pooler). MiniLM's pooler was never trained;")
print("  frozen, it would hand the classifier a fixed random projection of h_[CLS].")

banner("3. The trade-off")
print("Full fine-tuning adapts the features themselves (usually more accurate, 22.7M numbers")
print("to update, a small learning rate such as 2e-5..5e-5 so θ stays close to θ̂).")
print(f"A frozen encoder trains only {sum(head.values()):,} numbers (pooler and classifier), fast "
      "and hard to")
print("overfit, with a larger learning rate; its encoder outputs never change, so they can even")
print("be computed once (notebooks/02 does exactly that). Lesson 14 measures the accuracy of")
print("each choice.")
show("classifier.W after the frozen run (H, C)", after["classifier.W"])
print("\nNext: finetune and TrainingRun.train_step in minibert/train.py, AdamW in "
      "minibert/optim.py")
print("(exercises 8.1 AdamW step, 8.2 the fine-tuning step).")
