"""Optimizers: turn gradients into parameter updates.

After ``loss.backward()`` every trainable parameter θ holds ∂loss/∂θ in ``θ.grad``. An optimizer
moves θ a small step against that gradient. Two are here:

    SGD    θ ← θ − lr·v,      v ← μ·v + g              (heavy-ball momentum)
    AdamW  θ ← θ − lr·m̂/(√v̂ + ε) − lr·λ·θ             (Adam + decoupled weight decay)

plus the helpers BERT training uses around them:

    weight_decay_groups   no weight decay for biases and LayerNorm (as BERT does)
    linear_warmup_decay   the learning-rate schedule: up linearly, then down linearly to 0
    clip_grad_norm        rescale all gradients together when their global L2 norm is too big

This module knows only Parameters (Tensors with .data, .grad, .requires_grad); it imports no
model. A parameter whose ``requires_grad`` is False or whose ``grad`` is None is skipped, so a
frozen encoder simply stays where it is.

State (momentum buffers, Adam moments, step counts) is exposed by ``state_dict()`` as plain
NumPy arrays and numbers, and ``load_state_dict()`` puts it back, so that a training run can be
stopped and resumed exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend, parallel

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .nn import Parameter

# ----------------------------------------------------------------------------------------------
# Parameter groups


def _is_param_list(params) -> bool:
    return all(not isinstance(p, dict) for p in params)


def weight_decay_groups(named_parameters: Iterable[tuple[str, Parameter]],
                        weight_decay: float) -> list[dict]:
    """Split parameters into the two groups BERT trains with: decayed and not decayed.

    Weight decay pulls weights towards 0. That regularises the big matrices (W, embeddings) but
    makes no sense for biases (a shift) or LayerNorm's gamma/beta (a scale that should stay near
    1), so those get weight_decay = 0. Rule: no decay for names ending in ``.b``, ``.beta``,
    ``.gamma``, or for any 1-D parameter. Frozen parameters (requires_grad False) are left out.

    named_parameters: iterable of (name, Parameter), e.g. ``model.named_parameters()``.
    Returns ``[{"params": [...], "names": [...], "weight_decay": weight_decay},
               {"params": [...], "names": [...], "weight_decay": 0.0}]``.
    """
    decay = {"params": [], "names": [], "weight_decay": float(weight_decay)}
    no_decay = {"params": [], "names": [], "weight_decay": 0.0}
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        skip = name.endswith((".b", ".beta", ".gamma")) or name in ("b", "beta", "gamma")
        group = no_decay if skip or p.ndim <= 1 else decay
        group["params"].append(p)
        group["names"].append(name)
    return [decay, no_decay]


class Optimizer:
    """Base class: holds parameter groups, the learning rate and per-parameter state.

    params: a list of Parameters, or a list of groups ``{"params": [...], "weight_decay": λ}``
    (as made by ``weight_decay_groups``). Every group shares the optimizer's ``lr``: the
    schedule changes it with ``optimizer.lr = ...`` between steps.
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float,
                 weight_decay: float = 0.0):
        params = list(params)
        if not params:
            raise ValueError("optimizer got no parameters to optimize")
        if _is_param_list(params):
            params = [{"params": params}]
        self.param_groups = []
        for g in params:
            group = dict(g)
            group["params"] = list(g["params"])
            group.setdefault("weight_decay", float(weight_decay))
            self.param_groups.append(group)
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        self.lr = float(lr)
        # state[i] holds the buffers of the i-th parameter (counting through all groups);
        # an index (not the object) so that state_dict() can be saved and loaded elsewhere.
        self.state: dict[int, dict] = {}

    def _indexed_params(self):
        """(index, parameter, group) for every parameter, trainable or not, in fixed order."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield i, p, group
                i += 1

    def _params_to_update(self):
        """(index, parameter, group) for the parameters that take a step now."""
        for i, p, group in self._indexed_params():
            if p.requires_grad and p.grad is not None:
                yield i, p, group

    def zero_grad(self) -> None:
        """Forget the gradients (backward *adds* into .grad, so clear it before each step)."""
        for _, p, _ in self._indexed_params():
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    # -- saving and resuming -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """{"lr": float, "groups": [hyper-parameters], "state": {i: {name: array or number}}}.

        Arrays are host NumPy copies; everything else is a plain number, so the whole thing can
        be written as safetensors (arrays) + JSON (numbers).
        """
        groups = [{k: v for k, v in g.items() if k not in ("params", "names")}
                  for g in self.param_groups]
        state = {
            i: {k: (backend.to_numpy(v).copy() if hasattr(v, "shape") else v)
                for k, v in s.items()}
            for i, s in self.state.items()
        }
        return {"lr": self.lr, "groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore what ``state_dict()`` returned (arrays go to the device of each parameter)."""
        if len(state_dict["groups"]) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(state_dict['groups'])} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params = {i: p for i, p, _ in self._indexed_params()}
        self.lr = float(state_dict["lr"])
        for group, saved in zip(self.param_groups, state_dict["groups"], strict=True):
            group.update(saved)
        self.state = {}
        for i, s in state_dict["state"].items():
            i = int(i)
            if i not in params:
                raise ValueError(f"optimizer state for parameter {i}, but there are only "
                                 f"{len(params)} parameters")
            p = params[i]
            xp = backend.get_array_module(p.data)
            entry = {}
            for k, v in s.items():
                if hasattr(v, "shape") and np.ndim(v) > 0:
                    if tuple(v.shape) != p.shape:
                        raise ValueError(f"optimizer state {i}.{k} has shape {tuple(v.shape)}, "
                                         f"the parameter has {p.shape}")
                    entry[k] = xp.asarray(v, dtype=p.dtype).copy()
                else:
                    entry[k] = v
            self.state[i] = entry


# ----------------------------------------------------------------------------------------------
# SGD with momentum


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as in PyTorch.

        g ← ∇θ + λ·θ            (weight_decay λ: classic L2, added to the gradient)
        v ← μ·v + g             (v starts as g at the first step)
        θ ← θ − lr·v

    With momentum μ = 0 this is plain gradient descent θ ← θ − lr·g.
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float = 0.01,
                 momentum: float = 0.0,
                 weight_decay: float = 0.0):
        super().__init__(params, lr, weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def step(self) -> None:
        for i, p, group in self._params_to_update():
            g = p.grad
            if group["weight_decay"]:
                g = g + group["weight_decay"] * p.data
            if self.momentum:
                state = self.state.setdefault(i, {})
                if "velocity" not in state:
                    state["velocity"] = g.copy()
                else:
                    state["velocity"] = self.momentum * state["velocity"] + g
                g = state["velocity"]
            p.data -= (self.lr * g).astype(p.dtype, copy=False)


# ----------------------------------------------------------------------------------------------
# AdamW


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as in PyTorch and BERT.

    For each parameter θ with gradient g, at its step t = 1, 2, ...:

        m ← β1·m + (1 − β1)·g          running mean of the gradient       (first moment)
        v ← β2·v + (1 − β2)·g²         running mean of its square         (second moment)
        m̂ = m / (1 − β1^t)             bias correction: m and v start at 0, so early
        v̂ = v / (1 − β2^t)             averages are too small by exactly these factors
        θ ← θ − lr·λ·θ                 decoupled weight decay (not through m and v)
        θ ← θ − lr·m̂ / (√v̂ + ε)

    Each coordinate gets its own step size lr/(√v̂ + ε): large for rarely-moving weights,
    small for noisy ones.
    """

    def __init__(self, params: Iterable[Parameter] | Iterable[dict[str, Any]], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr, weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)

    def step(self) -> None:
        for i, p, group in self._params_to_update():
            self._update(p, self.state.setdefault(i, {}), group)

    def _update(self, p, state: dict, group: dict) -> None:
        """One AdamW update of parameter p, with its state {"step", "m", "v"}."""
        xp = backend.get_array_module(p.data)
        beta1, beta2 = self.betas
        if not state:
            state["step"] = 0
            state["m"] = xp.zeros_like(p.data)
            state["v"] = xp.zeros_like(p.data)
        # BEGIN EXERCISE 8.1: one AdamW update of p. t += 1; m = β1·m + (1-β1)·g and
        #   v = β2·v + (1-β2)·g² (in place); m̂ = m/(1-β1^t), v̂ = v/(1-β2^t); decoupled decay
        #   p *= 1 - lr·weight_decay (if the group decays); then p -= lr·m̂/(√v̂ + eps).
        state["step"] += 1
        t = state["step"]
        decay = 1 - self.lr * group["weight_decay"]

        # In place, a block of rows at a time on all cores (parallel.py): m, v and θ are as
        # large as the model, and so would be every temporary of a whole-array formula. Each
        # block makes one scratch array, `work`, and every step writes into it (out=, *=).
        def update(rows):
            g, m, v, theta = p.grad[rows], state["m"][rows], state["v"][rows], p.data[rows]
            work = g * (1 - beta1)
            m *= beta1
            m += work  # m ← β1·m + (1 − β1)·g
            xp.multiply(g, g, out=work)
            work *= 1 - beta2
            v *= beta2
            v += work  # v ← β2·v + (1 − β2)·g²
            xp.sqrt(v, out=work)
            work *= 1 / math.sqrt(1 - beta2**t)  # √v̂ = √v / √(1 − β2^t)
            work += self.eps
            xp.divide(m, work, out=work)
            work *= self.lr / (1 - beta1**t)  # lr·m̂ / (√v̂ + ε), with m̂ = m / (1 − β1^t)
            if group["weight_decay"]:
                theta *= decay  # decoupled weight decay: θ ← θ·(1 − lr·λ)
            theta -= work

        parallel.for_blocks(update, p.data)
        # END EXERCISE


# ----------------------------------------------------------------------------------------------
# Learning-rate schedule and gradient clipping


def linear_warmup_decay(step: int, warmup_steps: int, total_steps: int) -> float:
    """The factor that multiplies the base learning rate at update number `step` (0-based).

    Rises linearly from 0 to 1 over the first `warmup_steps` updates, then falls linearly to 0
    at `total_steps` (the schedule of BERT and of transformers'
    get_linear_schedule_with_warmup, whose values this matches exactly). Warm-up keeps the
    first, badly-informed Adam steps small; the decay lets training settle.

        factor = step / warmup_steps                                   if step < warmup_steps
               = (total_steps − step) / (total_steps − warmup_steps)   otherwise, floored at 0
    """
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def global_grad_norm(params: Iterable) -> float:
    """‖g‖ = sqrt(Σ over all parameters of Σ g²): the length of the whole gradient vector."""
    total = 0.0
    for p in params:
        if p.requires_grad and p.grad is not None:
            total += sum(parallel.for_blocks(partial(_sum_of_squares, p.grad), p.grad))
    return math.sqrt(total)


def _sum_of_squares(g, rows) -> float:
    """Σ g² over some rows of g, in float64: the sum of squares of a whole model is long."""
    b = g[rows].astype(np.float64)
    return float((b * b).sum())


def clip_grad_norm(params: Iterable, max_norm: float) -> float:
    """Scale all gradients by one factor so that their global L2 norm is at most `max_norm`.

    Clipping the norm (not each value) keeps the gradient's direction and only shortens it,
    which protects training from the occasional huge gradient. Returns the norm *before*
    clipping (worth logging). A non-finite norm is returned as is, gradients untouched: the
    training loop decides what to do about it.
    """
    params = [p for p in params if p.requires_grad and p.grad is not None]
    norm = global_grad_norm(params)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / (norm + 1e-6)  # the 1e-6 (as in PyTorch) guards against norm ≈ 0
        for p in params:
            p.grad = p.grad * p.grad.dtype.type(scale)  # a scalar of the grad's dtype
    return norm
