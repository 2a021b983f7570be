"""Neural-network ops for autograd-lite, each with its hand-written backward.

These are the pieces BERT is made of: linear maps, embedding lookups, GELU, softmax,
layer normalisation, dropout and the cross-entropy loss. Each op starts with its textbook
formula on whole arrays, forward and backward side by side, in plain lines such as
`x * 0.5 * (1 + erf(x / sqrt(2)))`. Several are *fused*: one forward and one backward for the
whole formula instead of a chain of small ops, which is both faster and numerically safer
(softmax, layer_norm, cross_entropy). Some take in what comes before them: add_layer_norm is
LayerNorm(x + Dropout(a + b)), BERT's add & norm, and gelu and tanh take the bias of the linear
map before them; then a bias, a dropout or a residual costs no pass over memory of its own.

How the lines run is the backend's business, decided in one visible place: the decorator on
each formula. `@backend.elementwise` (every number on its own) and `@backend.rows` (each row on
its own, with sums over the row: `row_sum`, `row_mean`, `row_max`) run the formula on cache-sized
blocks on all CPU cores under NumPy, and as fused GPU kernels under CuPy (backend.py, "How a
formula runs"). `exp`, `sqrt`, ... are NumPy's or CuPy's, whichever the array belongs to.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import backend
from .autograd import ShapeError, Tensor, accum_grad, is_grad_enabled, op_result
from .backend import Array, absolute, copysign, exp, log, row_max, row_mean, row_sum, sqrt

# ----------------------------------------------------------------------------------------------
# Linear map and embedding lookup


def linear(x: Tensor, W: Tensor, b: Tensor | None = None) -> Tensor:
    """y = x W + b.   x: (..., in), W: (in, out), b: (out,)  ->  y: (..., out)

    The leading axes are folded into one, so the backward is three plain matrix products:
    dx = dy Wᵀ,  dW = xᵀ dy,  db = sum of dy over all rows.
    """

    @backend.elementwise
    def add_bias(y, b):  # in place: no second (rows, out) array
        y += b

    if x.shape[-1] != W.shape[0]:
        raise ShapeError(f"linear: input {x.shape} does not fit weight {W.shape} (in={W.shape[0]})")
    x2 = x.data.reshape(-1, W.shape[0])  # (rows, in)
    y = backend.linear_map(x2, W.data)  # x W
    if b is not None:
        add_bias(y, b.data)  # + b
    parents = (x, W) if b is None else (x, W, b)
    out = op_result(y.reshape(*x.shape[:-1], W.shape[1]), parents, "linear")

    def _backward():
        dy = out.grad.reshape(-1, W.shape[1])
        if x.requires_grad:
            accum_grad(x, (dy @ W.data.T).reshape(x.shape))
        if W.requires_grad:
            accum_grad(W, x2.T @ dy)
        if b is not None:
            accum_grad(b, dy.sum(axis=0))

    out._backward = _backward
    return out


def embedding(weight: Tensor, ids: Array) -> Tensor:
    """Row lookup: weight (vocab, dim), ids (...) int  ->  (..., dim).

    The backward scatter-adds each row's gradient into the rows that were read; a token that
    occurs twice gets the sum of both gradients. Ids are checked against the table's size while
    they are on the host (a NumPy array or a list); ids already on the GPU are not, since reading
    them back would make the host wait for the GPU (the model checks them before they go there).
    """
    ids = ids.data if isinstance(ids, Tensor) else ids
    ids = check_ids(ids if backend.is_device_array(ids) else np.asarray(ids), weight.shape[0],
                    "embedding")
    ids = backend.get_array_module(weight.data).asarray(ids)
    out = op_result(weight.data[ids], (weight,), "embedding")

    def _backward():
        # BEGIN EXERCISE 2.1: start from zeros shaped like the table and add each row of out.grad
        #   into the row of its id with backend.scatter_add (a plain g[ids] += ... loses repeated
        #   ids)
        g = backend.get_array_module(out.grad).zeros_like(weight.data)
        backend.scatter_add(g, ids.reshape(-1), out.grad.reshape(-1, weight.shape[1]))
        accum_grad(weight, g)
        # END EXERCISE

    out._backward = _backward
    return out


def check_ids(ids: Array, size: int, what: str) -> Array:
    """`ids`, after a TypeError unless they are integers and an IndexError for ids outside
    [0, size). The range is checked on host (NumPy) arrays only: reading GPU ids back to the host
    would make it wait for the GPU."""
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{what}: ids must be integers, got dtype {ids.dtype}")
    if isinstance(ids, np.ndarray) and ids.size and (ids.min() < 0 or ids.max() >= size):
        raise IndexError(
            f"{what}: ids must lie in [0, {size}), got min {ids.min()} and max {ids.max()} "
            "(is the tokenizer's vocabulary bigger than the model's?)"
        )
    return ids


# ----------------------------------------------------------------------------------------------
# Attention's heads


def attention_heads(x: Tensor, W_q: Tensor, W_k: Tensor, W_v: Tensor, b_q: Tensor,
                    b_k: Tensor, b_v: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """Attention's queries, keys and values, cut into heads: split(x W + b) for the three linear
    maps (W_q, b_q), (W_k, b_k), (W_v, b_v), where split cuts the last axis of (B, T, H) into
    h = num_heads heads of size d = H/h: (B, T, H) -> (B, h, T, d).

    x: (B, T, H_in); W: (H_in, H); b: (H,). The same numbers as split(linear(x, W, b)) for
    each, with the three biases added in one formula. On the GPU that is one kernel instead of
    three, and it writes each head's rows one after another, as the products q kᵀ and probs·v
    read them (cuBLAS would first copy a head that is a view of (B, T, H)); on the CPU the
    heads are views of the (B, T, H) results, which BLAS reads as they are (backend.into_heads).
    Backward, for each: dy = the heads of the gradient joined again, (B, T, H); then linear's:
    dx = dy Wᵀ, dW = xᵀ dy, db = Σ dy over the rows.
    """

    @backend.elementwise
    def add_biases(q, k, v, b_q, b_k, b_v):  # x W + b for each (as heads on the GPU: into_heads)
        return q + b_q, k + b_k, v + b_v

    B, T, H_in = x.shape
    H = W_q.shape[-1]
    if H % num_heads or any(W.shape != (H_in, H) for W in (W_k, W_v)) or \
            W_q.shape[0] != H_in or any(b.shape != (H,) for b in (b_q, b_k, b_v)):
        raise ShapeError(f"attention_heads: x {x.shape} needs weights (H_in, H) = ({H_in}, H) "
                         f"alike with H a multiple of num_heads = {num_heads} and biases (H,); "
                         f"got W {W_q.shape}, {W_k.shape}, {W_v.shape} and b {b_q.shape}, "
                         f"{b_k.shape}, {b_v.shape}")
    x2 = x.data.reshape(-1, H_in)  # (rows, in)
    ys = [backend.linear_map(x2, W.data).reshape(B, T, H) for W in (W_q, W_k, W_v)]  # x W
    heads = backend.into_heads(add_biases, ys, [b.data for b in (b_q, b_k, b_v)], num_heads)
    outs = []
    for W, b, head in zip((W_q, W_k, W_v), (b_q, b_k, b_v), heads, strict=True):
        out = op_result(head, (x, W, b), "attention_heads")

        def _backward(W=W, b=b, out=out):
            dy = out.grad.transpose(0, 2, 1, 3).reshape(-1, H)  # the heads joined again
            if x.requires_grad:
                accum_grad(x, (dy @ W.data.T).reshape(x.shape))
            if W.requires_grad:
                accum_grad(W, x2.T @ dy)
            if b.requires_grad:
                accum_grad(b, dy.sum(axis=0))

        out._backward = _backward
        outs.append(out)
    return outs[0], outs[1], outs[2]


# ----------------------------------------------------------------------------------------------
# Activations

# Abramowitz & Stegun 7.1.26: erf(x) ≈ 1 − (a1·t + a2·t² + a3·t³ + a4·t⁴ + a5·t⁵)·exp(−x²) with
# t = 1/(1 + p·x), for x >= 0; |error| <= 1.5e-7, below float32's resolution near 1.
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)  # a1 … a5


def erf(x: Array) -> Array:
    """The error function on arrays, accurate to 1.5e-7 (Abramowitz & Stegun 7.1.26, above).

    NumPy has no erf. erf is odd: computed for |x|, with the sign of x put back. The polynomial
    is in Horner's form, t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5)))): the same sum, fewer steps."""
    a1, a2, a3, a4, a5 = _ERF_A
    t = 1 / (1 + _ERF_P * absolute(x))
    y = 1 - t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))) * exp(-x * x)
    return copysign(y, x)


# Φ(x) = ½(1 + erf(x/√2)) is the same formula with the 1/√2 and the ½ folded into its constants
# (p/√2 and b_i = a_i/2), which spares GELU three passes over its input:
#   Φ(x) ≈ ½ + sign(x)·(½ − (b1·t + … + b5·t⁵)·exp(−x²/2)),  t = 1/(1 + (p/√2)·|x|)
_CDF_P = _ERF_P / math.sqrt(2.0)
_CDF_B = tuple(a / 2.0 for a in _ERF_A)


def normal_cdf(x: Array) -> Array:
    """Φ(x) = ½(1 + erf(x/√2)), the standard normal CDF, on arrays: |error| <= 7.5e-8 (erf's,
    halved). The formula above, Horner's form for the polynomial."""
    b1, b2, b3, b4, b5 = _CDF_B
    t = 1 / (1 + _CDF_P * absolute(x))
    return 0.5 + copysign(0.5 - t * (b1 + t * (b2 + t * (b3 + t * (b4 + t * b5))))
                          * exp(-0.5 * x * x), x)


def gelu(x: Tensor, bias: Tensor | None = None) -> Tensor:
    """Exact GELU, as BERT uses: x·Φ(x), with Φ the standard normal CDF (normal_cdf).

    With `bias` (n,) for x (..., n): GELU(x + bias), the bias of the linear map before it added
    in the same pass over memory (BertLayer: GELU(x W₁ + b₁)). Φ is kept for the backward only
    when there will be one."""

    @backend.elementwise
    def forward(x, b):  # GELU(u) = u·Φ(u),  u = x + b
        u = x + b
        return u * normal_cdf(u)

    @backend.elementwise
    def forward_keeping_cdf(x, b):  # the same, and Φ(u) for the backward
        u = x + b
        cdf = normal_cdf(u)
        return u * cdf, cdf

    @backend.elementwise
    def backward(x, b, cdf, dy):  # d/dx x·Φ(x) = Φ(x) + x·φ(x),  φ the normal density
        x = x + b  # GELU's input u = x + b again, in the same pass (not kept since the forward)
        # BEGIN EXERCISE 4.2: the derivative of x·Φ(x) is Φ(x) + x·φ(x), with φ(x) =
        #   exp(-x²/2)/√(2π); multiply by dy (the gradient of the output) to get dx
        dx = dy * (cdf + x * exp(-0.5 * x * x) / math.sqrt(2 * math.pi))
        # END EXERCISE
        return dx

    if bias is not None and bias.shape != x.shape[-1:]:
        raise ShapeError(f"gelu: bias {bias.shape} must be ({x.shape[-1]},) for input {x.shape}")
    b = 0.0 if bias is None else bias.data
    parents = (x,) if bias is None else (x, bias)
    if not (any(t.requires_grad for t in parents) and is_grad_enabled()):
        return op_result(forward(x.data, b), parents, "gelu")
    y, cdf = forward_keeping_cdf(x.data, b)
    out = op_result(y, parents, "gelu")

    def _backward():
        dx = backward(x.data, b, cdf, out.grad)
        accum_grad(x, dx)
        if bias is not None and bias.requires_grad:
            accum_grad(bias, dx.reshape(-1, dx.shape[-1]).sum(axis=0))

    out._backward = _backward
    return out


def relu(x: Tensor) -> Tensor:
    return x.relu()


def tanh(x: Tensor, bias: Tensor | None = None) -> Tensor:
    """tanh(x), or with `bias` (n,) for x (..., n) tanh(x + bias): the bias of the linear map
    before it added in the same pass (BERT's pooler: tanh(h W_p + b_p)). dx = dy·(1 − y²)."""

    @backend.elementwise
    def forward(x, b):  # tanh(u),  u = x + b
        return backend.tanh(x + b)

    @backend.elementwise
    def backward(y, dy):  # d/du tanh(u) = 1 − tanh(u)²
        return dy * (1 - y * y)

    if bias is not None and bias.shape != x.shape[-1:]:
        raise ShapeError(f"tanh: bias {bias.shape} must be ({x.shape[-1]},) for input {x.shape}")
    parents = (x,) if bias is None else (x, bias)
    out = op_result(forward(x.data, 0.0 if bias is None else bias.data), parents, "tanh")

    def _backward():
        du = backward(out.data, out.grad)
        accum_grad(x, du)
        if bias is not None and bias.requires_grad:
            accum_grad(bias, du.reshape(-1, du.shape[-1]).sum(axis=0))

    out._backward = _backward
    return out


# ----------------------------------------------------------------------------------------------
# Softmax family


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`; the max is subtracted first so exp cannot overflow."""
    # BEGIN EXERCISE 3.1: forward: subtract the row's max (row_max), exp, divide by the row's sum
    #   (row_sum); backward: dx = y * (dy - row_sum(dy * y)); wrap with op_result and set
    #   out._backward

    @backend.rows
    def forward(x):  # softmax(x) = exp(x − max x) / Σ exp(x − max x)
        e = exp(x - row_max(x))
        return e / row_sum(e)

    @backend.rows
    def backward(y, dy):  # Jacobian-vector product: dx = y ⊙ (dy − Σ dy·y)
        return y * (dy - row_sum(dy * y))

    if axis not in (-1, x.ndim - 1):  # the formula works along the last axis: make `axis` it
        return softmax(x.swapaxes(axis, -1)).swapaxes(axis, -1)
    out = op_result(forward(x.data), (x,), "softmax")
    out._backward = lambda: accum_grad(x, backward(out.data, out.grad))
    # END EXERCISE
    return out


@backend.rows
def log_softmax_rows(x: Array) -> Array:
    """log softmax along the last axis: x − max − log Σ exp(x − max), no log(0), no overflow."""
    shifted = x - row_max(x)
    return shifted - log(row_sum(exp(shifted)))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log(softmax(x)) computed as x − max − log Σ exp(x − max): no log(0), no overflow."""

    @backend.rows
    def backward(logp, dy):  # dx = dy − softmax(x)·Σ dy
        return dy - exp(logp) * row_sum(dy)

    if axis not in (-1, x.ndim - 1):
        return log_softmax(x.swapaxes(axis, -1)).swapaxes(axis, -1)
    out = op_result(log_softmax_rows(x.data), (x,), "log_softmax")
    out._backward = lambda: accum_grad(x, backward(out.data, out.grad))
    return out


# ----------------------------------------------------------------------------------------------
# Normalisation and regularisation


@backend.rows
def layer_norm_rows(x: Array, gamma: Array, beta: Array, eps: float) -> tuple[Array, ...]:
    """LayerNorm along the last axis: x̂ = (x − mean) / √(var + ε),  y = x̂·γ + β.
    Returns y, and x̂ and var for the backward."""
    mean = row_mean(x)
    xc = x - mean  # centred
    var = row_mean(xc * xc)
    xhat = xc / sqrt(var + eps)
    return xhat * gamma + beta, xhat, var


@backend.rows
def layer_norm_backward_rows(dy: Array, xhat: Array, var: Array, gamma: Array,
                             eps: float) -> Array:
    """dx of LayerNorm, given dy and what layer_norm_rows kept (x̂, var)."""
    # BEGIN EXERCISE 4.1: with g = dy·gamma, dx = (g - mean(g) - x̂·mean(g·x̂)) / std, means
    #   over the row (row_mean) and std = √(var + eps)
    g = dy * gamma
    dx = (g - row_mean(g) - xhat * row_mean(g * xhat)) / sqrt(var + eps)
    # END EXERCISE
    return dx


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-12) -> Tensor:
    """Normalise the last axis to mean 0, variance 1, then scale by gamma and shift by beta.

    x: (..., d), gamma and beta: (d,). The formulas are just above: forward
    x̂ = (x − mean) / √(var + ε), y = x̂·γ + β; the backward is fused: with g = dy·gamma,
    dx = (g − mean(g) − x̂·mean(g·x̂)) / std.
    """
    _check_norm_shapes("layer_norm", x, gamma, beta)
    y, xhat, var = layer_norm_rows(x.data, gamma.data, beta.data, eps)
    out = op_result(y, (x, gamma, beta), "layer_norm")

    def _backward():
        dy = out.grad
        if x.requires_grad:
            accum_grad(x, layer_norm_backward_rows(dy, xhat, var, gamma.data, eps))
        _norm_parameter_grads(dy, xhat, gamma, beta)

    out._backward = _backward
    return out


def _check_norm_shapes(op: str, x: Tensor, gamma: Tensor, beta: Tensor) -> None:
    if gamma.shape != x.shape[-1:] or beta.shape != x.shape[-1:]:
        raise ShapeError(
            f"{op}: gamma {gamma.shape} and beta {beta.shape} must both be ({x.shape[-1]},) "
            f"for input {x.shape}"
        )


def _norm_parameter_grads(dy: Array, xhat: Array, gamma: Tensor, beta: Tensor) -> None:
    rows = (-1, dy.shape[-1])  # dgamma = Σ dy·x̂ and dbeta = Σ dy, over all rows
    xp = backend.get_array_module(dy)
    accum_grad(gamma, xp.einsum("ij,ij->j", dy.reshape(rows), xhat.reshape(rows)))
    accum_grad(beta, dy.reshape(rows).sum(axis=0))


@backend.rows
def _add_norm_rows(x, a, b, gamma, beta, eps):  # LayerNorm(x + (a + b))
    return layer_norm_rows.formula(x + (a + b), gamma, beta, eps)


@backend.rows
def _add_dropout_norm_rows(x, a, b, keep, scale, gamma, beta, eps):  # LayerNorm(x + Dropout(a + b))
    return layer_norm_rows.formula(x + (a + b) * keep * scale, gamma, beta, eps)


def add_layer_norm(x: Tensor, a: Tensor, b: Tensor, gamma: Tensor, beta: Tensor,
                   eps: float = 1e-12, p: float = 0.0, training: bool = False,
                   rng: Any = None) -> Tensor:
    """LayerNorm(x + Dropout(a + b)): BERT's "add & norm" after a sub-layer whose output `a`
    comes without its bias `b` (a linear map's x W).  x, a: (..., d); b, gamma, beta: (d,).

    The same numbers as layer_norm(x + dropout(a + b), gamma, beta) (tests/test_functional.py
    checks it), as one formula: the bias, the dropout mask and the residual are added where
    the norm reads its input, one pass over memory instead of four (on the GPU: no kernels of
    their own). The dropout mask is drawn as `dropout` draws it. Backward: dz as layer_norm's,
    then dx = dz, da = dz·keep/(1 − p), db = Σ da over the rows.
    """

    _check_norm_shapes("add_layer_norm", x, gamma, beta)
    if a.shape != x.shape or b.shape != x.shape[-1:]:
        raise ShapeError(f"add_layer_norm: a {a.shape} must have the shape of x {x.shape} and "
                         f"b {b.shape} must be ({x.shape[-1]},)")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"add_layer_norm: p must be in [0, 1), got {p}")
    keep = scale = None
    if training and p > 0.0:
        rng = backend.rng() if rng is None else rng
        keep = rng.random(a.shape, dtype=_random_dtype(a.dtype)) >= p
        scale = 1.0 / (1.0 - p)
        y, xhat, var = _add_dropout_norm_rows(x.data, a.data, b.data, keep, scale, gamma.data,
                                              beta.data, eps)
    else:
        y, xhat, var = _add_norm_rows(x.data, a.data, b.data, gamma.data, beta.data, eps)
    out = op_result(y, (x, a, b, gamma, beta), "add_layer_norm")

    def _backward():
        dy = out.grad
        if x.requires_grad or a.requires_grad or b.requires_grad:
            dz = layer_norm_backward_rows(dy, xhat, var, gamma.data, eps)
            accum_grad(x, dz)
            da = dz if keep is None else masked(dz, keep, scale)
            accum_grad(a, da)
            if b.requires_grad:
                accum_grad(b, da.reshape(-1, da.shape[-1]).sum(axis=0))
        _norm_parameter_grads(dy, xhat, gamma, beta)

    out._backward = _backward
    return out


@backend.elementwise
def masked(a: Array, keep: Array, scale: float) -> Array:
    """Inverted dropout's mask on `a`, forward and backward alike: a·keep/(1 − p), with
    keep (bool, the shape of a) and scale = 1/(1 − p)."""
    return a * keep * scale


def dropout(x: Tensor, p: float, training: bool = True, rng: Any = None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout).

    Off in evaluation (`training=False`) and for p=0. The mask comes from `rng` (default: the
    global generator seeded by `minibert.manual_seed`), so runs are reproducible.
    """

    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    # BEGIN EXERCISE 4.3: draw uniform numbers with rng.random(x.shape), keep where >= p, scale kept
    #   values by 1/(1-p) (wrap with op_result); its _backward multiplies out.grad by the same
    #   mask
    rng = backend.rng() if rng is None else rng
    # float32 random numbers when x is float32 (half the bytes of float64); the mask is kept
    # for the backward as booleans, 1 byte per element
    keep = rng.random(x.shape, dtype=_random_dtype(x.dtype)) >= p
    scale = 1.0 / (1.0 - p)
    out = op_result(masked(x.data, keep, scale), (x,), "dropout")
    out._backward = lambda: accum_grad(x, masked(out.grad, keep, scale))
    # END EXERCISE
    return out


def _random_dtype(dtype):
    """The dtype for uniform random numbers: the generator makes only float32 and float64."""
    return np.float32 if dtype == np.float32 else np.float64


# ----------------------------------------------------------------------------------------------
# Loss


# The label of a position the loss must skip: padding, [CLS]/[SEP], unmasked tokens in MLM,
# word pieces after a word's first. (-100, as in PyTorch and Hugging Face.)
IGNORE_INDEX = -100


def cross_entropy(logits: Tensor, target: Array, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean negative log-likelihood of the target classes.

    logits: (..., C) unnormalised scores; target: (...) class ids. Positions whose target equals
    `ignore_index` (IGNORE_INDEX, -100) count neither in the sum nor in the mean. If every
    position is ignored the loss is 0 and so is the gradient.
        loss = −(1/n) Σ_i log softmax(z_i)[t_i]  over the n counted rows i
    Backward (fused): (softmax(z_i) − onehot(t_i)) / n on the counted rows, 0 elsewhere.

    On the CPU only the counted rows are computed: in masked-language-model training ~85 % of
    the positions are ignored, and a softmax over the whole vocabulary at each of them was half
    the time of a small model's training step. On the GPU every row is computed and the ignored
    ones are masked out: picking the counted rows would need their number on the host, a wait
    for the GPU. Target ids are checked while they are on the host (as embedding's ids).
    """
    t = target.data if isinstance(target, Tensor) else target
    t = t if backend.is_device_array(t) else np.asarray(t)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class ids, got {t.dtype}")
    if logits.shape[:-1] != t.shape:
        raise ShapeError(
            f"cross_entropy: logits {logits.shape} need target of shape {logits.shape[:-1]}, "
            f"got {t.shape}"
        )
    C = logits.shape[-1]
    counted = t[t != ignore_index] if isinstance(t, np.ndarray) else None  # host: check them
    if counted is not None and counted.size and (counted.min() < 0 or counted.max() >= C):
        raise IndexError(f"cross_entropy: target ids must be in [0, {C}) or {ignore_index}")
    xp = backend.get_array_module(logits.data)
    t = xp.asarray(t).reshape(-1)
    z = logits.data.reshape(-1, C)
    if xp is np:  # only the counted rows
        rows = np.flatnonzero(t != ignore_index)
        zc, w = z[rows], np.ones(len(rows), dtype=z.dtype)
    else:  # every row; an ignored one weighs 0, its scores become 0s (NaN, inf: no matter)
        rows, counts = xp.arange(len(t)), t != ignore_index
        zc, w = xp.where(counts[:, None], z, 0), counts.astype(z.dtype)
    tc, i = xp.where(w > 0, t[rows], 0), xp.arange(len(rows))  # targets (ignored: class 0)
    logp = log_softmax_rows(zc)  # log softmax of each row's scores (n, C)
    n = xp.maximum(w.sum(), 1)  # the number of counted rows, at least 1
    out = op_result((-(w * logp[i, tc]).sum() / n).astype(logits.dtype), (logits,),
                    "cross_entropy")

    def _backward():
        # BEGIN EXERCISE 6.6: on the counted rows the gradient is (softmax(zc) - onehot(tc)) / n
        #   times out.grad, with softmax(zc) = exp(logp); the ignored rows get 0 (weight w = 0):
        #   start from zeros shaped like z, fill in `rows`, reshape to logits.shape
        g = xp.exp(logp)
        g[i, tc] -= 1.0
        g *= (w * (out.grad / n))[:, None]
        dz = xp.zeros_like(z)
        dz[rows] = g
        accum_grad(logits, dz.reshape(logits.shape))
        # END EXERCISE

    out._backward = _backward
    return out
