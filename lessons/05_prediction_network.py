"""Lesson 5: the prediction network on top of the encoder.

    .venv/bin/python lessons/05_prediction_network.py

    h_[CLS] -> pooler: tanh(h_[CLS] W_p + b_p) -> logits z = dropout(pooled) W_c + b_c
            -> softmax -> P(class | text) -> argmax = the decision

ŷ = F_ω(BERT_θ(x)) (notation: lessons/README.md). The encoder's parameters θ start at MiniLM's
pre-trained θ̂; the prediction network's ω is the pooler (W_p, b_p, stored in the checkpoint) and
the classifier (W_c, b_c, new and random), so before fine-tuning the probabilities are close to
uniform.
"""

import numpy as np
from _common import banner, load_quietly, minilm_dir, show

import minibert
from minibert import functional as F
from minibert import no_grad
from minibert.data import label_names, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.model import BertForSequenceClassification
from minibert.pipeline import class_probabilities, most_probable
from minibert.tokenizer import Tokenizer

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
labels = label_names(read_labelled(support_tickets_dir() / "train.tsv").labels)
C = len(labels)
print(f"the {C} classes (ids in sorted order): {dict(enumerate(labels))}")

banner("1. Encoder θ = θ̂ from MiniLM + a prediction network ω (pooler + fresh classifier)")
minibert.manual_seed(0)  # makes the fresh head reproducible
clf = load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                   id2label=dict(enumerate(labels)))
n_pooler, n_classifier = clf.bert.pooler.num_parameters(), clf.classifier.num_parameters()
print(f"encoder parameters θ: {clf.bert.num_parameters() - n_pooler:,}  (embeddings and layers)")
print(f"head parameters ω:    {n_pooler + n_classifier:,}  = pooler {n_pooler:,} (W_p "
      f"{clf.bert.pooler.W.shape}, b_p) + classifier {n_classifier:,} "
      f"(W_c {clf.classifier.W.shape}, b_c {clf.classifier.b.shape})")
print("(the pooler's code sits in clf.bert, where checkpoints store it; the course counts it in ω,")
print(" the task's network: it trains whenever the head trains, also with a frozen encoder)")

b_p = clf.bert.pooler.b.numpy()
print(f"\npooler bias b_p: {np.count_nonzero(b_p == 0)} of {b_p.size} entries exactly 0 -> "
      f"the pooler was never trained: {bool((b_p == 0).all())}")

TICKET = "I was charged twice for my subscription this month."
enc = tok.encode(TICKET)
ids = np.array([enc.input_ids])
print(f"\nticket: {TICKET!r}")
print(" ".join(enc.tokens))

banner("2. Step by step, from h_[CLS] to a decision")
with no_grad():
    out = clf.bert(ids)
    show("last_hidden_state          (1, T, H)", out.last_hidden_state, values=False)
    h_cls = out.last_hidden_state[:, 0]  # position 0 is [CLS]
    show("h_[CLS]                       (1, H)", h_cls)
    pooled = clf.bert.pooler(h_cls).tanh()
    show("pooled = tanh(h_[CLS] W_p + b_p) (1, H)", pooled)
    z = clf.classifier(pooled)  # eval mode: dropout does nothing
    show("logits z = pooled W_c + b_c   (1, C)", z)
    p = F.softmax(z, axis=-1)
    show("P = softmax(z)                (1, C)", p)
    probs = p.numpy()[0]
    print(f"sum of P = {probs.sum():.6f}  (a probability distribution over the {C} classes)")
    decision = int(probs.argmax())
    print(f"argmax -> class {decision} = {labels[decision]!r}")

banner("3. The same through the inference path (minibert/pipeline.py)")
api = class_probabilities(clf, ids)
show("class_probabilities(clf, ids) (1, C)", api)
print(f"same as by hand: {bool(np.allclose(api, probs, atol=1e-6))};  most_probable(...) = "
      f"{most_probable(api)}")

banner("4. Why is P nearly uniform before fine-tuning?")
print(f"W_c starts as N(0, {clf.config.initializer_range}²) and b_c = 0; each logit is a "
      f"random mix of the pooled vector (‖pooled‖ = {np.linalg.norm(pooled.numpy()):.2f}),")
print(f"so the logits are tiny and nearly equal: their spread is {z.numpy().std():.3f}")
print(f"softmax of nearly equal logits ≈ 1/C = {1 / C:.2f} each; largest gap from uniform: "
      f"{np.abs(probs - 1 / C).max():.3f}")
print("The argmax of an untrained head is an arbitrary pick: ω must first be fitted to labelled")
print("examples (lesson 8). The loss it will minimise is the cross-entropy, -log P(true class):")
for i, name in enumerate(labels):
    print(f"   if the true class were {name!r:<22} the loss would be {-np.log(probs[i]):.3f}"
          f"   (≈ ln C = {np.log(C):.3f})")
print("\nNext: BertForSequenceClassification in minibert/model.py, then lesson 6 (the loss "
      "and its gradient).")
