"""Optimizers against steps computed by hand (float64 parameters, so the numbers are exact).

The step tests run on every backend (`backend_name`): gradients are made on the active backend
with `dev`, results brought back to the host with `.numpy()` / `to_numpy` before comparing.
"""

import math

import numpy as np
import pytest

from minibert import backend
from minibert.backend import to_numpy
from minibert.nn import LayerNorm, Linear, Module, Parameter
from minibert.optim import (
    SGD,
    AdamW,
    clip_grad_norm,
    global_grad_norm,
    linear_warmup_decay,
    weight_decay_groups,
)


def dev(values):
    """A float64 array on the active backend (where the parameters live)."""
    return backend.xp().asarray(np.asarray(values, dtype=np.float64))


def param(values, grad=None):
    p = Parameter(np.array(values, dtype=np.float64))
    p.grad = None if grad is None else dev(grad)
    return p


# -- SGD ---------------------------------------------------------------------------------------


def test_sgd_plain_step(backend_name):
    p = param([1.0, -2.0], grad=[0.5, 0.25])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.numpy(), [1.0 - 0.05, -2.0 - 0.025], rtol=0, atol=1e-15)


def test_sgd_momentum_two_steps(backend_name):
    p = param([1.0, 2.0], grad=[0.5, -1.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()  # v1 = g1 = [0.5, -1];  p1 = p0 - 0.1 v1 = [0.95, 2.1]
    np.testing.assert_allclose(p.numpy(), [0.95, 2.1], atol=1e-15)
    p.grad = dev([0.1, 0.2])
    opt.step()  # v2 = 0.9 v1 + g2 = [0.55, -0.7];  p2 = p1 - 0.1 v2 = [0.895, 2.17]
    np.testing.assert_allclose(p.numpy(), [0.895, 2.17], atol=1e-14)


def test_sgd_weight_decay_is_l2_in_the_gradient(backend_name):
    p = param([2.0], grad=[0.0])
    SGD([p], lr=0.1, weight_decay=0.5).step()  # g = 0 + 0.5·2 = 1;  p = 2 - 0.1
    np.testing.assert_allclose(p.numpy(), [1.9], atol=1e-15)


# -- AdamW -------------------------------------------------------------------------------------


@pytest.mark.exercise("8.1")
def test_adamw_two_steps_with_bias_correction_and_decoupled_decay(backend_name):
    lr, wd, b1, b2, eps = 0.1, 0.1, 0.9, 0.999, 1e-8
    p = param([1.0, -2.0], grad=[0.5, -0.25])
    opt = AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)

    # Step 1: m̂ = g and v̂ = g² exactly (bias correction), so the Adam step is lr·g/(|g|+ε).
    opt.step()
    g1 = np.array([0.5, -0.25])
    expected = np.array([1.0, -2.0]) * (1 - lr * wd) - lr * g1 / (np.abs(g1) + eps)
    np.testing.assert_allclose(p.numpy(), expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p.numpy(), [0.89, -1.88], atol=1e-8)  # ≈ decay 1%, then ∓0.1

    # Step 2, coordinate 0 written out: m = 0.9·0.05 + 0.1·0.1 = 0.055,
    # v = 0.999·0.00025 + 0.001·0.01 = 0.00025975, m̂ = 0.055/0.19, v̂ = 0.00025975/0.001999.
    p.grad = dev([0.1, 0.3])
    opt.step()
    m_hat0, v_hat0 = 0.055 / 0.19, 0.00025975 / 0.001999
    p0 = expected[0] * (1 - lr * wd) - lr * m_hat0 / (math.sqrt(v_hat0) + eps)
    assert p.numpy()[0] == pytest.approx(p0, abs=1e-14)
    assert p.numpy()[0] == pytest.approx(0.800796, abs=1e-6)
    # coordinate 1: m = 0.9·(-0.025) + 0.1·0.3 = 0.0075, v = 0.999·0.0000625 + 0.001·0.09
    m1, v1 = 0.0075, 0.999 * 0.0000625 + 0.001 * 0.09
    p1 = expected[1] * (1 - lr * wd) - lr * (m1 / 0.19) / (math.sqrt(v1 / 0.001999) + eps)
    assert p.numpy()[1] == pytest.approx(p1, abs=1e-14)
    assert opt.state[0]["step"] == 2


@pytest.mark.exercise("8.1")
def test_adamw_decay_is_decoupled_from_the_gradient(backend_name):
    # With a zero gradient Adam's step is 0 and only the decay acts: θ ← θ(1 − lr·λ).
    p = param([3.0], grad=[0.0])
    AdamW([p], lr=0.01, weight_decay=0.5).step()
    np.testing.assert_allclose(p.numpy(), [3.0 * (1 - 0.005)], atol=1e-15)


class Tiny(Module):
    def __init__(self):
        self.dense = Linear(3, 2)
        self.norm = LayerNorm(2)
        self.scale = Parameter(np.ones(2, dtype=np.float32))  # 1-D: no decay either


def test_weight_decay_groups_exclude_biases_layernorm_and_1d():
    model = Tiny()
    decay, no_decay = weight_decay_groups(model.named_parameters(), 0.01)
    assert decay["names"] == ["dense.W"] and decay["weight_decay"] == 0.01
    assert sorted(no_decay["names"]) == ["dense.b", "norm.beta", "norm.gamma", "scale"]
    assert no_decay["weight_decay"] == 0.0
    model.norm.requires_grad_(False)  # frozen parameters are left out
    _, no_decay = weight_decay_groups(model.named_parameters(), 0.01)
    assert sorted(no_decay["names"]) == ["dense.b", "scale"]


def test_adamw_groups_leave_biases_and_layernorm_undecayed(backend_name):
    model = Tiny()
    for p in model.parameters():
        p.data = p.data.astype(np.float64) + 1.0  # nonzero everywhere, so decay would show
        p.grad = backend.xp().zeros_like(p.data)
    before = model.state_dict()
    AdamW(weight_decay_groups(model.named_parameters(), 0.1), lr=0.1).step()
    after = model.state_dict()
    np.testing.assert_allclose(after["dense.W"], before["dense.W"] * (1 - 0.01), atol=1e-15)
    for name in ("dense.b", "norm.gamma", "norm.beta", "scale"):
        np.testing.assert_array_equal(after[name], before[name])


def test_frozen_and_gradless_parameters_are_skipped(backend_name):
    frozen = param([1.0], grad=[1.0])
    frozen.requires_grad = False
    no_grad = param([2.0])
    live = param([3.0], grad=[1.0])
    for opt in (AdamW([frozen, no_grad, live], lr=0.1), SGD([frozen, no_grad, live], lr=0.1,
                                                            momentum=0.9)):
        opt.step()
        assert frozen.numpy()[0] == 1.0 and no_grad.numpy()[0] == 2.0
        assert list(opt.state) in ([2], [])  # state only for the parameter that moved
    assert live.numpy()[0] < 3.0 - 0.15


def test_zero_grad_clears_gradients():
    p = param([1.0], grad=[1.0])
    opt = SGD([p], lr=0.1)
    opt.zero_grad()
    assert p.grad is None


def test_state_dict_roundtrip_resumes_exactly(backend_name):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((2, 3)) for _ in range(5)]

    def run(opt_a, p, gs):
        for g in gs:
            p.grad = dev(g)
            opt_a.step()

    p_ref = param(np.ones((2, 3)))
    ref = AdamW([p_ref], lr=0.05, weight_decay=0.1)
    run(ref, p_ref, grads)

    p = param(np.ones((2, 3)))
    opt = AdamW([p], lr=0.05, weight_decay=0.1)
    run(opt, p, grads[:3])
    saved = opt.state_dict()
    assert isinstance(saved["state"][0]["m"], np.ndarray) and saved["state"][0]["step"] == 3
    p2 = param(p.numpy())
    opt2 = AdamW([p2], lr=0.05, weight_decay=0.1)
    opt2.load_state_dict(saved)
    run(opt2, p2, grads[3:])
    np.testing.assert_array_equal(p2.numpy(), p_ref.numpy())


def test_load_state_dict_rejects_wrong_shapes(backend_name):
    p = param(np.ones(3), grad=np.ones(3))
    opt = AdamW([p], lr=0.1)
    opt.step()
    other = AdamW([param(np.ones(4))], lr=0.1)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(opt.state_dict())


# -- schedule and clipping ---------------------------------------------------------------------


@pytest.mark.parametrize("step, factor", [(0, 0.0), (5, 0.5), (10, 1.0), (55, 0.5), (91, 0.1),
                                          (100, 0.0), (150, 0.0)])
def test_linear_warmup_decay(step, factor):
    assert linear_warmup_decay(step, warmup_steps=10, total_steps=100) == pytest.approx(factor)


def test_schedule_without_warmup_starts_at_full_rate():
    assert linear_warmup_decay(0, 0, 10) == 1.0
    assert linear_warmup_decay(5, 0, 10) == 0.5


def test_clip_grad_norm_scales_to_max_norm_and_returns_the_norm(backend_name):
    a, b = param([0.0, 0.0], grad=[3.0, 4.0]), param([0.0], grad=[12.0])  # norm √(9+16+144)=13
    norm = clip_grad_norm([a, b], max_norm=6.5)  # on the GPU a 0-d array there: float() reads it
    assert float(norm) == pytest.approx(13.0)
    np.testing.assert_allclose(to_numpy(a.grad), [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(to_numpy(b.grad), [6.0], rtol=1e-6)
    assert float(global_grad_norm([a, b])) == pytest.approx(6.5, rel=1e-6)


def test_clip_grad_norm_leaves_small_and_nonfinite_gradients_alone(backend_name):
    a = param([0.0, 0.0], grad=[0.3, 0.4])
    assert float(clip_grad_norm([a], max_norm=1.0)) == pytest.approx(0.5)
    np.testing.assert_array_equal(to_numpy(a.grad), [0.3, 0.4])
    bad = param([0.0], grad=[np.nan])
    assert math.isnan(clip_grad_norm([a, bad], max_norm=1.0))
    np.testing.assert_array_equal(to_numpy(a.grad), [0.3, 0.4])


def test_adamw_matches_pytorch_over_several_steps(backend_name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) for _ in range(4)]
    p = param(w0.copy())
    opt = AdamW([p], lr=0.01, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    tp = torch.nn.Parameter(torch.tensor(w0.copy()))
    topt = torch.optim.AdamW([tp], lr=0.01, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    for g in grads:
        p.grad = dev(g)
        opt.step()
        tp.grad = torch.tensor(g.copy())
        topt.step()
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-12)


# -- on the GPU: all parameters at once, nothing read back --------------------------------------


def _counted(fn):
    """(launches, syncs) of fn() on the simulated CuPy (tests/cupy_sim.py)."""
    import cupy_sim

    cupy_sim.counts.reset()
    fn()
    return cupy_sim.counts.launches, cupy_sim.counts.syncs


def _params_and_grads(n: int, seed: int = 0):
    """n parameters of assorted shapes (float32, as a model's) and three steps of gradients."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (2, 2, 3), (5,), (1,)] * (n // 5) + [(2, 3)] * (n % 5)
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    return values, grads


def _adamw_run(values, grads, steps=3):
    """Parameters after `steps` AdamW steps on the active backend, two groups as BERT's."""
    xp = backend.xp()
    params = [Parameter(v.copy()) for v in values]  # (on the CPU the update is in place)
    groups = [{"params": params[::2], "weight_decay": 0.1},
              {"params": params[1::2], "weight_decay": 0.0}]
    opt = AdamW(groups, lr=0.01)
    for step in range(steps):
        for p, g in zip(params, grads[step], strict=True):
            p.grad = xp.asarray(g)
        opt.step()
    return params, opt


def test_adamw_on_the_gpu_steps_each_group_at_once_as_one_by_one(gpu):
    values, grads = _params_and_grads(23)
    backend.use_backend("numpy")  # one parameter at a time
    expected = [p.numpy() for p in _adamw_run(values, grads)[0]]
    backend.use_backend("cupy")  # each group's parameters as one flat array
    params, opt = _adamw_run(values, grads)
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-6, atol=1e-7)
    assert all(s["step"] == 3 for s in opt.state.values()) and len(opt.state) == 23
    if gpu == "cupy-sim":  # the number of kernels does not grow with the number of tensors
        xp = backend.xp()
        for p, g in zip(params, grads[0], strict=True):
            p.grad = xp.asarray(g)
        many = _counted(opt.step)
        few_params, few = _adamw_run(values[:4], [g[:4] for g in grads])
        for p, g in zip(few_params, grads[0][:4], strict=True):
            p.grad = xp.asarray(g)
        assert many == _counted(few.step) and many[1] == 0
        assert many[0] <= 12, many  # two groups: a copy of the gradients and the update each


def test_adamw_on_the_gpu_follows_replaced_parameters_and_loaded_state(gpu):
    values, grads = _params_and_grads(7, seed=1)
    backend.use_backend("cupy")
    xp = backend.xp()
    ref, _ = _adamw_run(values, grads)
    params, opt = _adamw_run(values, grads, steps=2)
    saved = opt.state_dict()
    # a model's load_state_dict or .to() gives parameters new arrays: they are the ones moved
    params2 = [Parameter(p.numpy()) for p in params]
    groups = [{"params": params2[::2], "weight_decay": 0.1},
              {"params": params2[1::2], "weight_decay": 0.0}]
    opt2 = AdamW(groups, lr=0.01)
    opt2.load_state_dict(saved)
    for p, g in zip(params2, grads[2], strict=True):
        p.grad = xp.asarray(g)
    opt2.step()
    for p, r in zip(params2, ref, strict=True):
        np.testing.assert_array_equal(p.numpy(), r.numpy())
    fresh = [xp.asarray(np.full(p.shape, 2.0, dtype=np.float32)) for p in params]
    for p, new, g in zip(params, fresh, grads[2], strict=True):
        p.data, p.grad = new, xp.asarray(g)
    opt.step()
    assert all(not np.any(p.numpy() == 2.0) for p in params)  # the new arrays took the step


def test_clipping_on_the_gpu_reads_nothing_back_and_is_a_few_kernels(gpu):
    if gpu != "cupy-sim":
        pytest.skip("counts kernels on the simulated CuPy")
    backend.use_backend("cupy")
    xp = backend.xp()
    for n in (3, 30):
        params = [param(np.zeros(2)) for _ in range(n)]
        for p in params:
            p.grad = xp.asarray(np.array([3.0, 4.0]))  # each 5: the norm is 5·√n
        launches, syncs = _counted(lambda params=params: clip_grad_norm(params, max_norm=1.0))
        assert syncs == 0 and launches <= 8, (launches, syncs)
        assert float(global_grad_norm(params)) == pytest.approx(1.0, rel=1e-6)
        np.testing.assert_allclose(to_numpy(params[0].grad), [3 / 5 / math.sqrt(n),
                                                             4 / 5 / math.sqrt(n)], rtol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(700, 500), (64, 48), (300,)])
def test_adamw_update_runs_on_the_cpu_exactly_as_its_formula(threads, shape):
    """The CPU runs the recorded formula in blocks, in place (backend.elementwise with out=,
    as AdamW.step does): the numbers of the plain whole-array lines, for a parameter of
    several blocks (350,000 numbers: 3), one block, or one row; the gradient is left as it
    was. A second call, with other numbers, runs the same plan. m and v are the same bit for
    bit; θ to within the step's last bits (the plan multiplies m by lr/(1 − β1^t) and v by
    1/(1 − β2^t) where the formula divides and then multiplies: backend._BlockPlan)."""
    import minibert
    from minibert.optim import adamw_update

    rng = np.random.default_rng(3)
    theta, g, m, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    g_before = g.copy()
    previous = minibert.get_num_threads()
    minibert.set_num_threads(threads)
    try:
        for args in [(0.01, 0.9, 0.999, 1e-8, 0.1, 3), (0.003, 0.8, 0.99, 1e-6, 0.0, 4)]:
            expected = adamw_update(theta, g, m, v, *args)
            lr, weight_decay = args[0], args[4]
            step = np.abs(theta * np.float32(1 - lr * weight_decay) - expected[0])  # lr·m̂/(√v̂+ε)
            out = backend.elementwise(adamw_update)(theta, g, m, v, *args, out=(theta, m, v))
            assert out[0] is theta and out[1] is m and out[2] is v
            assert all(a.dtype == np.float32 for a in (theta, m, v))
            # the step's last bits (its four roundings fall on other numbers: m·(lr/(1 − β1^t))
            # for lr·(m/(1 − β1^t))), then θ's own rounding: where θ and the step nearly
            # cancel, θ's few remaining bits are all the step's
            assert np.all(np.abs(theta - expected[0])
                          <= 4 * np.spacing(step) + np.spacing(np.abs(expected[0])))
            np.testing.assert_array_equal(m, expected[1])
            np.testing.assert_array_equal(v, expected[2])
    finally:
        minibert.set_num_threads(previous)
    np.testing.assert_array_equal(g, g_before)


def test_on_the_cpu_adamw_moves_small_parameters_as_one_array(monkeypatch):
    """On the CPU a group's small parameters (biases, LayerNorm's γ and β: fewer than
    optim.SMALL numbers each) are updated as one flat array, in one call of the update formula
    where each would cost ~30 µs of Python; a large one on its own. The numbers are those of
    updating each on its own, bit for bit, step after step."""
    import minibert
    from minibert import optim

    rng = np.random.default_rng(0)
    shapes = [(300, 40), (40,), (7,), (3, 5)]  # 12,000 numbers, then three small ones
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def trained(small):
        monkeypatch.setattr(optim, "SMALL", small)
        params = [Parameter(v.copy()) for v in values]
        opt = minibert.AdamW(params, lr=0.01, weight_decay=0.1)
        calls = []
        real = backend._on_blocks
        monkeypatch.setattr(backend, "_on_blocks", lambda *a: calls.append(1) or real(*a))
        for g in grads:
            for p, gi in zip(params, g, strict=True):
                p.grad = gi.copy()
            opt.step()
        monkeypatch.setattr(backend, "_on_blocks", real)
        return params, len(calls)

    previous = backend.get_backend()
    backend.use_backend("numpy")  # the CPU's path, under pytest --cupy too
    try:
        flat, calls = trained(8192)
        alone, calls_alone = trained(0)
    finally:
        backend.use_backend(previous)
    assert (calls, calls_alone) == (2 * 3, 4 * 3)  # per step: the small ones, the large one
    for p, q in zip(flat, alone, strict=True):
        np.testing.assert_array_equal(p.data, q.data)
    small_bases = {id(p.data.base) for p in flat[1:]}
    assert len(small_bases) == 1 and flat[0].data.base is None  # one flat array; its own
