"""Lesson 9: inference with a fine-tuned model — text -> tokens -> probabilities -> argmax.

    .venv/bin/python lessons/09_inference.py

With the fine-tuned parameters θ̃, ω̃: ŷ = F_ω̃(BERT_θ̃(x)), decision = argmax_c P(c | x).
First a quick fine-tune (frozen encoder, 48 tickets, 18 steps: a few seconds) saved to a
temporary folder the way `finetune(out_dir=...)` saves it; then that folder is loaded with
`minibert.pipeline.Classifier` and used on new tickets, once step by step and once in bulk.
"""

import tempfile

import numpy as np
from _common import banner, load_quietly, minilm_dir, show

import minibert
from minibert.course.explain import format_text, trace
from minibert.data import label_names, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.evaluation import evaluate
from minibert.model import BertForSequenceClassification
from minibert.pipeline import Classifier, class_probabilities, format_predictions, most_probable
from minibert.tokenizer import Tokenizer
from minibert.train import finetune

RUNNING_EXAMPLE = "I was charged twice for my subscription this month."  # see lessons/README.md
model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
tickets = support_tickets_dir()
train = read_labelled(tickets / "train.tsv")
labels = label_names(train.labels)

banner("1. A quick fine-tune (frozen encoder), saved as a model folder")
picked = [i for name in labels for i in [j for j, y in enumerate(train.labels) if y == name][:12]]
minibert.manual_seed(0)
model = load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                     id2label=dict(enumerate(labels)))
history = finetune(model, tok, train.subset(picked), epochs=6, batch_size=16, lr=3e-2,
                   warmup_ratio=0.0, weight_decay=0.0, max_length=48, freeze_encoder=True,
                   seed=0, progress=False)
losses = [s["loss"] for s in history["steps"]]
print(f"{len(losses)} steps on {len(picked)} tickets: loss {losses[0]:.3f} -> {losses[-1]:.3f}")

workdir = tempfile.TemporaryDirectory()  # removed when the script ends
folder = workdir.name
model.save_pretrained(folder)  # config.json (with id2label) + model.safetensors
tok.save_pretrained(folder)  # vocab.txt + tokenizer_config.json
clf = Classifier.from_pretrained(folder)
print(f"loaded a Classifier with labels {clf.labels}")

banner("2. One new ticket, step by step")
new = read_labelled(tickets / "new_tickets.tsv")
text, truth = new.texts[0], new.labels[0]
print(f"text: {text!r}")
tokens = tok.tokenize(text)
print(f"tokens ({len(tokens)}): {tokens}")
batch = tok.batch_encode([text], max_length=clf.max_length)
show("input_ids x_0..x_m          (1, T)", batch["input_ids"])
probs = class_probabilities(clf.model, batch["input_ids"], batch["attention_mask"],
                            batch["token_type_ids"])
show("P(class | text)              (1, C)", probs)
for name, p in zip(clf.labels, probs[0], strict=True):
    print(f"   {name:<22} {p:.3f} {'#' * int(round(p * 40))}")
k = int(most_probable(probs)[0])
print(f"decision rule: argmax -> {k} = {clf.labels[k]!r}   (the ticket's label: {truth!r})")

banner("3. The same through the pipeline, for all new tickets")
predictions = clf.predict(new.texts)
print(format_predictions(predictions, width=44))
print(f"\npipeline agrees with the step-by-step result: "
      f"{bool(np.allclose(list(predictions[0].probabilities.values()), probs[0], atol=1e-6))}")
correct = sum(p.label == y for p, y in zip(predictions, new.labels, strict=True))
print(f"new tickets right: {correct} of {len(new)}")
wrong = [max(p.probabilities.values()) for p, y in zip(predictions, new.labels, strict=True)
         if p.label != y]
print(f"highest probability of each wrong answer: {', '.join(f'{m:.2f}' for m in wrong)}")
test_all = read_labelled(tickets / "test.tsv")
test = test_all.subset(range(0, len(test_all), 3))
metrics = evaluate(clf.model, tok, test, max_length=48)
print(f"accuracy on {metrics['num_examples']} test tickets: {metrics['accuracy']:.2f} "
      f"(chance: {1 / len(labels):.2f}) — after 18 steps on 48 tickets; notebooks/02 trains "
      "longer, on 30 tickets per class")

banner("3b. Is the highest probability a confidence you can trust? (calibration)")
test_predictions = clf.predict(test.texts)
confidence = np.array([max(p.probabilities.values()) for p in test_predictions])
right = np.array([p.label == y for p, y in zip(test_predictions, test.labels, strict=True)])
print(f"on the {len(test)} test tickets: mean highest probability {confidence.mean():.2f}, "
      f"accuracy {right.mean():.2f}")
sure = confidence >= 0.9
print(f"answers given with P >= 0.9: {sure.sum()}, of which right {right[sure].sum()} "
      f"({right[sure].mean() if sure.any() else float('nan'):.2f})")
verdict = ("over-confident: it claims more than it delivers" if confidence.mean() > right.mean()
           else "not over-confident on these tickets")
print(f"-> the model is {verdict}.")
print("   A calibrated model's answers given with P ≈ 0.9 are right about 90 % of the time;")
print("   check that on held-out tickets before trusting a threshold on P.")
banner("4. The course's running example, end to end (minibert explain)")
# The same as `minibert explain "<the ticket>" --model <this folder>` on the command line;
# add --html page.html for the interactive attention heatmaps.
print(format_text(trace(RUNNING_EXAMPLE, folder)))
workdir.cleanup()
print("\nNext: minibert/pipeline.py (class_probabilities, most_probable, Classifier) and "
      "minibert/course/explain.py.")
