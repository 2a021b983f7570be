"""Lesson 6: the loss, and its gradient flowing back (autograd).

    .venv/bin/python lessons/06_loss_and_gradients.py

Cross-entropy on a tiny example; the gradient of the loss with respect to the logits is
softmax(z) − onehot(y) (divided by the batch size); backward through a linear layer; and
gradcheck, which compares a hand-written backward with finite differences. No weights needed.
"""

import numpy as np
from _common import banner, show

from minibert import Tensor, gradcheck, to_numpy
from minibert import functional as F

banner("1. Cross-entropy of one example")
z = Tensor(np.array([[2.0, 0.5, -1.0, 0.1]]), requires_grad=True)  # logits for C = 4 classes
y = np.array([0])  # the true class
show("logits z          (1, C)", z)
p = F.softmax(z, axis=-1)
show("P = softmax(z)    (1, C)", p)
loss = F.cross_entropy(z, y)
show("loss = -log P[y]     ()", loss)
print(f"by hand: -log({p.numpy()[0, 0]:.4f}) = {-np.log(p.numpy()[0, 0]):.4f}")

banner("2. Its gradient: dloss/dz = softmax(z) - onehot(y)")
# .grad lives where the data lives (NumPy, or CuPy on a GPU); to_numpy brings it to the host
loss.backward()
show("z.grad (autograd)  (1, C)", z.grad)
onehot = np.eye(4)[y]
show("softmax(z) - onehot(y)", p.numpy() - onehot)
print(f"equal: {bool(np.allclose(to_numpy(z.grad), p.numpy() - onehot, atol=1e-6))}")
print("The true class's logit is pushed up (negative gradient), every other logit down, each in")
print("proportion to the probability it wrongly receives. A confident right answer -> ~0.")

banner("3. A batch: a small linear classifier, loss averaged over n examples")
rng = np.random.default_rng(0)
n, H, C = 3, 5, 4
x = Tensor(rng.standard_normal((n, H)))  # three 'pooled vectors'
W = Tensor(rng.standard_normal((H, C)) * 0.5, requires_grad=True)
b = Tensor(np.zeros(C), requires_grad=True)
targets = np.array([0, 2, 3])
logits = F.linear(x, W, b)
loss = F.cross_entropy(logits, targets)
show("x                 (n, H)", x)
show("W                 (H, C)", W)
show("logits = x W + b  (n, C)", logits)
show("loss (mean over n)   ()", loss)

print("\nThe graph autograd recorded (each tensor knows the op that made it and its inputs):")
for name, t in [("loss", loss), ("logits", logits)]:
    parents = ", ".join(f"{tuple(q.shape)}" for q in t._parents)
    print(f"  {name:<7} op={t._op:<14} inputs: {parents}")

loss.backward()
dz = (F.softmax(logits, axis=-1).numpy() - np.eye(C)[targets]) / n
show("dloss/dlogits     (n, C)", logits.grad)
print(f"= (softmax - onehot) / n: {bool(np.allclose(to_numpy(logits.grad), dz, atol=1e-6))}")
show("dloss/dW = xᵀ dz  (H, C)", W.grad)
by_hand = x.numpy().T @ dz
print(f"= xᵀ (softmax - onehot) / n: {bool(np.allclose(to_numpy(W.grad), by_hand, atol=1e-6))}")
show("dloss/db = Σ dz   (C,)", b.grad)
print(f"= column sums of dz: {bool(np.allclose(to_numpy(b.grad), dz.sum(0), atol=1e-6))}")
print("A gradient always has the shape of its tensor: W.grad is (H, C) like W.")

banner("4. gradcheck: is a backward right? Compare with finite differences")
xs = Tensor(rng.standard_normal((2, 6)), requires_grad=True, dtype=np.float64)
gamma = Tensor(rng.standard_normal(6), requires_grad=True, dtype=np.float64)
beta = Tensor(rng.standard_normal(6), requires_grad=True, dtype=np.float64)
print("(f(x + eps) - f(x - eps)) / 2 eps for every input element, in float64, vs backward():")
ok = gradcheck(lambda a, g, c: F.layer_norm(a, g, c), xs, gamma, beta)
print(f"gradcheck(layer_norm)   -> {ok}")
print(f"gradcheck(gelu)         -> {gradcheck(F.gelu, xs)}")
tz = Tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype=np.float64)
print(f"gradcheck(cross_entropy)-> {gradcheck(lambda t: F.cross_entropy(t, targets), tz)}")

banner("5. Training is an argmin: gradient descent on a tiny loss")
# Six observed labels and one free logit vector z (C = 3) shared by all six: the model says the
# same P = softmax(z) for every example. The mean cross-entropy is then
#     L(z) = -(1/n) Σᵢ log P(yᵢ) = -Σ_c f_c log P_c        (f_c: the share of label c)
# and its argmin is known in closed form: P = f, with L = the entropy of f. Gradient descent
# must find it on its own: z ← z - η ∇L(z), with ∇L from backward().
observed = np.array([0, 0, 0, 1, 1, 2])
n_obs = len(observed)
z6 = Tensor(np.zeros((1, 3)), requires_grad=True)
ones = Tensor(np.ones((n_obs, 1)))
eta, steps = 0.5, 300
print(f"labels {observed.tolist()}, start z = 0 (P uniform), step size η = {eta}")
for step in range(steps + 1):
    z6.grad = None
    loss6 = F.cross_entropy(ones * z6, observed)  # the same z for every example: (n, C)
    if step in (0, 1, 5, 10, 25, 50, 100, 200, steps):
        p6 = to_numpy(F.softmax(z6).numpy())[0]
        print(f"  step {step:>3}  loss {loss6.item():.6f}  P = {np.round(p6, 4)}")
    if step < steps:
        loss6.backward()
        z6.data -= eta * z6.grad  # the gradient-descent step
freq = np.bincount(observed, minlength=3) / n_obs
entropy = float(-(freq * np.log(freq)).sum())
p6 = to_numpy(F.softmax(z6).numpy())[0]
print(f"argmin reached by descent: P = {np.round(p6, 4)}, loss {loss6.item():.6f}")
print(f"analytic argmin: P = the label shares {np.round(freq, 4)}, loss = their entropy "
      f"{entropy:.6f}")
print(f"descent found the analytic argmin: {bool(np.allclose(p6, freq, atol=1e-3))}")
log_lik = float(np.log(p6[observed]).sum())
print(f"cross-entropy × n = {loss6.item() * n_obs:.4f} = −log-likelihood of the six labels "
      f"−Σ log P(yᵢ) = {-log_lik:.4f}:")
print("minimising the cross-entropy is maximising the likelihood (the labels' probability under")
print("the model). Fine-tuning does exactly this, with P = softmax(F_ω(BERT_θ(x))) and millions")
print("of parameters in place of one z: θ̃, ω̃ = argmin of the mean cross-entropy.")
print("\nNext: minibert/autograd.py (Tensor.backward, each op's backward beside its forward),")
print("`minibert autograd` for a hand-checked tour, and the exercises: 6.6 cross-entropy backward")
print("(functional.py); 6.1 unbroadcast, 6.2 mul backward, 6.3 matmul backward, 6.4 sum backward,")
print("6.5 topological order (autograd.py).")
