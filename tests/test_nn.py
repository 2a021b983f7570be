"""Modules: parameter discovery, state dicts, modes, freezing, dtype, and the basic layers."""

import numpy as np
import pytest

import minibert
from minibert import Tensor, backend, gradcheck
from minibert.nn import (
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    Module,
    Parameter,
    StateDictError,
)


class Tied(Module):
    """Two layers in a list plus an embedding whose table is reused (tied) by a second one."""

    def __init__(self):
        self.emb = Embedding(5, 3)
        self.blocks = [Linear(3, 4), Linear(4, 3)]
        self.out = Embedding(5, 3)
        self.out.weight = self.emb.weight  # tied: one parameter, two places
        self.norm = LayerNorm(3)
        self.drop = Dropout(0.5)

    def forward(self, ids):
        x = self.emb(ids)
        for block in self.blocks:
            x = block(x)
        return self.drop(self.norm(x))


def test_named_parameters_lists_and_tied_weights():
    minibert.manual_seed(0)
    m = Tied()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["emb.weight", "blocks.0.W", "blocks.0.b", "blocks.1.W", "blocks.1.b",
                     "norm.gamma", "norm.beta"]
    assert m.num_parameters() == 15 + 12 + 4 + 12 + 3 + 3 + 3


def test_state_dict_round_trip_and_errors():
    minibert.manual_seed(0)
    a, b = Tied(), Tied()
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["blocks.0.W"][:] = 7.0  # a copy: the model is untouched
    assert not np.all(a.blocks[0].W.numpy() == 7.0)
    b.load_state_dict(a.state_dict())
    for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    with pytest.raises(StateDictError, match="missing keys"):
        b.load_state_dict({"emb.weight": state["emb.weight"]})
    missing, unexpected = b.load_state_dict({"emb.weight": state["emb.weight"], "x": 1},
                                            strict=False)
    assert "norm.gamma" in missing and unexpected == ["x"]
    with pytest.raises(StateDictError, match="shape"):
        b.load_state_dict({**state, "norm.beta": np.zeros(4, np.float32)})


def test_modes_freezing_and_dtype():
    m = Tied()
    assert m.training and m.drop.training
    m.eval()
    assert not m.drop.training and not m.blocks[1].training
    ids = np.array([[0, 1, 4]])
    m(ids).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.blocks[0].requires_grad_(False)
    m(ids).sum().backward()
    assert m.blocks[0].W.grad is None and m.blocks[1].W.grad is not None
    m.to(np.float64)
    assert all(p.dtype == np.float64 for p in m.parameters()) and m.xp is backend.xp()
    assert m(ids).dtype == np.float64


def test_evaluating_switches_dropout_off_and_restores_every_mode():
    minibert.manual_seed(0)
    m = Tied().train()
    m.blocks[0].eval()  # a part kept in eval mode on purpose (as a frozen encoder is)
    ids = np.array([[0, 1, 4]])
    with m.evaluating() as same:
        assert same is m and not any(sub.training for _, sub in m.named_modules())
        np.testing.assert_array_equal(m(ids).numpy(), m(ids).numpy())  # no dropout
    assert m.training and m.drop.training and not m.blocks[0].training
    with pytest.raises(RuntimeError), m.evaluating():
        raise RuntimeError("inside")
    assert m.training and m.drop.training and not m.blocks[0].training


def test_layers_compute_what_they_say():
    minibert.manual_seed(0)
    lin = Linear(3, 2)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(lin(Tensor(x)).numpy(), x @ lin.W.numpy() + lin.b.numpy(),
                               rtol=1e-6)
    ln = LayerNorm(3, eps=1e-5)
    y = ln(Tensor(x)).numpy()
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-6)
    np.testing.assert_allclose(y.std(-1), 1, atol=1e-3)
    emb = Embedding(5, 2)
    np.testing.assert_array_equal(emb(np.array([[4, 0]])).numpy()[0], emb.weight.numpy()[[4, 0]])
    assert isinstance(lin.W, Parameter) and lin.W.requires_grad
    with pytest.raises(ValueError):
        Dropout(1.0)


def test_gradcheck_layers():
    minibert.manual_seed(0)
    lin, ln = Linear(3, 2).to(np.float64), LayerNorm(3).to(np.float64)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    assert gradcheck(lambda x, *p: lin(ln(x)), x, *lin.parameters(), *ln.parameters())
