"""Autograd-lite: every op's backward against finite differences, and the engine's rules."""

import numpy as np
import pytest

import minibert
from minibert import Tensor, gradcheck, no_grad
from minibert.autograd import ShapeError
from minibert.gradcheck import backward_of_one_op


def T(rng, *shape, positive=False):
    """A float64 leaf tensor that requires grad (float64 keeps finite differences accurate)."""
    a = rng.standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    return minibert.tensor(a, requires_grad=True, dtype=np.float64)


# -- each op, checked by gradcheck (with broadcasting where the op broadcasts) ------------------

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (2, 3, 4)), ((1, 4), (3, 1))]


@pytest.mark.parametrize(  # add, sub and div check unbroadcast (6.1); mul its backward (6.2)
    "op", [pytest.param(op, marks=pytest.mark.exercise("6.2" if op == "mul" else "6.1"))
           for op in BINARY]
)
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_ops_with_broadcasting(op, shapes, rng, backend_name):
    a, b = T(rng, *shapes[0]), T(rng, *shapes[1], positive=(op == "div"))
    assert gradcheck(BINARY[op], a, b)
    out = BINARY[op](a, b)
    a.grad = b.grad = None
    backward_of_one_op(out, np.ones(out.shape))  # this op alone: the engine is exercise 6.5
    assert a.grad.shape == a.shape and b.grad.shape == b.shape  # reduced back to each input


@pytest.mark.exercise("6.1")
def test_unbroadcast_sums_over_the_broadcast_axes():
    from minibert.autograd import unbroadcast

    g = np.ones((2, 3, 4))
    assert unbroadcast(g, (2, 3, 4)) is g
    assert unbroadcast(g, (4,)).tolist() == [6.0] * 4
    assert unbroadcast(g, (3, 1)).tolist() == [[8.0]] * 3
    assert unbroadcast(g, (1, 1, 4)).shape == (1, 1, 4)


@pytest.mark.exercise("6.5")  # a chain of ops: the engine walks it
def test_ops_with_python_numbers_on_either_side(rng):
    x = T(rng, 3)
    assert gradcheck(lambda x: 2.0 * x - 1.0 + 3.0 / (x * x + 1.0) - x / 4.0, x)


UNARY = {
    "neg": (lambda x: -x, False),
    "pow": (lambda x: x**3, False),
    "pow_fraction": (lambda x: x**0.5, True),
    "exp": (lambda x: x.exp(), False),
    "log": (lambda x: x.log(), True),
    "sqrt": (lambda x: x.sqrt(), True),
    "tanh": (lambda x: x.tanh(), False),
    "relu": (lambda x: x.relu(), False),
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops(name, rng, backend_name):
    fn, positive = UNARY[name]
    assert gradcheck(fn, T(rng, 2, 3, positive=positive))


@pytest.mark.parametrize(
    "a_shape,b_shape",
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (3, 4, 2))],
    ids=str,
)
@pytest.mark.exercise("6.3")
def test_matmul_batched_and_broadcasting(a_shape, b_shape, rng, backend_name):
    assert gradcheck(lambda a, b: a @ b, T(rng, *a_shape), T(rng, *b_shape))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(
    "reduction",
    [pytest.param("sum", marks=pytest.mark.exercise("6.4")),
     "mean", "max"],  # mean is sum times 1/n: two ops, which the engine (6.5) chains
)
def test_reductions(reduction, axis, keepdims, rng, backend_name):
    x = T(rng, 2, 3, 4)
    assert gradcheck(lambda x: getattr(x, reduction)(axis=axis, keepdims=keepdims), x)


def test_max_shares_gradient_between_ties():
    x = minibert.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    assert x.grad.tolist() == [[0.0, 0.5, 0.5]]


def test_shape_ops(rng, backend_name):
    x = T(rng, 2, 3, 4)
    assert gradcheck(lambda x: x.reshape(6, 4), x)
    assert gradcheck(lambda x: x.reshape((4, -1)), x)
    assert gradcheck(lambda x: x.transpose(2, 0, 1), x)
    assert gradcheck(lambda x: x.swapaxes(-1, -2), x)
    assert gradcheck(lambda x: x.T, x)


def test_indexing_slices_and_integer_arrays(rng, backend_name):
    x = T(rng, 5, 3)
    assert gradcheck(lambda x: x[1:4, ::2], x)
    assert gradcheck(lambda x: x[:, 0], x)
    assert gradcheck(lambda x: x[np.array([0, 2, 2, 4, 2])], x)  # repeated rows add up
    x.grad = None
    x[np.array([2, 2, 2])].sum().backward()
    assert np.allclose(minibert.to_numpy(x.grad)[2], 3.0)


def test_concatenate_where_masked_fill(rng, backend_name):
    a, b = T(rng, 2, 3), T(rng, 2, 2)
    assert gradcheck(lambda a, b: minibert.concatenate([a, b], axis=1), a, b)
    cond = np.array([True, False, True])
    c = T(rng, 3)
    assert gradcheck(lambda a, c: minibert.where(cond, a, c), a, c)
    mask = np.array([[True, False, False], [False, False, True]])
    assert gradcheck(lambda a: minibert.masked_fill(a, mask, -3.0), a)
    filled = minibert.masked_fill(a, mask, -5.0)
    assert filled.numpy()[0, 0] == -5.0 and filled.numpy()[1, 1] == a.numpy()[1, 1]


# -- the engine's rules -----------------------------------------------------------------------


@pytest.mark.exercise("6.5")
def test_gradients_accumulate_when_a_tensor_is_used_twice():
    x = minibert.tensor([2.0, -1.0], requires_grad=True)
    y = x * x + x  # x feeds two ops: dy/dx = 2x + 1
    y.sum().backward()
    assert x.grad.tolist() == [5.0, -1.0]


def test_leaf_gradients_accumulate_across_backward_calls_until_zeroed():
    x = minibert.tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]
    x.grad = None
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


@pytest.mark.exercise("6.5")
def test_intermediate_gradients_are_fresh_each_pass():
    x = minibert.tensor([1.0], requires_grad=True)
    h = x * 2.0
    (h * h).sum().backward(retain_graph=True)
    first = h.grad.copy()
    (h * h).sum().backward()
    assert h.grad.tolist() == first.tolist() == [4.0]
    assert x.grad.tolist() == [16.0]  # the leaf accumulated: 8 + 8


@pytest.mark.exercise("6.5")
def test_deep_graph_does_not_hit_the_recursion_limit():
    x = minibert.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 0.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]


def test_no_grad_records_nothing():
    x = minibert.tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = (x * x).sum()
    assert not y.requires_grad and y._parents == ()
    assert minibert.autograd.is_grad_enabled()


@pytest.mark.parametrize("inside_no_grad", [True, False])
def test_an_output_without_gradient_keeps_nothing_alive(inside_no_grad):
    """No closure, no parents: a dead activation is freed at once, not by a later gc pass."""
    import contextlib
    import gc
    import weakref

    import minibert.functional as F

    # Parameters inside no_grad, or (outside) inputs that need no grad: both record nothing.
    x = minibert.tensor(np.ones((4, 8), dtype=np.float32), requires_grad=inside_no_grad)
    W = minibert.tensor(np.ones((8, 8), dtype=np.float32), requires_grad=inside_no_grad)
    gc.disable()  # only reference counting may free it: a reference cycle would survive
    try:
        with no_grad() if inside_no_grad else contextlib.nullcontext():
            h = F.gelu(F.linear(x, W))
            y = F.softmax(h * 2.0 + 1.0)
            dead = weakref.ref(h)
            assert h._backward is None and h._parents == ()
            assert y._backward is None and y._parents == () and not y.requires_grad
            del h
            assert dead() is None
    finally:
        gc.enable()


def test_backward_frees_each_intermediate_once_its_gradient_has_passed():
    """As in PyTorch: during the pass, an intermediate nobody refers to is freed with its data
    and .grad as soon as its backward has run; one the caller kept keeps its .grad."""
    import gc
    import weakref

    from minibert.autograd import accum_grad, op_result

    x = minibert.tensor(np.ones((2, 3)), requires_grad=True)
    alive = {}

    def probe(t):  # an identity op whose backward records whether `b` still exists
        out = op_result(t.data.copy(), (t,), "probe")

        def _backward():
            alive["b"] = b_ref() is not None
            accum_grad(t, out.grad)

        out._backward = _backward
        return out

    gc.disable()  # only reference counting may free it
    try:
        kept = x * 2.0
        b = probe(kept) * 3.0  # probe's backward runs after b's
        b_ref = weakref.ref(b)
        loss = b.sum()
        del b
        loss.backward()
    finally:
        gc.enable()
    assert alive == {"b": False} and b_ref() is None
    assert kept.grad.tolist() == [[3.0] * 3] * 2 and x.grad.tolist() == [[6.0] * 3] * 2


def test_detach_cuts_the_graph():
    x = minibert.tensor([3.0], requires_grad=True)
    y = x * x.detach()  # the detached copy acts as a constant
    y.sum().backward()
    assert x.grad.tolist() == [3.0]


# -- dtypes ------------------------------------------------------------------------------------


def test_default_dtype_is_float32_and_arrays_keep_theirs():
    assert minibert.tensor([1.0, 2.0]).dtype == np.float32
    assert minibert.tensor(1.5).dtype == np.float32
    assert minibert.tensor(np.zeros(2)).dtype == np.float64
    assert minibert.tensor([1, 2]).dtype.kind == "i"
    x = minibert.tensor([1.0, 2.0], requires_grad=True)
    assert (x * 0.5 + 1).dtype == np.float32  # Python numbers do not upcast
    assert x.astype(np.float64).dtype == np.float64


def test_integer_tensors_never_get_gradients():
    with pytest.raises(TypeError, match="floating-point"):
        minibert.tensor([1, 2], requires_grad=True)
    ids = minibert.tensor([1, 2])
    x = minibert.tensor([0.5, 0.5], requires_grad=True)
    (x * ids).sum().backward()
    assert ids.grad is None and x.grad.tolist() == [1.0, 2.0]


# -- clear errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_incompatible_shapes_name_the_op_and_both_shapes(op):
    a, b = minibert.tensor(np.ones((2, 3))), minibert.tensor(np.ones((4,)))
    with pytest.raises(ShapeError, match=rf"{op}: shapes \(2, 3\) and \(4,\)"):
        BINARY[op](a, b)


def test_matmul_shape_errors_are_clear():
    a, b = minibert.tensor(np.ones((2, 3))), minibert.tensor(np.ones((4, 5)))
    with pytest.raises(ShapeError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b
    with pytest.raises(ShapeError, match="matmul"):
        minibert.tensor(np.ones(3)) @ minibert.tensor(np.ones(3))
    with pytest.raises(ShapeError, match="reshape: cannot reshape"):
        a.reshape(4, 2)


def test_backward_on_non_scalar_needs_a_gradient():
    x = minibert.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="needs a scalar"):
        (x * 2.0).backward()
    (x * 2.0).backward(np.ones(2, dtype=np.float32))
    assert x.grad.tolist() == [2.0, 2.0]


def test_backward_on_tensor_without_grad_is_clear():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (minibert.tensor([1.0]) * 2.0).sum().backward()


def test_repr_is_informative():
    x = minibert.tensor(np.ones((2, 3)), requires_grad=True)
    assert "shape=(2, 3)" in repr(x) and "requires_grad=True" in repr(x)
    assert "op=mul" in repr(x * 2.0)
    assert isinstance(x, Tensor)
