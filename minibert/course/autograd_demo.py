"""A guided tour of autograd-lite on a computation small enough to check by hand.

    z = x·w + b,   y = tanh(z),   loss = (y − target)²

`python -m minibert.course.autograd_demo` (or `minibert autograd`) prints every node of the graph
with its value and, after `loss.backward()`, its gradient — then confirms the gradients with
finite differences (gradcheck).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..autograd import Tensor
from ..backend import to_numpy
from ..gradcheck import gradcheck


def _fmt(a: object) -> str:
    return np.array2string(to_numpy(a), precision=4, suppress_small=True)  # host copy to print


def run(print_fn: Callable[[str], object] = print) -> dict:
    """Build the graph, backpropagate, print each step; returns the tensors for inspection."""
    x = Tensor(np.array([[1.0, 2.0, -1.0]]), dtype=np.float64)         # input (1, 3)
    w = Tensor(np.array([[0.5], [-0.3], [0.8]]), requires_grad=True)  # weights (3, 1)
    b = Tensor(np.array([0.1]), requires_grad=True)                   # bias (1,)
    target = 0.5

    z = x @ w.astype(np.float64) + b.astype(np.float64)
    y = z.tanh()
    loss = ((y - target) ** 2).sum()

    print_fn("Forward pass: every op records its inputs and how to differentiate itself")
    for name, t in [("x", x), ("w", w), ("b", b), ("z = x@w + b", z), ("y = tanh(z)", y),
                    ("loss = (y - 0.5)^2", loss)]:
        print_fn(f"  {name:<20} shape={str(t.shape):<8} op={t._op or 'leaf':<8} "
                 f"value={_fmt(t.data).replace(chr(10), ' ')}")

    loss.backward(retain_graph=True)
    print_fn("\nBackward pass: loss.backward() applies the chain rule node by node, in reverse")
    dy = 2 * (y.numpy() - target)
    dz = dy * (1 - y.numpy() ** 2)
    for name, t, by_hand in [
        ("dloss/dy = 2(y - 0.5)", y, dy),
        ("dloss/dz = dy(1 - y^2)", z, dz),
        ("dloss/dw = x^T dz", w, x.numpy().T @ dz),
        ("dloss/db = dz", b, dz.reshape(1)),
    ]:
        print_fn(f"  {name:<24} autograd={_fmt(t.grad).replace(chr(10), ' '):<28} "
                 f"by hand={_fmt(by_hand).replace(chr(10), ' ')}")

    w64 = Tensor(w.numpy(), requires_grad=True, dtype=np.float64)
    b64 = Tensor(b.numpy(), requires_grad=True, dtype=np.float64)
    ok = gradcheck(lambda w, b: (((x @ w + b).tanh() - target) ** 2).sum(), w64, b64)
    print_fn(f"\ngradcheck (finite differences in float64) agrees with the backward: {ok}")
    return {"x": x, "w": w, "b": b, "z": z, "y": y, "loss": loss}


if __name__ == "__main__":
    run()
