"""Autograd-lite: a small reverse-mode automatic differentiation engine.

A `Tensor` wraps an array of the active backend (NumPy or CuPy, see `backend.py`). Every
operation on tensors that require gradients records how it was made: its parents and a
`_backward` closure that, given the gradient of the loss with respect to the output
(`out.grad`), adds the gradient with respect to each parent (the chain rule, one op at a time).
`loss.backward()` then visits the recorded graph in reverse topological order.

Each op below is written as: forward (a line or two of array code), then its `_backward`
right beside it. The neural-network ops (softmax, layer_norm, gelu, cross_entropy, ...) live in
`functional.py`, written the same way with the two helpers at the end of this file, which your
own ops can use too: `op_result` wraps an op's output, `accum_grad` adds a gradient into an input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from . import backend, parallel
from .backend import Array

# ----------------------------------------------------------------------------------------------
# Grad mode


_grad_enabled = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Inside `with no_grad():` no graph is recorded (inference, optimizer steps)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class ShapeError(ValueError):
    """An op was given arrays whose shapes do not fit together."""


# ----------------------------------------------------------------------------------------------
# Helpers


def _is_float(dtype: npt.DTypeLike) -> bool:
    return np.dtype(dtype).kind == "f"


def unbroadcast(grad: Array, shape: tuple) -> Array:
    """Sum `grad` down to `shape`: the backward of NumPy broadcasting.

    If x of shape (3, 1) was broadcast to (2, 3, 4) in the forward pass, each element of x was
    used 2*4 times, so its gradient is the sum over those copies.
    """
    # BEGIN EXERCISE 6.1: sum grad over the leading axes that broadcasting added, then (keepdims)
    #   over the axes where shape has size 1 but grad does not
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra > 0 else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    # END EXERCISE
    return grad


def _broadcast_shape(op: str, a: Tensor, b: Tensor) -> tuple:
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(
            f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together"
        ) from None


# ----------------------------------------------------------------------------------------------
# The Tensor


# What the arithmetic of a Tensor accepts on its other side: a Tensor, an array or a number.
TensorLike: TypeAlias = "Tensor | Array | float"


class Tensor:
    """An array plus the recipe to differentiate through it.

    data          the array (NumPy or CuPy), float32 by default
    requires_grad whether gradients should flow to this tensor
    grad          d(loss)/d(self), an array of the same shape (None until backward)
    """

    __array_priority__ = 1000  # so that `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(self, data: Any, requires_grad: bool = False, dtype: npt.DTypeLike | None = None,
                 _parents: tuple[Tensor, ...] = (), _op: str = ""):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is None and not hasattr(data, "dtype"):
            # Python numbers and lists become float32 unless they are integers or bools;
            # arrays keep their dtype (float64 stays float64, which gradcheck relies on).
            dtype = None if np.asarray(data).dtype.kind in "iub" else np.float32
        self.data: Array = backend.asarray(data, dtype=dtype)
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad: Array = None  # dL/d self, once backward has reached it
        self._backward_fn = None
        self._parents = _parents
        self._op = _op

    # -- basic properties ----------------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: int(self.data.size))

    # -- the backward closure ------------------------------------------------------------------
    # Every op sets `out._backward = <closure>`. A closure refers to `out` (and to the arrays it
    # needs), and `out` refers to the closure: a reference cycle that only the garbage collector
    # can free, long after the activations are dead. So when `out` needs no gradient (inside
    # no_grad, or no input requires grad) the closure is simply not stored: no cycle, no parents,
    # and every activation is freed the moment the last name for it goes away.
    @property
    def _backward(self):
        return self._backward_fn

    @_backward.setter
    def _backward(self, fn):
        self._backward_fn = fn if self.requires_grad else None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op}" if self._op else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{grad}{op})"

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array on the host (a copy when it lives on the GPU)."""
        return backend.to_numpy(self.data)

    def item(self) -> float:
        return self.numpy().item()

    def detach(self) -> Tensor:
        """The same data, cut off from the graph (no gradients flow through it)."""
        return Tensor(self.data)

    def astype(self, dtype: npt.DTypeLike) -> Tensor:
        out = op_result(self.data.astype(dtype), (self,), "astype")
        if out.requires_grad:
            out._backward = lambda: accum_grad(self, out.grad.astype(self.dtype))
        return out

    # -- backpropagation -----------------------------------------------------------------------
    def backward(self, grad: Array | None = None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(t) for every tensor t in the graph that requires grad.

        Leaf tensors (parameters, inputs) *accumulate* into `.grad`, as in PyTorch: call
        `zero_grad()` between steps. `grad` may be omitted only for a scalar (a loss).
        The graph is freed as the pass goes (as in PyTorch: each op's saved arrays as soon as
        its backward has run) unless `retain_graph=True`. An intermediate tensor that no
        variable refers to is freed as soon as its gradient has reached its parents; one that
        you kept (`h = ...; loss.backward(); h.grad`) keeps its `.grad` readable.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran inside no_grad())"
            )
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar, but this tensor has shape "
                    f"{self.shape}; reduce it first (e.g. .sum() or .mean()) or pass grad="
                )
            grad = xp.ones_like(self.data)
        grad = xp.asarray(grad, dtype=self.dtype)
        if grad.shape != self.data.shape:
            raise ShapeError(f"backward: grad has shape {grad.shape}, tensor has {self.shape}")

        order = self._topological_order()
        for t in order:
            if t._parents:  # intermediate results start from zero each backward pass
                t.grad = None
        self.grad = grad if self.grad is None or self._parents else self.grad + grad
        while order:  # children first; popping lets go of each tensor once it is done
            t = order.pop()
            if t._backward is not None and t.grad is not None:
                t._backward()
            if not retain_graph:  # t's gradient has reached its parents: drop its closure now,
                t._backward, t._parents = None, ()  # freeing the arrays it saved (as PyTorch)

    def _topological_order(self) -> list[Tensor]:
        """Every tensor this one depends on, parents before children (iterative DFS)."""
        # BEGIN EXERCISE 6.5: put in `order` every tensor reachable through _parents (that
        #   requires grad) exactly once, each after all of its parents; use an explicit stack, not
        #   recursion (graphs can be thousands deep)
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            t, parents_done = stack.pop()
            if parents_done:
                order.append(t)
                continue
            if id(t) in seen:
                continue
            seen.add(id(t))
            stack.append((t, True))
            stack.extend((p, False) for p in t._parents if p.requires_grad)
        # END EXERCISE
        return order

    # -- arithmetic (elementwise, broadcasting) ------------------------------------------------
    def __add__(self, other: TensorLike) -> Tensor:
        other = as_tensor(other, like=self)
        _broadcast_shape("add", self, other)
        out = op_result(self.data + other.data, (self, other), "add")

        def _backward():  # only parents that need a gradient get one (masks and inputs do not)
            if self.requires_grad:
                accum_grad(self, unbroadcast(out.grad, self.shape))
            if other.requires_grad:
                accum_grad(other, unbroadcast(out.grad, other.shape))

        out._backward = _backward
        return out

    def __sub__(self, other: TensorLike) -> Tensor:
        other = as_tensor(other, like=self)
        _broadcast_shape("sub", self, other)
        out = op_result(self.data - other.data, (self, other), "sub")

        def _backward():
            if self.requires_grad:
                accum_grad(self, unbroadcast(out.grad, self.shape))
            if other.requires_grad:
                accum_grad(other, unbroadcast(-out.grad, other.shape))

        out._backward = _backward
        return out

    def __mul__(self, other: TensorLike) -> Tensor:
        other = as_tensor(other, like=self)
        _broadcast_shape("mul", self, other)
        out = op_result(self.data * other.data, (self, other), "mul")

        def _backward():
            # BEGIN EXERCISE 6.2: d(a*b)/da = b and d(a*b)/db = a; multiply by out.grad, unbroadcast
            #   to each input's shape, and accum_grad into self and other
            if self.requires_grad:
                accum_grad(self, unbroadcast(out.grad * other.data, self.shape))
            if other.requires_grad:
                accum_grad(other, unbroadcast(out.grad * self.data, other.shape))
            # END EXERCISE

        out._backward = _backward
        return out

    def __truediv__(self, other: TensorLike) -> Tensor:
        other = as_tensor(other, like=self)
        _broadcast_shape("div", self, other)
        out = op_result(self.data / other.data, (self, other), "div")

        def _backward():  # d(a/b)/da = 1/b,  d(a/b)/db = -a/b²
            if self.requires_grad:
                accum_grad(self, unbroadcast(out.grad / other.data, self.shape))
            if other.requires_grad:
                accum_grad(other, unbroadcast(-out.grad * out.data / other.data, other.shape))

        out._backward = _backward
        return out

    def __neg__(self) -> Tensor:
        out = op_result(-self.data, (self,), "neg")
        out._backward = lambda: accum_grad(self, -out.grad)
        return out

    def __pow__(self, exponent: float) -> Tensor:
        if isinstance(exponent, Tensor):
            raise TypeError("pow: only a constant (Python number) exponent is supported")
        out = op_result(self.data**exponent, (self,), "pow")
        out._backward = lambda: accum_grad(self, out.grad * exponent * self.data ** (exponent - 1))
        return out

    def __radd__(self, other: TensorLike) -> Tensor:
        return self + other

    def __rsub__(self, other: TensorLike) -> Tensor:
        return as_tensor(other, like=self) - self

    def __rmul__(self, other: TensorLike) -> Tensor:
        return self * other

    def __rtruediv__(self, other: TensorLike) -> Tensor:
        return as_tensor(other, like=self) / self

    # -- matrix product -------------------------------------------------------------------------
    def __matmul__(self, other: TensorLike) -> Tensor:
        other = as_tensor(other, like=self)
        if self.ndim < 2 or other.ndim < 2 or self.shape[-1] != other.shape[-2]:
            raise ShapeError(
                f"matmul: shapes {self.shape} and {other.shape} do not fit; need (..., n, k) @ "
                f"(..., k, m) with at least 2 dimensions each"
            )
        try:
            np.broadcast_shapes(self.shape[:-2], other.shape[:-2])
        except ValueError:
            raise ShapeError(
                f"matmul: batch dimensions of {self.shape} and {other.shape} do not broadcast"
            ) from None
        # a stack of products (attention) runs on all cores: parallel.matmul
        out = op_result(parallel.matmul(self.data, other.data), (self, other), "matmul")

        def _backward():  # Y = A B  ->  dA = dY Bᵀ,  dB = Aᵀ dY (then undo batch broadcasting)
            # BEGIN EXERCISE 6.3: for Y = A @ B, dA = dY @ Bᵀ and dB = Aᵀ @ dY (swapaxes(-1, -2)
            #   transposes the last two axes); unbroadcast the batch axes. (parallel.matmul(x, y)
            #   is A @ B with a stack of products spread over the cores.)
            mm, A, B = parallel.matmul, self.data, other.data
            if self.requires_grad:
                accum_grad(self, unbroadcast(mm(out.grad, B.swapaxes(-1, -2)), self.shape))
            if other.requires_grad and other.ndim == 2:  # (..., k) @ (k, m): fold the batch
                k, m = other.shape
                accum_grad(other, A.reshape(-1, k).T @ out.grad.reshape(-1, m))
            elif other.requires_grad:
                accum_grad(other, unbroadcast(mm(A.swapaxes(-1, -2), out.grad), other.shape))
            # END EXERCISE

        out._backward = _backward
        return out

    # -- reductions -----------------------------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = op_result(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():  # every input element contributed once: copy the gradient back
            # BEGIN EXERCISE 6.4: each input element contributed once to its sum, so it gets
            #   out.grad copied back; put reduced axes back (_expand) unless keepdims, then
            #   broadcast to self.shape
            g = out.grad if keepdims or axis is None else _expand(out.grad, axis, self.ndim)
            accum_grad(self, backend.get_array_module(g).broadcast_to(g, self.shape))
            # END EXERCISE

        out._backward = _backward
        return out

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        axes = range(self.ndim) if axis is None else (axis,) if isinstance(axis, int) else axis
        n = int(np.prod([self.shape[a] for a in axes]))
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / max(n, 1))

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = op_result(self.data.max(axis=axis, keepdims=keepdims), (self,), "max")

        def _backward():  # only the maximum receives gradient (shared equally between ties)
            m = out.data if keepdims or axis is None else _expand(out.data, axis, self.ndim)
            g = out.grad if keepdims or axis is None else _expand(out.grad, axis, self.ndim)
            hit = (self.data == m).astype(self.dtype)
            accum_grad(self, hit * g / hit.sum(axis=axis, keepdims=True))

        out._backward = _backward
        return out

    # -- elementwise functions ------------------------------------------------------------------
    def exp(self) -> Tensor:
        out = op_result(backend.get_array_module(self.data).exp(self.data), (self,), "exp")
        out._backward = lambda: accum_grad(self, out.grad * out.data)
        return out

    def log(self) -> Tensor:
        out = op_result(backend.get_array_module(self.data).log(self.data), (self,), "log")
        out._backward = lambda: accum_grad(self, out.grad / self.data)
        return out

    def sqrt(self) -> Tensor:
        out = op_result(backend.get_array_module(self.data).sqrt(self.data), (self,), "sqrt")
        out._backward = lambda: accum_grad(self, out.grad * 0.5 / out.data)
        return out

    def tanh(self) -> Tensor:
        out = op_result(backend.get_array_module(self.data).tanh(self.data), (self,), "tanh")
        out._backward = lambda: accum_grad(self, out.grad * (1 - out.data**2))
        return out

    def relu(self) -> Tensor:
        out = op_result(self.data * (self.data > 0), (self,), "relu")
        out._backward = lambda: accum_grad(self, out.grad * (self.data > 0))
        return out

    # -- shape ops ------------------------------------------------------------------------------
    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        try:
            data = self.data.reshape(shape)
        except ValueError:
            raise ShapeError(f"reshape: cannot reshape {self.shape} into {tuple(shape)}") from None
        out = op_result(data, (self,), "reshape")
        out._backward = lambda: accum_grad(self, out.grad.reshape(self.shape))
        return out

    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        given = axes[0] if len(axes) == 1 and isinstance(axes[0], tuple | list) else axes
        order = tuple(cast("Sequence[int]", given)) or tuple(reversed(range(self.ndim)))
        if sorted(a % self.ndim for a in order) != list(range(self.ndim)):
            raise ShapeError(f"transpose: axes {order} are not a permutation for shape "
                             f"{self.shape}")
        out = op_result(self.data.transpose(order), (self,), "transpose")
        inverse = tuple(np.argsort([a % self.ndim for a in order]))
        out._backward = lambda: accum_grad(self, out.grad.transpose(inverse))
        return out

    def swapaxes(self, a: int, b: int) -> Tensor:
        axes = list(range(self.ndim))
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(axes)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        if isinstance(index, Tensor):
            index = index.data
        out = op_result(self.data[index], (self,), "getitem")

        def _backward():  # scatter the gradient back; repeated indices must add up
            g = backend.get_array_module(out.grad).zeros_like(self.data)
            if _is_basic_index(index):  # slices and ints never repeat an element
                g[index] = out.grad
            else:
                backend.scatter_add(g, index, out.grad)
            accum_grad(self, g)

        out._backward = _backward
        return out


# ----------------------------------------------------------------------------------------------
# Graph plumbing shared by all ops


def as_tensor(x: TensorLike, like: Tensor | None = None) -> Tensor:
    """`x` as a Tensor; numbers take the dtype of `like` so float32 stays float32."""
    if isinstance(x, Tensor):
        return x
    if like is not None and np.isscalar(x):
        return Tensor(backend.get_array_module(like.data).asarray(x, dtype=like.dtype))
    return Tensor(x)


def op_result(data: Array, parents: tuple, op: str) -> Tensor:
    """Wrap an op's output array as a Tensor; it joins the graph only if some parent requires
    grad. Every op starts its result this way, then sets `out._backward`:

        out = op_result(x.data * 2, (x,), "double")
        out._backward = lambda: accum_grad(x, out.grad * 2)
    """
    needs_grad = _grad_enabled and any(p.requires_grad for p in parents)
    out = Tensor.__new__(Tensor)
    out.data, out.grad, out._backward_fn, out._op = data, None, None, op
    out.requires_grad = needs_grad
    out._parents = parents if needs_grad else ()
    return out


def accum_grad(t: Tensor, grad: Array) -> None:
    """Add `grad` into t.grad (a tensor used twice gets the sum of both gradients); nothing for
    a tensor that needs no gradient. Every `_backward` calls it once for each input."""
    if not t.requires_grad:
        return
    if grad.dtype != t.data.dtype:
        grad = grad.astype(t.data.dtype)
    t.grad = grad if t.grad is None else t.grad + grad


def _is_basic_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, int | slice) or p is None or p is Ellipsis for p in parts)


def _expand(a: Array, axis: int | tuple[int, ...], ndim: int) -> Array:
    """Put back the reduced axes (as size 1) so `a` broadcasts against the input again."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    xp = backend.get_array_module(a)
    return xp.expand_dims(a, tuple(ax % ndim for ax in axes))


# ----------------------------------------------------------------------------------------------
# Ops on several tensors


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along `axis`; the backward slices the gradient back into pieces."""
    tensors = [as_tensor(t) for t in tensors]
    xp = backend.get_array_module(tensors[0].data)
    try:
        data = xp.concatenate([t.data for t in tensors], axis=axis)
    except ValueError:
        shapes = ", ".join(str(t.shape) for t in tensors)
        raise ShapeError(f"concatenate: shapes {shapes} do not fit along axis {axis}") from None
    out = op_result(data, tuple(tensors), "concatenate")

    def _backward():
        bounds = np.cumsum([t.shape[axis] for t in tensors])[:-1].tolist()  # a host list
        for t, g in zip(tensors, xp.split(out.grad, bounds, axis=axis), strict=True):
            accum_grad(t, g)

    out._backward = _backward
    return out


def where(condition: Array | Tensor, a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise `a` where `condition` is true, else `b` (condition gets no gradient)."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        b = as_tensor(b, like=a)  # a Python number takes the other side's dtype
    elif isinstance(b, Tensor) and not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    a, b = as_tensor(a), as_tensor(b)
    xp = backend.get_array_module(a.data, b.data)
    cond = xp.asarray(cond)  # a mask made on the host moves to the device of a and b
    try:
        shape = np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ShapeError(
            f"where: condition {cond.shape}, a {a.shape} and b {b.shape} do not broadcast"
        ) from None
    out = op_result(xp.where(cond, a.data, b.data), (a, b), "where")

    def _backward():
        zero = xp.zeros((), dtype=out.grad.dtype)
        accum_grad(a, unbroadcast(xp.broadcast_to(xp.where(cond, out.grad, zero), shape), a.shape))
        accum_grad(b, unbroadcast(xp.broadcast_to(xp.where(cond, zero, out.grad), shape), b.shape))

    out._backward = _backward
    return out


def masked_fill(x: Tensor, mask: Array | Tensor, value: float) -> Tensor:
    """`x` with `value` wherever `mask` is true (e.g. -inf on padded attention positions)."""
    return where(mask, as_tensor(value, like=x), x)


def tensor(data: Any, requires_grad: bool = False, dtype: npt.DTypeLike | None = None) -> Tensor:
    """Make a Tensor (float32 by default for Python numbers and lists)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
