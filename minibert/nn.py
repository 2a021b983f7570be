"""Modules: parameters grouped into reusable layers (Linear, Embedding, LayerNorm, Dropout).

A `Module` finds its parameters by looking at its own attributes: every `Parameter`, every
sub-`Module`, and every list of modules (named `name.0`, `name.1`, ...). Names are dotted paths
such as ``encoder.layers.0.attention.query.W`` — the keys of `state_dict()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import backend
from . import functional as F
from .autograd import Tensor
from .backend import Array

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from typing_extensions import Self


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates (requires_grad=True by default)."""

    def __init__(self, data: Any, requires_grad: bool = True, dtype: npt.DTypeLike | None = None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class StateDictError(KeyError):
    """load_state_dict was given keys or shapes that do not match the model."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it as written
        return str(self.args[0])


class Module:
    """Base class: subclasses set Parameters and sub-Modules in __init__ and define forward()."""

    training: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # -- walking the tree -----------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, list | tuple) and value and all(
                isinstance(m, Module) for m in value
            ):
                for i, m in enumerate(value):
                    yield f"{name}.{i}", m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs; a parameter shared by two modules (tied weights) once."""
        seen = set()
        for mod_name, mod in self.named_modules():
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Every parameter as a host NumPy array (a copy), keyed by its dotted name."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy arrays into the parameters (onto the device and dtype they already have).

        With strict=True, a missing or unexpected key is an error that lists them; a shape
        mismatch is always an error. Returns (missing, unexpected).
        """
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if strict and (missing or unexpected):
            raise StateDictError(
                f"load_state_dict for {type(self).__name__}: "
                f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}, "
                f"unexpected keys {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}"
            )
        for name, p in params.items():
            if name not in state:
                continue
            value = state[name]
            if tuple(value.shape) != p.shape:
                raise StateDictError(
                    f"load_state_dict: {name} has shape {tuple(value.shape)} in the state "
                    f"but {p.shape} in the model"
                )
            xp = backend.get_array_module(p.data)
            p.data = xp.asarray(backend.to_numpy(value) if xp is np else value, dtype=p.dtype)
            p.grad = None
        return missing, unexpected

    # -- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Self:
        """Training mode (dropout on). Returns self."""
        for _, m in self.named_modules():
            m.training = mode
        return self

    def eval(self) -> Self:
        """Evaluation mode (dropout off). Returns self."""
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[Self]:
        """Evaluation mode inside a `with` block; afterwards every sub-module is back in the
        mode it was in (a frozen encoder kept in eval mode inside a training model stays so).

            with model.evaluating(), no_grad():
                logits = model(ids).logits
        """
        modes = [(m, m.training) for _, m in self.named_modules()]
        self.eval()
        try:
            yield self
        finally:
            for m, mode in modes:
                m.training = mode

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter of this module."""
        for p in self.parameters():
            p.requires_grad = requires_grad
            if not requires_grad:
                p.grad = None
        return self

    # -- device and precision -------------------------------------------------------------------
    def to(self, device_or_dtype: str | npt.DTypeLike) -> Self:
        """Move parameters to "cpu"/"gpu" (also "numpy"/"cupy"), or cast them to a float dtype.

        ``model.to("gpu")`` copies every parameter into GPU memory (CuPy must work, see
        backend.py) and makes CuPy the active backend, so that the tensors made next (inputs,
        new layers) are on the GPU too; ``model.to("cpu")`` does the reverse.
        ``model.to(np.float64)`` casts, which gradcheck needs.
        """
        if isinstance(device_or_dtype, str) and device_or_dtype.lower() in (
            "cpu", "gpu", "cuda", "numpy", "cupy"
        ):
            on_gpu = device_or_dtype.lower() in ("gpu", "cuda", "cupy")
            backend.use_backend("cupy" if on_gpu else "numpy")  # fails clearly without a GPU
            xp = backend.xp()
            for p in self.parameters():
                p.data = xp.asarray(p.data) if on_gpu else backend.to_numpy(p.data)
                p.grad = None
            return self
        dtype = np.dtype(device_or_dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    @property
    def xp(self) -> ModuleType:
        """The array module (numpy or cupy) where this module's parameters live."""
        for p in self.parameters():
            return backend.get_array_module(p.data)
        return backend.xp()

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, child in self.named_children():
            lines.append("  " + f"({name}): {child!r}".replace("\n", "\n  "))
        return "\n".join(lines) + ")" if len(lines) > 1 else f"{type(self).__name__}()"


# ----------------------------------------------------------------------------------------------
# Layers


def init_normal(shape: tuple[int, ...], std: float) -> Parameter:
    """A parameter drawn from N(0, std²) with minibert's seeded generator (BERT uses std 0.02)."""
    return Parameter(backend.rng().standard_normal(shape, dtype=np.float32) * np.float32(std))


class Linear(Module):
    """y = x W + b, with W of shape (in_features, out_features) as in the math (x is a row)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 std: float = 0.02):
        self.W = init_normal((in_features, out_features), std)
        self.b = Parameter(backend.xp().zeros(out_features, dtype=np.float32)) if bias else None

    def forward(self, x: Tensor, bias: bool = True) -> Tensor:  # (..., in) -> (..., out)
        """x W + b; with bias=False x W alone, for an op that adds b in its own formula
        (F.add_layer_norm)."""
        return F.linear(x, self.W, self.b if bias else None)

    def __repr__(self) -> str:
        return f"Linear({self.W.shape[0]} -> {self.W.shape[1]})"


class Embedding(Module):
    """A lookup table: row i is the vector of id i.  ids (...) -> (..., dim)."""

    def __init__(self, num_embeddings: int, dim: int, std: float = 0.02):
        self.weight = init_normal((num_embeddings, dim), std)

    def forward(self, ids: Array) -> Tensor:
        return F.embedding(self.weight, ids)

    def __repr__(self) -> str:
        return f"Embedding({self.weight.shape[0]}, {self.weight.shape[1]})"


class LayerNorm(Module):
    """Normalise the last axis, then scale (gamma) and shift (beta).  (..., d) -> (..., d)"""

    def __init__(self, dim: int, eps: float = 1e-12):
        xp = backend.xp()
        self.gamma = Parameter(xp.ones(dim, dtype=np.float32))
        self.beta = Parameter(xp.zeros(dim, dtype=np.float32))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.gamma, self.beta, self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({self.gamma.shape[0]}, eps={self.eps})"


class Dropout(Module):
    """Randomly zero a share p of the elements while training; do nothing in eval mode."""

    def __init__(self, p: float = 0.1):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=self.training)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
