"""gradcheck itself: it must catch a wrong backward and say where."""

import numpy as np
import pytest

import minibert
from minibert import GradcheckError, gradcheck
from minibert.autograd import accum_grad, op_result


def wrong_square(x):
    """x² with a deliberately wrong backward (forgets the factor 2)."""
    out = op_result(x.data**2, (x,), "wrong_square")
    out._backward = lambda: accum_grad(x, out.grad * x.data)
    return out


def test_gradcheck_accepts_a_correct_backward(rng):
    x = minibert.tensor(rng.standard_normal((3, 2)), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda x: x * x, x)


def test_gradcheck_catches_a_wrong_backward_and_reports_the_worst_element():
    x = minibert.tensor(np.array([[1.0, -4.0], [2.0, 0.5]]), requires_grad=True)
    x = x.astype(np.float64).detach()
    x.requires_grad = True
    with pytest.raises(GradcheckError) as e:
        gradcheck(lambda x: wrong_square(x).sum(), x)
    report = str(e.value)
    assert "element (0, 1)" in report  # |2x − x| is largest where |x| is largest
    assert "analytic" in report and "numeric" in report
    assert gradcheck(lambda x: wrong_square(x).sum(), x, raise_exception=False) is False


def test_gradcheck_rejects_float32_and_inputs_without_grad():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * x, minibert.tensor([1.0], requires_grad=True))
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda x: x * x, minibert.tensor(np.ones(2)))


def test_gradcheck_restores_the_inputs(rng):
    a = rng.standard_normal((2, 3))
    x = minibert.tensor(a.copy(), requires_grad=True)
    gradcheck(lambda x: (x * x).sum(), x)
    assert np.array_equal(x.numpy(), a)


def test_one_op_is_checked_without_the_engine(rng, monkeypatch):
    """A single op on the inputs needs no graph walk: gradcheck calls its backward directly, so
    the backward passes of lessons 2-4 can be checked before the engine (exercises 6.1-6.5)."""
    from minibert import functional as F
    from minibert.autograd import Tensor

    def no_engine(self):
        raise NotImplementedError("Exercise 6.5: the engine is not written yet")

    monkeypatch.setattr(Tensor, "_topological_order", no_engine)
    x = minibert.tensor(rng.standard_normal((2, 3)), requires_grad=True, dtype=np.float64)
    assert gradcheck(lambda x: F.softmax(x), x)
    with pytest.raises(GradcheckError):
        gradcheck(wrong_square, x)
    with pytest.raises(NotImplementedError, match="6.5"):  # two ops: the engine is needed
        gradcheck(lambda x: F.softmax(x) * 2.0, x)


def test_backward_of_one_op_checks_its_arguments(rng):
    from minibert.gradcheck import backward_of_one_op

    x = minibert.tensor(rng.standard_normal(3), requires_grad=True, dtype=np.float64)
    y = x * 3.0
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        backward_of_one_op(y, np.ones(2))
    backward_of_one_op(y, np.ones(3))
    assert x.grad.tolist() == [3.0] * 3
    with pytest.raises(ValueError, match="requires_grad"):
        backward_of_one_op(minibert.tensor([1.0]) * 2.0, np.ones(1))
