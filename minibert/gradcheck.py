"""gradcheck: compare an op's hand-written backward with finite differences.

For every element x_i of every input, the slope of the loss is estimated numerically as

    (f(x + eps·e_i) − f(x − eps·e_i)) / (2·eps)         (central differences)

in float64, and compared with the gradient that `backward()` computed (for a single op on the
inputs, its own backward is called directly: no graph to walk, see `backward_of_one_op`). If
the two disagree, the backward is wrong. Use it on your own ops:

    >>> x = minibert.tensor(np.random.randn(3, 4), requires_grad=True, dtype=np.float64)
    >>> minibert.gradcheck(lambda x: (x * x).sum(), x)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import backend
from .autograd import Tensor, no_grad
from .backend import Array


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the numerical one."""


def _as_loss(out: Tensor, projection: Array | None) -> Tensor:
    # A non-scalar output is turned into a scalar by a fixed random weighting, so every output
    # element influences the check (a plain .sum() would hide errors that cancel out).
    if out.size == 1:
        return out.sum()
    return (out * Tensor(projection)).sum()


def _made_by_one_op(out: Tensor) -> bool:
    """out came from a single op applied straight to leaf tensors (no op in between)."""
    return out._backward is not None and all(not p._parents for p in out._parents)


def backward_of_one_op(out: Tensor, grad: Array) -> None:
    """Run the backward of the one op that made `out`, by itself: out.grad = grad (dL/d out,
    shaped like out), then the op's `_backward` adds dL/d input into each input's `.grad`.

    No graph is walked, so this needs nothing from the engine (`Tensor.backward`, lesson 6):
    it is how `gradcheck` checks a single op, and how the backward passes of lessons 2-4 can be
    tested before the engine's exercises (6.1-6.5) are written.
    """
    if out._backward is None:
        raise ValueError("backward_of_one_op: this tensor was not made by an op that records a "
                         "backward (does an input have requires_grad=True?)")
    xp = backend.get_array_module(out.data)
    grad = xp.asarray(grad, dtype=out.dtype)
    if grad.shape != out.shape:
        raise ValueError(f"backward_of_one_op: grad has shape {grad.shape}, out has {out.shape}")
    out.grad = grad
    out._backward()


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs: Tensor,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check d fn(*inputs) / d input for every input with requires_grad=True.

    Inputs should be float64 (float32 differences are too noisy); `fn` is called several times
    and must be deterministic (no dropout). A mismatch raises `GradcheckError` with a report of
    the worst element (or returns False with raise_exception=False).
    """
    wrt = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    for t in wrt:
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: inputs must be float64 for accurate finite differences, got "
                f"{t.dtype}; create them with dtype=np.float64"
            )
    xp = backend.get_array_module(wrt[0].data)

    out = fn(*inputs)
    projection = np.random.default_rng(seed).standard_normal(out.shape) if out.size > 1 else None
    if projection is not None:
        projection = xp.asarray(projection)
    for t in wrt:
        t.grad = None
    if _made_by_one_op(out):
        # No graph to walk: the op's own backward, given dL/d out, is the whole chain rule.
        backward_of_one_op(out, xp.ones_like(out.data) if projection is None else projection)
    else:
        _as_loss(out, projection).backward()
    analytic = [xp.zeros_like(t.data) if t.grad is None else t.grad.copy() for t in wrt]

    def f() -> float:
        with no_grad():
            return float(_as_loss(fn(*inputs), projection).data)

    worst = None  # (excess, input index, element, analytic, numeric)
    for k, t in enumerate(wrt):
        flat = t.data.reshape(-1)  # a view: writing into it perturbs the input in place
        a_flat = analytic[k].reshape(-1)
        for i in range(flat.size):
            old = float(flat[i])
            flat[i] = old + eps
            plus = f()
            flat[i] = old - eps
            minus = f()
            flat[i] = old
            numeric = (plus - minus) / (2 * eps)
            a = float(a_flat[i])
            excess = abs(a - numeric) - (atol + rtol * abs(numeric))
            if worst is None or excess > worst[0]:
                worst = (excess, k, i, a, numeric)

    if worst is None:  # no input has an element: nothing to compare
        return True
    excess, k, i, a, numeric = worst
    if excess <= 0:
        return True
    index = tuple(int(j) for j in np.unravel_index(i, wrt[k].shape))
    report = (
        f"gradcheck failed for input {k} (shape {wrt[k].shape}) at element {index}:"
        f"\n  analytic (backward) = {a:.8g}\n  numeric  (finite differences) = {numeric:.8g}"
        f"\n  |difference| = {abs(a - numeric):.3g} > atol + rtol·|numeric| = "
        f"{atol + rtol * abs(numeric):.3g}"
    )
    if raise_exception:
        raise GradcheckError(report)
    return False
