"""The neural-network ops: gradients, numerical stability, and mathematical invariants."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import minibert
from minibert import Tensor, gradcheck
from minibert import functional as F
from minibert.gradcheck import backward_of_one_op


def T(rng, *shape, scale=1.0):
    return minibert.tensor(rng.standard_normal(shape) * scale, requires_grad=True,
                           dtype=np.float64)


# -- gradients -------------------------------------------------------------------------------


def test_linear(rng, backend_name):
    assert gradcheck(F.linear, T(rng, 2, 3, 4), T(rng, 4, 5), T(rng, 5))
    assert gradcheck(lambda x, W: F.linear(x, W), T(rng, 3, 4), T(rng, 4, 2))


@pytest.mark.exercise("2.1")
def test_embedding_scatter_adds_repeated_ids(rng, backend_name):
    W = T(rng, 6, 3)
    ids = np.array([[1, 1, 5], [0, 1, 1]])  # id 1 appears four times
    assert gradcheck(lambda W: F.embedding(W, ids), W)
    W.grad = None
    out = F.embedding(W, ids)
    backward_of_one_op(out, np.ones(out.shape))  # dL/d out = 1 everywhere: no engine needed
    grad = minibert.to_numpy(W.grad)
    assert grad[1].tolist() == [4.0] * 3 and grad[2].tolist() == [0.0] * 3


def test_embedding_rejects_out_of_range_and_float_ids():
    W = minibert.tensor(np.zeros((4, 2)), requires_grad=True)
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        F.embedding(W, np.array([0, 4]))
    with pytest.raises(TypeError, match="integers"):
        F.embedding(W, np.array([0.0, 1.0]))


def test_attention_heads_are_each_linear_map_cut_into_heads(rng, backend_name):
    """split(x W + b) for queries, keys and values at once: (B, T, H) -> (B, h, T, d)."""
    x = T(rng, 2, 3, 4)
    Ws, bs = [T(rng, 4, 6) for _ in range(3)], [T(rng, 6) for _ in range(3)]

    def split(t):  # the plain lines: (B, T, H) -> (B, h, T, d) with h = 2 heads of d = 3
        return t.reshape(2, 3, 2, 3).transpose(0, 2, 1, 3)

    heads = F.attention_heads(x, *Ws, *bs, num_heads=2)
    for head, W, b in zip(heads, Ws, bs, strict=True):
        assert head.shape == (2, 2, 3, 3)
        np.testing.assert_allclose(head.numpy(), split(F.linear(x, W, b)).numpy(), rtol=1e-12)
    assert gradcheck(lambda *t: sum(((i + 1) * h * h).sum() for i, h in enumerate(
        F.attention_heads(*t, num_heads=2))), x, *Ws, *bs)
    with pytest.raises(minibert.ShapeError, match="multiple of num_heads = 4"):
        F.attention_heads(x, *Ws, *bs, num_heads=4)
    with pytest.raises(minibert.ShapeError, match="biases \\(H,\\)"):
        F.attention_heads(x, *Ws, bs[0], bs[1], Ws[0], num_heads=2)
    with pytest.raises(minibert.ShapeError, match="weights \\(H_in, H\\) = \\(4, H\\)"):
        F.attention_heads(x, Ws[0], Ws[1], T(rng, 5, 6), *bs, num_heads=2)


@pytest.mark.parametrize(
    "name", [pytest.param("gelu", marks=pytest.mark.exercise("4.2")), "relu", "tanh"]
)
def test_activations(name, rng, backend_name):
    op = getattr(F, name, None) or getattr(Tensor, name)  # relu: Tensor.relu
    assert gradcheck(op, T(rng, 3, 5, scale=2.0))


@pytest.mark.exercise("4.2")
def test_gelu_with_a_bias_is_gelu_of_the_sum(rng, backend_name):
    x, b = T(rng, 3, 5, scale=2.0), T(rng, 5)
    assert gradcheck(lambda x, b: F.gelu(x, bias=b), x, b)
    np.testing.assert_allclose(F.gelu(x, bias=b).numpy(), F.gelu(x + b).numpy(), rtol=1e-12)
    with pytest.raises(minibert.ShapeError, match="gelu: bias"):
        F.gelu(x, bias=x)


def test_tanh_with_a_bias_is_tanh_of_the_sum(rng, backend_name):
    x, b = T(rng, 3, 5), T(rng, 5)
    assert gradcheck(lambda x, b: F.tanh(x, bias=b), x, b)
    assert gradcheck(Tensor.tanh, x)  # the plain pooler's (model.FUSED = False)
    np.testing.assert_allclose(F.tanh(x, bias=b).numpy(), np.tanh((x + b).numpy()), rtol=1e-12)
    with pytest.raises(minibert.ShapeError, match="tanh: bias"):
        F.tanh(x, bias=x)


@pytest.mark.parametrize(  # another axis is a swap to the last one and back: the engine (6.5)
    "axis", [pytest.param(-1, marks=pytest.mark.exercise("3.1")), 0, 1])
def test_softmax(axis, rng, backend_name):
    assert gradcheck(lambda x: F.softmax(x, axis=axis), T(rng, 3, 4, 5))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_log_softmax(axis, rng, backend_name):
    assert gradcheck(lambda x: F.log_softmax(x, axis=axis), T(rng, 3, 4, 5))


@pytest.mark.exercise("4.1")
def test_layer_norm(rng, backend_name):
    assert gradcheck(lambda x, g, b: F.layer_norm(x, g, b, eps=1e-5),
                     T(rng, 2, 3, 6), T(rng, 6), T(rng, 6))


@pytest.mark.exercise("4.1")
def test_add_layer_norm_is_layer_norm_of_the_residual_sum(rng, backend_name):
    x, a, b, g, beta = T(rng, 2, 3, 6), T(rng, 2, 3, 6), T(rng, 6), T(rng, 6), T(rng, 6)
    assert gradcheck(lambda *t: F.add_layer_norm(*t, eps=1e-5), x, a, b, g, beta)
    np.testing.assert_allclose(F.add_layer_norm(x, a, b, g, beta, eps=1e-5).numpy(),
                               F.layer_norm(x + (a + b), g, beta, eps=1e-5).numpy(), rtol=1e-12)
    with pytest.raises(minibert.ShapeError, match="add_layer_norm"):
        F.add_layer_norm(x, b, b, g, beta)


@pytest.mark.exercise("4.1")  # its expected mask drawn here: dropout (4.3) comes after 4.1
def test_add_layer_norm_with_dropout_is_layer_norm_of_the_dropped_sum(rng, backend_name):
    x, a, b, g, beta = T(rng, 2, 3, 6), T(rng, 2, 3, 6), T(rng, 6), T(rng, 6), T(rng, 6)

    def with_dropout(*t):  # the same mask on every call: gradcheck runs it many times
        minibert.manual_seed(4)
        return F.add_layer_norm(*t, eps=1e-5, p=0.4, training=True)

    assert gradcheck(with_dropout, x, a, b, g, beta)
    minibert.manual_seed(4)  # the mask is the one dropout draws: rng.random(shape) >= p
    keep = minibert.backend.rng().random(a.shape, dtype=np.float64) >= 0.4
    expected = F.layer_norm(x + (a + b) * Tensor(keep / 0.6), g, beta, eps=1e-5)
    np.testing.assert_allclose(with_dropout(x, a, b, g, beta).numpy(), expected.numpy(),
                               rtol=1e-12)


@pytest.mark.exercise("6.6")
def test_cross_entropy_with_ignore_index(rng, backend_name):
    target = np.array([[1, -100, 3], [0, 2, -100]])
    assert gradcheck(lambda z: F.cross_entropy(z, target), T(rng, 2, 3, 4))


@pytest.mark.exercise("4.3")
def test_dropout_backward_uses_the_same_mask(rng):
    x = T(rng, 4, 5)
    minibert.manual_seed(3)
    y = F.dropout(x, 0.5)
    backward_of_one_op(y, np.ones(y.shape))
    kept = minibert.to_numpy(y.data) != 0
    assert np.allclose(minibert.to_numpy(x.grad), kept * 2.0)


# -- values and stability ----------------------------------------------------------------------


def test_erf_matches_math_erf_to_float32_precision():
    xs = np.linspace(-6, 6, 20001)
    exact = np.array([math.erf(v) for v in xs])
    assert np.abs(F.erf(xs) - exact).max() < 2e-7


def test_normal_cdf_matches_math_erf_on_a_dense_grid():
    # GELU's Φ folds 1/√2 and ½ into erf's constants: the formula's own error is 7.5e-8; in
    # float32 the rounding of ~20 passes adds up to a few units in the last place (2.6e-7)
    xs = np.linspace(-12, 12, 240001)
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in xs])
    assert np.abs(F.normal_cdf(xs) - exact).max() < 7.5e-8
    x32 = xs.astype(np.float32)
    exact32 = np.array([0.5 * math.erfc(-float(v) / math.sqrt(2)) for v in x32])
    phi = F.normal_cdf(x32)
    assert phi.dtype == np.float32 and np.abs(phi - exact32).max() < 3e-7
    assert np.all(np.diff(phi) >= 0) and phi[0] == 0.0 and phi[-1] == 1.0


def test_gelu_is_the_exact_erf_form():
    xs = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    expected = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in xs]
    assert np.allclose(F.gelu(minibert.tensor(xs)).numpy(), expected, atol=3e-7)


@pytest.mark.exercise("3.1")
def test_softmax_is_stable_for_huge_logits():
    z = minibert.tensor([[1000.0, 1001.0, -1000.0]])
    p = F.softmax(z).numpy()
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(), 1.0)
    assert np.all(np.isfinite(F.log_softmax(z).numpy()))


def test_cross_entropy_matches_the_definition():
    z = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [5.0, 1.0, 0.0]])
    t = np.array([0, 2, -100])
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    expected = -(logp[0, 0] + logp[1, 2]) / 2  # the ignored row counts in neither sum nor mean
    assert np.isclose(F.cross_entropy(minibert.tensor(z), t).item(), expected)


def test_cross_entropy_never_computes_the_ignored_rows():
    # MLM ignores ~85 % of the positions: their scores are not even read (as in PyTorch), so
    # whatever they hold, even inf or NaN, changes neither the loss nor any gradient
    z = np.array([[2.0, 0.5, -1.0], [np.nan, np.inf, 0.0], [0.1, 0.2, 0.3]])
    t = np.array([0, -100, 2])
    zt = minibert.tensor(z, requires_grad=True)
    loss = F.cross_entropy(zt, t)
    loss.backward()
    clean = minibert.tensor(np.where(np.isfinite(z), z, 0.0), requires_grad=True)
    F.cross_entropy(clean, t).backward()
    assert loss.item() == F.cross_entropy(clean, t).item()
    np.testing.assert_array_equal(minibert.to_numpy(zt.grad), minibert.to_numpy(clean.grad))
    assert not np.any(minibert.to_numpy(zt.grad)[1])


def test_cross_entropy_with_nothing_to_predict_is_zero():
    z = minibert.tensor(np.ones((2, 3)), requires_grad=True)
    loss = F.cross_entropy(z, np.array([-100, -100]))
    loss.backward()
    assert loss.item() == 0.0 and not np.any(minibert.to_numpy(z.grad))


def test_cross_entropy_errors():
    z = minibert.tensor(np.ones((2, 3)))
    with pytest.raises(minibert.ShapeError, match="target of shape"):
        F.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(IndexError, match=r"\[0, 3\)"):
        F.cross_entropy(z, np.array([0, 7]))
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(z, np.array([0.0, 1.0]))


def test_layer_norm_shape_error():
    with pytest.raises(minibert.ShapeError, match="layer_norm"):
        F.layer_norm(minibert.tensor(np.ones((2, 4))), minibert.tensor(np.ones(3)),
                     minibert.tensor(np.zeros(3)))


@pytest.mark.exercise("4.3")
def test_dropout_is_seeded_and_off_in_eval():
    x = minibert.tensor(np.ones((50, 50), dtype=np.float32))
    minibert.manual_seed(7)
    a = F.dropout(x, 0.3).numpy()
    minibert.manual_seed(7)
    b = F.dropout(x, 0.3).numpy()
    assert np.array_equal(a, b)
    assert 0.25 < (a == 0).mean() < 0.35
    assert np.isclose(a.mean(), 1.0, atol=0.05)  # inverted dropout keeps the expectation
    assert F.dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        F.dropout(x, 1.0)


# -- properties on random shapes (hypothesis) ----------------------------------------------------

finite = st.floats(-50, 50, allow_nan=False, width=64)
matrices = arrays(np.float64, array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
                  elements=finite)


@pytest.mark.exercise("3.1")
@settings(max_examples=60, deadline=None)
@given(matrices)
def test_softmax_is_a_distribution_and_shift_invariant(a):
    p = F.softmax(minibert.tensor(a)).numpy()
    assert np.all(p >= 0) and np.allclose(p.sum(axis=-1), 1.0)
    assert np.allclose(F.softmax(minibert.tensor(a + 7.5)).numpy(), p, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(matrices)
def test_log_softmax_is_log_of_softmax_and_normalised(a):
    logp = F.log_softmax(minibert.tensor(a)).numpy()
    assert np.all(logp <= 1e-12)
    assert np.allclose(np.exp(logp).sum(axis=-1), 1.0)
    assert np.allclose(np.exp(logp), F.softmax(minibert.tensor(a)).numpy(), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=8),
              elements=st.floats(-50, 50, allow_nan=False, width=64)))
def test_layer_norm_gives_zero_mean_unit_variance(a):
    d = a.shape[-1]
    if np.any(a.std(axis=-1) < 1e-3):  # constant rows have no variance to normalise
        return
    y = F.layer_norm(minibert.tensor(a), minibert.tensor(np.ones(d)),
                     minibert.tensor(np.zeros(d)), eps=1e-12).numpy()
    assert np.allclose(y.mean(axis=-1), 0.0, atol=1e-9)
    assert np.allclose(y.var(axis=-1), 1.0, atol=1e-6)
    # gamma and beta are an affine map applied afterwards
    g, b = np.linspace(0.5, 2, d), np.linspace(-1, 1, d)
    y2 = F.layer_norm(minibert.tensor(a), minibert.tensor(g), minibert.tensor(b)).numpy()
    assert np.allclose(y2, y * g + b, atol=1e-9)
