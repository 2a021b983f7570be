"""Lesson 8: fine-tuning — the pre-trained encoder θ̂ plus a fresh head ω, trained on labels.

    .venv/bin/python lessons/08_finetuning.py

    θ̃, ω̃ = argmin over θ, ω of the mean over labelled pairs (x, y) of L(F_ω(BERT_θ(x)), y)
    starting from θ = θ̂ (MiniLM's pre-trained parameters) and a random ω.

MiniLM with a fresh head, before and after a short full fine-tuning on 64 support tickets:
accuracy on the 142 held-out tickets, and P(class) for the course's running ticket. Then the
optimizer's recipe (AdamW, warm-up and decay, clipping, weight decay) seen in the run's own
numbers, with a figure; which parameters moved; and the frozen encoder, where only the head
trains.
"""

import time

import numpy as np
from _common import banner, load_quietly, minilm_dir, out_dir

import minibert
from minibert.course.viz import training_schedule
from minibert.data import label_names, read_labelled
from minibert.datasets import support_tickets_dir
from minibert.evaluation import evaluate
from minibert.model import BertForSequenceClassification
from minibert.pipeline import class_probabilities
from minibert.tokenizer import Tokenizer
from minibert.train import finetune

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
train = read_labelled(support_tickets_dir() / "train.tsv")
test = read_labelled(support_tickets_dir() / "test.tsv")
labels = label_names(train.labels)
PER_CLASS, EPOCHS, BATCH, LR = 16, 3, 16, 1e-4
picked = [i for name in labels
          for i in [j for j, y in enumerate(train.labels) if y == name][:PER_CLASS]]
small = train.subset(picked)
TICKET = "I was charged twice for my subscription this month."

banner("1. The task: 64 labelled tickets to learn from, 142 held out to measure")
print(f"{len(small)} training tickets ({PER_CLASS} per class), {len(test)} test tickets, "
      f"classes {labels}")
for text, y in list(zip(small.texts, small.labels, strict=True))[::PER_CLASS]:
    print(f"  {y:<20} {text[:70]}")


def new_model():
    minibert.manual_seed(0)  # the same fresh head ω in every run
    return load_quietly(BertForSequenceClassification.from_pretrained, model_dir,
                        id2label=dict(enumerate(labels)))


def p_ticket(model) -> np.ndarray:
    enc = tok.encode(TICKET)
    return class_probabilities(model, np.array([enc.input_ids]))[0]


def show_p(p: np.ndarray) -> None:
    for name, q in zip(labels, p, strict=True):
        print(f"    P({name:<18} | ticket) = {q:.3f}  {'#' * round(40 * q)}")


banner("2. Before fine-tuning: MiniLM's θ̂ with a fresh, random head ω")
model = new_model()
before = model.state_dict()  # copies of every parameter
acc_before = evaluate(model, tok, test, max_length=64)["accuracy"]
common = max(labels, key=test.labels.count)
print(f"accuracy on the {len(test)} test tickets: {acc_before:.3f}   (always answering the "
      f"commonest class, {common!r}: {test.labels.count(common) / len(test):.3f})")
p_before = p_ticket(model)
print(f"the running ticket: {TICKET!r}")
show_p(p_before)
print("A fresh head has learned nothing: its probabilities are close to uniform (1/4 each),")
print("and its argmax is as good as a guess.")

banner(f"3. Full fine-tuning: AdamW on θ and ω, {EPOCHS} epochs of batches of {BATCH}")
start = time.perf_counter()
history = finetune(model, tok, small, epochs=EPOCHS, batch_size=BATCH, lr=LR, warmup_ratio=0.1,
                   weight_decay=0.01, max_grad_norm=1.0, max_length=64, seed=0, progress=False)
seconds = time.perf_counter() - start
steps = history["steps"]
print(f"{len(steps)} steps in {seconds:.0f} s; each: forward, cross-entropy, backward, clip the "
      "gradient norm to 1, AdamW step")
for s in steps:
    clipped = "  (clipped to 1)" if s["grad_norm"] > 1.0 else ""
    print(f"  step {s['step']:>2}  learning rate {s['lr']:.2e}  loss {s['loss']:.3f}  "
          f"gradient norm {s['grad_norm']:.2f}{clipped}")
first_loss, last_loss = steps[0]["loss"], steps[-1]["loss"]
print(f"the training loss fell from {first_loss:.3f} to {last_loss:.3f}: "
      f"{last_loss < first_loss}")

banner("4. After fine-tuning: the same test tickets, the same ticket")
acc_after = evaluate(model, tok, test, max_length=64)["accuracy"]
print(f"accuracy on the {len(test)} test tickets: {acc_before:.3f} before -> {acc_after:.3f} "
      f"after fine-tuning")
p_after = p_ticket(model)
print(f"the running ticket: {TICKET!r}")
show_p(p_after)
print(f"P({labels[int(p_after.argmax())]} | ticket): {p_before[p_after.argmax()]:.3f} before -> "
      f"{p_after.max():.3f} after; the argmax is now {labels[int(p_after.argmax())]!r}")
print(f"fine-tuning improved the held-out accuracy: {acc_after > acc_before}")
print(f"The decisions are now mostly right, but the probabilities are still timid: after "
      f"{len(steps)} small steps")
print(f"the training loss is {last_loss:.2f}, not far below ln 4 = {np.log(4):.2f} (a uniform "
      "guess). The argmax only needs the right")
print("class to be a little ahead; more epochs (notebook 02) make the model confident, and")
print("lesson 9 asks whether its confidence can then be trusted.")

banner("5. The optimizer's recipe, in this run's numbers")
peak = max(steps, key=lambda s: s["lr"])
n_warm = peak["step"] - 1  # the schedule's factor is step / warm-up steps: 0 at the first step
print(f"warm-up: the learning rate rises linearly from 0 over the first {n_warm} step(s) "
      f"(10 % of {len(steps)}), peaks at {peak['lr']:.2e} = lr at step {peak['step']},")
print(f"then decays linearly towards 0 (last step: {steps[-1]['lr']:.2e}).")
n_clipped = sum(1 for s in steps if s["grad_norm"] > 1.0)
print(f"clipping: {n_clipped} of {len(steps)} steps had a gradient norm above 1 and were scaled "
      "down to length 1 (direction kept).")
print("AdamW: each number θ_i moves by lr · m̂_i / (√v̂_i + ε), where m̂ and v̂ are running means "
      "of its")
print("gradient and squared gradient: a step of about lr whatever the gradient's scale; then")
print("weight decay pulls every weight matrix towards 0 by lr · λ · θ (λ = 0.01; biases and")
print("LayerNorm are not decayed).")
fig = training_schedule(history, max_grad_norm=1.0,
                        title="Lesson 8: learning rate and gradient norm per step")
path = out_dir() / "08_schedule.png"
fig.savefig(path, dpi=100)
print(f"saved the schedule figure to {path}")

banner("6. Which parameters moved")
after = model.state_dict()
changed = {name: float(np.abs(after[name] - before[name]).max()) for name in before}
moved = [n for n, d in changed.items() if d > 0]
in_theta = [n for n in moved if n.startswith("bert.") and not n.startswith("bert.pooler.")]
print(f"tensors that changed: {len(moved)} of {len(changed)} ({len(in_theta)} in the encoder θ, "
      f"{len(moved) - len(in_theta)} in the prediction network ω: pooler and classifier):")
print("full fine-tuning moves θ as well as ω.")
rel = {n: float(np.linalg.norm(after[n] - before[n]) / max(np.linalg.norm(before[n]), 1e-12))
       for n in before if n.startswith("bert.layers.")}
print(f"but θ̃ stays close to θ̂: the largest relative change of an encoder weight, "
      f"‖θ̃ − θ̂‖/‖θ̂‖, is {max(rel.values()):.4f}")

banner("7. Frozen encoder: requires_grad=False on θ, only the head trains (lr 1e-3)")
frozen = new_model()
before_f = frozen.state_dict()
start = time.perf_counter()
finetune(frozen, tok, small, epochs=EPOCHS, batch_size=BATCH, lr=1e-3, warmup_ratio=0.1,
         max_length=64, freeze_encoder=True, seed=0, progress=False)
seconds_f = time.perf_counter() - start
after_f = frozen.state_dict()
changed_f = {n: float(np.abs(after_f[n] - before_f[n]).max()) for n in before_f}
encoder_max = max(d for n, d in changed_f.items()
                  if n.startswith("bert.") and not n.startswith("bert.pooler."))
print(f"largest change anywhere in the encoder: {encoder_max}  (θ is untouched)")
print(f"only the head changed: {encoder_max == 0 and changed_f['classifier.W'] > 0}")
head = {n: p.data.size for n, p in frozen.named_parameters()
        if n.startswith(("classifier.", "bert.pooler."))}
n_classifier = sum(v for n, v in head.items() if n.startswith("classifier."))
acc_frozen = evaluate(frozen, tok, test, max_length=64)["accuracy"]
print(f"accuracy on the test tickets: {acc_frozen:.3f}, training {sum(head.values()):,} numbers "
      f"({n_classifier:,} classifier + {sum(head.values()) - n_classifier:,} pooler) in "
      f"{seconds_f:.0f} s")
print("The pooler trains with the classifier: the head reads the pooled [CLS] vector, and")
print("MiniLM's pooler was never trained (lesson 5); frozen, it would be a fixed random")
print("projection.")

banner("8. The trade-off")
n_all = sum(p.data.size for p in model.parameters())
print(f"full:   accuracy {acc_after:.3f}, {n_all:,} numbers trained, {seconds:.0f} s")
print(f"frozen: accuracy {acc_frozen:.3f}, {sum(head.values()):,} numbers trained, "
      f"{seconds_f:.0f} s")
print("Full fine-tuning adapts the features themselves; a frozen encoder is cheap and hard to")
print("overfit, and its encoder outputs never change, so they can be computed once (notebook 02).")
print("Lesson 14 measures these choices side by side, lesson 17 the road between them.")
print("\nNext: finetune and TrainingRun.train_step in minibert/train.py, AdamW and")
print("linear_warmup_decay in minibert/optim.py (exercises 8.1 AdamW step, 8.2 the fine-tuning")
print("step).")
