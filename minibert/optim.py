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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backend, parallel
from .backend import Array

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


@dataclass
class _Buffer:
    """What one run of an update formula works on: parameters θ, their gradient g, the state
    arrays by name, the step count t and the group's weight decay (one parameter, or on the
    GPU a whole group laid out flat)."""

    theta: object
    g: object
    state: dict
    t: int
    weight_decay: float


SMALL = 8192  # on the CPU, parameters with fewer numbers than this are updated as one array


class _FlatGroup:
    """A group's parameters and their state arrays, each kind as views of one flat array.

    Made once; the parameters' ``.data`` and the optimizer state's arrays are then views of
    the flat arrays, so that one update over the flat arrays updates them all. Whoever
    replaces one of them (model.to, load_state_dict) makes `holds` false, and the next step
    lays the group out again from what the parameters and the state hold then.
    """

    def __init__(self, moving: list, state: dict, names: tuple[str, ...]):
        self.params = [p for _, p in moving]
        self.index = [i for i, _ in moving]
        self.theta, self.theta_views = backend.flatten([p.data for p in self.params])
        for p, view in zip(self.params, self.theta_views, strict=True):
            p.data = view
        self.state, self.state_views = {}, {}
        for name in names:
            if all(name in state.get(i, {}) for i in self.index):
                flat, views = backend.flatten([state[i][name] for i in self.index])
            else:  # no state yet: zeros
                xp = backend.get_array_module(self.theta)
                flat = xp.zeros_like(self.theta)
                views = backend.views(flat, [p.shape for p in self.params])
            self.state[name], self.state_views[name] = flat, views
            for i, view in zip(self.index, views, strict=True):
                state.setdefault(i, {"step": 0})[name] = view

    def holds(self, moving: list, state: dict) -> bool:
        """Are these the parameters, and their data and state still the views, made here?"""
        return (len(moving) == len(self.params)
                and all(p is q for (_, p), q in zip(moving, self.params, strict=True))
                and all(p.data is view for p, view in zip(self.params, self.theta_views,
                                                          strict=True))
                and all(state.get(i, {}).get(name) is view
                        for name, views in self.state_views.items()
                        for i, view in zip(self.index, views, strict=True)))

    def buffer(self, state: dict, weight_decay: float) -> _Buffer:
        """The flat arrays for one step (the gradients copied into one), every step count
        advanced by one."""
        for i in self.index:
            state[i]["step"] += 1
        g, _ = backend.flatten([p.grad for p in self.params])
        return _Buffer(self.theta, g, self.state, state[self.index[0]]["step"], weight_decay)


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
        self._flat: dict[int, _FlatGroup] = {}  # group k (on the CPU: its small ones) laid flat

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

    def _buffers(self, names: tuple[str, ...]):
        """What the update formula runs on, one `_Buffer` at a time, its step count t advanced.

        On the GPU, where every call starts a kernel: each group's parameters at once, as one
        flat array of parameters, of gradients and of each state (`_FlatGroup`), when they can
        move together (all have a gradient, one dtype, the same step count). On the CPU the
        same for a group's small parameters (under SMALL numbers each: biases, LayerNorm's γ
        and β), whose update costs less than a call's ~30 µs of Python; each larger parameter
        on its own, with its state arrays `names` (zeros at first), as is every parameter that
        cannot move with the others.
        """
        for k, group in enumerate(self.param_groups):
            start = sum(len(g["params"]) for g in self.param_groups[:k])
            trainable = [(start + j, p) for j, p in enumerate(group["params"]) if p.requires_grad]
            moving = [(i, p) for i, p in trainable if p.grad is not None]
            if not moving:
                continue
            # together: those that may move as one flat array, if all of `candidates` move;
            # rest: those that then still move one at a time
            if backend.is_device_array(moving[0][1].data):
                together, candidates, rest = moving, trainable, []
            else:
                together = [(i, p) for i, p in moving if p.data.size < SMALL]
                candidates = [(i, p) for i, p in trainable if p.data.size < SMALL]
                rest = [(i, p) for i, p in moving if p.data.size >= SMALL]
            if len(together) > 1 and len(together) == len(candidates) \
                    and self._same_steps(together):
                flat = self._flat.get(k)
                if flat is None or not flat.holds(together, self.state):
                    flat = self._flat[k] = _FlatGroup(together, self.state, names)
                yield flat.buffer(self.state, group["weight_decay"])
                moving = rest
            for i, p in moving:
                state = self.state.setdefault(i, {})
                if not state:
                    state["step"] = 0
                    for name in names:
                        state[name] = backend.get_array_module(p.data).zeros_like(p.data)
                state["step"] += 1
                yield _Buffer(p.data, p.grad, {n: state[n] for n in names}, state["step"],
                              group["weight_decay"])

    def _same_steps(self, moving) -> bool:
        """One dtype, and the same step count for all (no state yet counts as 0)."""
        dtypes = {p.dtype for _, p in moving}
        steps = {self.state.get(i, {}).get("step", 0) for i, _ in moving}
        return len(dtypes) == 1 and len(steps) == 1

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
            g = p.grad + group["weight_decay"] * p.data
            if self.momentum:
                state = self.state.setdefault(i, {})
                v = state.get("velocity")
                g = state["velocity"] = g if v is None else self.momentum * v + g
            p.data -= (self.lr * g).astype(p.dtype, copy=False)


# ----------------------------------------------------------------------------------------------
# AdamW


def adamw_update(theta: Array, g: Array, m: Array, v: Array, lr: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, t: int
                 ) -> tuple[Array, Array, Array]:
    """AdamW's update of parameters θ with gradient g at step t (1, 2, ...): the new (θ, m, v).

    m and v are Adam's running means of g and g² (zeros before the first step). Whole arrays
    of any one shape in, whole arrays out; the scalars are numbers (or 0-d arrays on the GPU).
    """
    xp = backend.get_array_module(theta)
    # BEGIN EXERCISE 8.1: AdamW's five lines (see the AdamW class): m = β1·m + (1 − β1)·g;
    #   v = β2·v + (1 − β2)·g²; m̂ = m/(1 − β1^t); v̂ = v/(1 − β2^t);
    #   θ = θ·(1 − lr·weight_decay) − lr·m̂/(√v̂ + eps)  (xp.sqrt for the square root)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    theta = theta * (1 - lr * weight_decay) - lr * m_hat / (xp.sqrt(v_hat) + eps)
    # END EXERCISE
    return theta, m, v


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as in PyTorch and BERT.

    For each parameter θ with gradient g, at its step t = 1, 2, ... (`adamw_update`):

        m ← β1·m + (1 − β1)·g          running mean of the gradient       (first moment)
        v ← β2·v + (1 − β2)·g²         running mean of its square         (second moment)
        m̂ = m / (1 − β1^t)             bias correction: m and v start at 0, so early
        v̂ = v / (1 − β2^t)             averages are too small by exactly these factors
        θ ← θ·(1 − lr·λ) − lr·m̂ / (√v̂ + ε)   decoupled weight decay λ (applied to θ
                                       directly, not through m and v), and the Adam step

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
        """`adamw_update` on every parameter that has a gradient, its results written back.

        How that runs is backend.elementwise's choice: on the CPU in cache-sized blocks on all
        cores, in place; on the GPU once per parameter group (`_buffers` lays a group's
        parameters, gradients and moments out as one flat array each), not once per tensor.
        """
        beta1, beta2 = self.betas
        update = backend.elementwise(adamw_update)
        with backend.together():  # on the CPU: all parameters' blocks on the threads at once
            for b in self._buffers(("m", "v")):
                _run(update, (b.theta, b.state["m"], b.state["v"]), b.theta, b.g,
                     b.state["m"], b.state["v"], self.lr, beta1, beta2, self.eps,
                     b.weight_decay, b.t)


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


def global_grad_norm(params: Iterable[Parameter]) -> float | Array:
    """‖g‖ = sqrt(Σ over all parameters of Σ g²): the length of the whole gradient vector.

    A float; on the GPU a 0-d array that stays there (reading it, ``float(norm)``, waits for
    the GPU: the training loop does that only when it logs).
    """
    return _norm(_gradients([p for p in params if p.requires_grad and p.grad is not None]))


def clip_grad_norm(params: Iterable[Parameter], max_norm: float) -> float | Array:
    """Scale all gradients by one factor so that their global L2 norm is at most `max_norm`.

    Clipping the norm (not each value) keeps the gradient's direction and only shortens it,
    which protects training from the occasional huge gradient. Returns the norm *before*
    clipping (worth logging; see `global_grad_norm` for its type). A non-finite norm leaves
    the gradients untouched: the training loop decides what to do about it.
    """
    params = [p for p in params if p.requires_grad and p.grad is not None]
    grads = _gradients(params)
    norm = _norm(grads)
    if backend.is_device_array(norm):  # the GPU decides, and scales by 1 if not clipping
        (flat,) = grads
        _rebind_grads(params, backend.elementwise(clipped)(flat, norm, max_norm))
    elif math.isfinite(norm) and norm > max_norm:
        for p in params:  # new arrays: a gradient array may be shared by two parameters
            p.grad = clipped(p.grad, norm, max_norm)
    return norm


def clipped(g: Array, norm: float | Array, max_norm: float) -> Array:
    """g · max_norm / ‖g‖ if the norm ‖g‖ is finite and above max_norm, else g as it is
    (the 1e-6, as in PyTorch, guards against ‖g‖ ≈ 0)."""
    xp = backend.get_array_module(g)
    scale = xp.where(xp.isfinite(norm) & (norm > max_norm), max_norm / (norm + 1e-6), 1.0)
    return g * scale.astype(g.dtype)


def sum_of_squares(g: Array) -> Array:
    """Σ g², in float64: the sum of squares of a whole model is long."""
    g = g.astype(np.float64)
    return (g * g).sum()


def _norm_of(g):
    """sqrt(Σ g²), on the GPU in one kernel."""
    return backend.get_array_module(g).sqrt(sum_of_squares(g))


# ----------------------------------------------------------------------------------------------
# How the formulas run: blocks on the CPU, all parameters at once on the GPU


def _gradients(params: list) -> list:
    """The gradients to work on: each parameter's on the CPU; on the GPU one flat array
    holding them all (each parameter's gradient then a view of it), so that summing and
    scaling are one kernel each, not one per parameter."""
    grads = [p.grad for p in params]
    if not grads or not backend.is_device_array(grads[0]):
        return grads
    flat, _ = backend.flatten(grads)
    _rebind_grads(params, flat)
    return [flat]


def _rebind_grads(params: list, flat) -> None:
    """Make the parameters' gradients the consecutive pieces of `flat`."""
    for p, view in zip(params, backend.views(flat, [p.shape for p in params]), strict=True):
        p.grad = view


def _norm(grads: list):
    """sqrt(Σ over the arrays of Σ g²): on the CPU a float, summed in blocks on all cores; on
    the GPU a 0-d array there (one kernel over the one flat array of `_gradients`)."""
    if not grads:
        return 0.0
    if backend.is_device_array(grads[0]):
        (flat,) = grads
        return backend.elementwise(_norm_of)(flat)
    return math.sqrt(sum(sum(parallel.for_blocks(
        lambda rows, g=g: float(sum_of_squares(g[rows])), g)) for g in grads))


def _run(formula, out: tuple, *args) -> None:
    """``out = formula(*args)`` for a formula made by backend.elementwise: the results written
    into the arrays `out`.

    On the CPU in cache-sized blocks of rows on the thread pool, each block's steps with
    `out=` into a few block-sized buffers and its results straight into `out`: no array the
    size of a parameter is made. On the GPU as one fused kernel; its numbers then come as 0-d
    arrays of the parameters' dtype (one upload), as a fused kernel would compute a Python
    float in float64.
    """
    if backend.is_device_array(out[0]):
        xp = backend.get_array_module(out[0])
        numbers = [a for a in args if not hasattr(a, "shape")]
        uploaded = iter(xp.asarray(numbers, dtype=out[0].dtype))
        args = tuple(a if hasattr(a, "shape") else next(uploaded) for a in args)
    formula(*args, out=out)

