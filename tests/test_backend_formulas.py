"""How a formula runs (backend.elementwise / backend.rows): the same numbers as its plain lines,
on CPU blocks and threads, and as fused kernels on the (simulated) GPU, with the launches a
fused kernel saves counted."""

import math

import numpy as np
import pytest

import cupy_sim
import minibert
from minibert import backend
from minibert import functional as F
from minibert.backend import exp, row_max, row_mean, row_sum, sqrt


@backend.elementwise
def gelu_like(x, cdf, dy):  # several inputs, numbers inside
    return dy * (cdf + x * exp(-0.5 * x * x) / math.sqrt(2 * math.pi))


@backend.elementwise
def two_outputs(x, gamma):  # a vector broadcast along the rows, two results
    return x * gamma, x + 1


@backend.elementwise
def add_in_place(y, b):
    y += b


@backend.rows
def softmax_rows(x):
    e = exp(x - row_max(x))
    return e / row_sum(e)


@backend.rows
def layer_norm_rows(x, gamma, beta, eps):  # a row value (var) among the results
    mean = row_mean(x)
    var = row_mean((x - mean) ** 2)
    xhat = (x - mean) / sqrt(var + eps)
    return xhat * gamma + beta, xhat, var


@pytest.fixture
def threads():
    before = minibert.get_num_threads()
    yield minibert.set_num_threads
    minibert.set_num_threads(before)


def _args(rng, shape=(300, 7, 96)):  # 201,600 numbers: two blocks of rows and a bit
    x = rng.standard_normal(shape).astype(np.float32)
    return x, rng.random(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n", [1, 3])
def test_on_the_cpu_blocks_give_the_plain_formula(rng, threads, n):
    threads(n)
    x, cdf, dy = _args(rng)
    gamma = rng.standard_normal(x.shape[-1]).astype(np.float32)
    # the plan multiplies by 1/√(2π) where the formula divides by √(2π): that term's last bit
    # may differ (a division by a number, below)
    np.testing.assert_allclose(gelu_like(x, cdf, dy), gelu_like.formula(x, cdf, dy),
                               rtol=1e-6, atol=1e-6)
    for a, b in zip(two_outputs(x, gamma), two_outputs.formula(x, gamma), strict=True):
        np.testing.assert_array_equal(a, b)
    # row sums are BLAS matrix-vector products (backend.row_sum), whose rounding depends on how
    # many rows they get: a block's rows agree with the whole array's to float32's precision
    # (and never depend on the number of threads: the blocks are the same, test_parallel.py)
    for a, b in zip(layer_norm_rows(x, gamma, gamma, 1e-12),
                    layer_norm_rows.formula(x, gamma, gamma, 1e-12), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(softmax_rows(x), softmax_rows.formula(x), rtol=1e-5, atol=1e-7)
    y = x.copy()
    assert add_in_place(y, gamma) is None
    np.testing.assert_array_equal(y, x + gamma)


def counted(fn):
    cupy_sim.counts.reset()
    result = fn()
    return result, cupy_sim.counts.launches, cupy_sim.counts.syncs


@pytest.fixture
def sim():
    """The simulated CuPy as the active backend (the fused paths run its Python bodies)."""
    previous = backend.get_backend()
    cupy_sim.install()
    backend.use_backend("cupy")
    yield backend.xp()
    cupy_sim.uninstall()
    backend.use_backend(previous)


def test_an_elementwise_formula_is_one_kernel_on_the_gpu(rng, sim):
    host = _args(rng, (4, 5, 6))
    out, launches, syncs = counted(lambda: gelu_like(*(sim.asarray(a) for a in host)))
    assert (launches, syncs) == (1, 0)  # unfused: 9 kernels
    np.testing.assert_allclose(out.get(), gelu_like.formula(*host), rtol=1e-6)
    y = sim.asarray(host[0])
    assert counted(lambda: add_in_place(y, sim.asarray(host[1][0, 0])))[1:] == (1, 0)
    np.testing.assert_array_equal(y.get(), host[0] + host[1][0, 0])


def test_a_row_formula_is_one_kernel_per_reduction_and_one_for_the_rest(rng, sim):
    x = rng.standard_normal((4, 5, 6))
    gamma, beta = rng.standard_normal((2, 6))
    y, launches, syncs = counted(lambda: softmax_rows(sim.asarray(x)))
    assert (launches, syncs) == (3, 0)  # max; Σ exp(x − max); exp(x − max) / Σ (unfused: 5)
    np.testing.assert_allclose(y.get(), softmax_rows.formula(x), rtol=1e-12)
    out, launches, syncs = counted(lambda: layer_norm_rows(
        sim.asarray(x), sim.asarray(gamma), sim.asarray(beta), 1e-5))
    assert (launches, syncs) == (3, 0)  # mean; variance; x̂ and y together (unfused: 11)
    for a, b in zip(out, layer_norm_rows.formula(x, gamma, beta, 1e-5), strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a.get(), b, rtol=1e-12, atol=1e-12)


def test_recorded_kernels_are_compiled_once_per_formula_and_constant(rng, sim):
    x = sim.asarray(rng.standard_normal((3, 4)))
    gamma = sim.asarray(np.ones(4))
    layer_norm_rows(x, gamma, gamma, 1e-5)
    before = len(backend._KERNELS)
    for _ in range(3):
        layer_norm_rows(x, gamma, gamma, 1e-5)
    assert len(backend._KERNELS) == before  # compiled once, then reused
    layer_norm_rows(x, gamma, gamma, 1.5e-3)  # another eps: a constant of the last kernel
    assert len(backend._KERNELS) == before + 1
    np.testing.assert_allclose(layer_norm_rows(x, gamma, gamma, 1e-3)[1].get(),
                               layer_norm_rows.formula(x.get(), 1.0, 0.0, 1e-3)[1], rtol=1e-12)


def test_a_formula_may_not_read_values_of_the_function_around_it():
    scale = 2.0
    with pytest.raises(TypeError, match="reads scale .* pass them as arguments"):
        @backend.elementwise
        def scaled(x):
            return x * scale


_SEEN: list = []  # the kinds of x that gelu_like_seen's lines ran on


@backend.elementwise
def gelu_like_seen(x, cdf, dy):
    _SEEN.append(type(x))
    return gelu_like.formula(x, cdf, dy)


@pytest.mark.parametrize("shape,other_shape", [((3, 200, 96), (200, 96)),
                                               ((3, 2, 200, 96), (2, 1, 96))],
                         ids=["rows", "heads"])
def test_on_the_cpu_an_argument_that_broadcasts_other_than_along_rows_gets_the_plain_lines(
        rng, shape, other_shape):
    """An argument that no block of rows can take, such as rows (T, n) for (B, T, n) or each
    attention head's bias (h, 1, d) for (B, h, T, d), broadcasts as NumPy broadcasts it: the
    plain lines run on the whole arrays (here more than PLAN_FROM numbers, which would
    otherwise run by plan)."""
    x = rng.standard_normal(shape).astype(np.float32)
    other = rng.standard_normal(other_shape).astype(np.float32)
    assert x.size >= backend.PLAN_FROM
    got = two_outputs(x, other)
    np.testing.assert_array_equal(got[0], x * other)
    np.testing.assert_array_equal(got[1], x + 1)


@backend.elementwise
def add_two(a, b, u, v):
    return a + u, b + v


def test_into_heads_lays_the_heads_out_as_the_device_reads_them(rng, sim):
    """backend.into_heads: the same numbers on both devices. On NumPy each head is a view of
    (B, T, H) rows, which BLAS reads as it is; on the (simulated) GPU the one fused kernel
    writes each head in C order, which cuBLAS reads without a copy."""
    arrays = [rng.standard_normal((2, 5, 8)) for _ in range(2)]
    vectors = [rng.standard_normal(8) for _ in range(2)]
    wants = [(a + v).reshape(2, 5, 4, 2).transpose(0, 2, 1, 3) for a, v in  # (B, h, T, d)
             zip(arrays, vectors, strict=True)]
    before = cupy_sim.counts.launches
    on_gpu = backend.into_heads(add_two, [sim.asarray(a) for a in arrays],
                                [sim.asarray(v) for v in vectors], num_heads=4)
    assert cupy_sim.counts.launches == before + 1
    on_cpu = backend.into_heads(add_two, arrays, vectors, num_heads=4)
    for cpu, gpu, want in zip(on_cpu, on_gpu, wants, strict=True):
        np.testing.assert_array_equal(cpu, want)
        np.testing.assert_array_equal(gpu.get(), want)
        assert cpu.transpose(0, 2, 1, 3).flags.c_contiguous  # laid out as the token rows
        assert gpu.flags.c_contiguous  # each head's rows one after another


@pytest.mark.parametrize("T,in_place", [(5, False), (1024, True)])
def test_on_the_cpu_into_heads_writes_into_the_arrays_from_plan_from_numbers(rng, T, in_place):
    """From PLAN_FROM numbers on, the formula writes into the (B, T, H) arrays given up to
    it (no new activation-sized arrays); below, its plain lines' new arrays are faster."""
    arrays = [rng.standard_normal((2, T, 16)).astype(np.float32) for _ in range(2)]
    assert (arrays[0].size >= backend.PLAN_FROM) == in_place
    vectors = [rng.standard_normal(16).astype(np.float32) for _ in range(2)]
    wants = [a + v for a, v in zip(arrays, vectors, strict=True)]
    heads = backend.into_heads(add_two, arrays, vectors, num_heads=4)
    for head, a, want in zip(heads, arrays, wants, strict=True):
        np.testing.assert_array_equal(head.transpose(0, 2, 1, 3).reshape(want.shape), want)
        assert (head.base is a) == in_place


def _scale_runner():  # as an op makes its formula: a new function object on every call
    @backend.elementwise
    def scale(x, c):
        return x * c

    return scale


def _runner_with_default(k):
    @backend.elementwise
    def times_k(x, k=k):  # k is a default value of this function object
        return x * k

    return times_k


def _row_runner(k):
    @backend.rows
    def times_k(x):  # reads k from the function around it (rows allows it on the CPU)
        return x * k

    return times_k


def test_a_formula_made_again_by_its_op_reuses_the_runner_made_the_first_time(rng):
    """An op that defines its formula inside itself decorates a new function object on every
    call; one with the same code, defaults and module gets the runner made for the first, and
    computes the same. One that reads values of the function around it, or has other defaults,
    gets its own: those values may differ."""
    x = rng.standard_normal((4, 5)).astype(np.float32)
    first, again = _scale_runner(), _scale_runner()
    assert again is first
    np.testing.assert_array_equal(again(x, 3.0), x * 3.0)
    two, three = _runner_with_default(2.0), _runner_with_default(3.0)
    assert two is not three and _runner_with_default(3.0) is three
    np.testing.assert_array_equal(three(x), x * 3.0)
    np.testing.assert_array_equal(two(x), x * 2.0)
    two, three = _row_runner(2.0), _row_runner(3.0)
    assert two is not three
    np.testing.assert_array_equal(three(x), x * 3.0)
    np.testing.assert_array_equal(two(x), x * 2.0)


@pytest.mark.parametrize("rows,planned", [(8, False), (40, True)],
                         ids=["a few rows: plain lines", "one block of many numbers: plan"])
def test_on_the_cpu_a_block_of_at_least_plan_from_numbers_runs_by_plan(rng, rows, planned):
    """A formula on fewer than backend.PLAN_FROM numbers runs as its plain lines (a plan's
    fixed cost is more than it saves there); from PLAN_FROM numbers on, a single block runs by
    its plan too, in place in a few buffers (GELU over one sentence of MiniLM's feed-forward,
    32 x 1536). Both give the formula's numbers."""
    n = 1024
    assert (rows * n >= backend.PLAN_FROM) == planned and rows * n <= minibert.parallel.BLOCK
    x = rng.standard_normal((rows, n)).astype(np.float32)
    cdf, dy = rng.random((rows, n)).astype(np.float32), rng.standard_normal((rows, n))
    dy = dy.astype(np.float32)
    _SEEN.clear()
    got = gelu_like_seen(x, cdf, dy)
    np.testing.assert_allclose(got, gelu_like.formula(x, cdf, dy), rtol=1e-6, atol=1e-7)
    ran_its_lines = np.ndarray in _SEEN  # (a plan runs them once, on stand-ins, to record)
    assert ran_its_lines != planned


@pytest.mark.parametrize("op,launches", [
    (lambda x: F.gelu(x), (1, 1)),  # forward x·Φ(x) and Φ(x); backward
    # GELU(x + b): u = x + b inside both kernels (not a kernel of its own); + b's gradient
    (lambda x: F.gelu(x, bias=minibert.tensor(np.ones(6), requires_grad=True)), (1, 2)),
    (lambda x: F.softmax(x), (3, 2)),
    (lambda x: F.log_softmax(x), (3, 2)),
    (lambda x: F.layer_norm(x, minibert.tensor(np.ones(6)), minibert.tensor(np.zeros(6))),
     (3, 3)),
    (lambda x: F.dropout(x, 0.3), (3, 1)),  # random numbers, >= p, the mask; the mask again
    # three products and their biases as the heads are cut; backward (of one head): joined
    # again, then dx, dW (products) and db (a sum)
    (lambda x: F.attention_heads(
        x, *(minibert.tensor(np.eye(6), requires_grad=True) for _ in range(3)),
        *(minibert.tensor(np.ones(6), requires_grad=True) for _ in range(3)),
        num_heads=2)[2], (3 + 1, 1 + 3)),
])
def test_each_op_launches_what_its_fused_formulas_say_and_never_syncs(rng, sim, op, launches):
    x = minibert.tensor(rng.standard_normal((4, 5, 6)), requires_grad=True)
    out, forward, syncs = counted(lambda: op(x))
    dy = sim.asarray(rng.standard_normal(out.shape))
    _, backward, syncs_back = counted(lambda: out.backward(dy))
    # layer_norm's backward also sums dy·x̂ and dy over the rows for gamma and beta (+2)
    assert (forward, backward - (2 if backward == 5 else 0)) == launches
    assert syncs == syncs_back == 0


def test_embedding_and_cross_entropy_need_no_sync_on_the_gpu(rng, sim):
    W = minibert.tensor(rng.standard_normal((10, 4)), requires_grad=True)
    ids = sim.asarray(np.array([[1, 1, 5], [0, 9, 1]]))  # on the device already: not read back
    M = rng.standard_normal((4, 3))
    z = F.embedding(W, ids) @ minibert.tensor(M)
    target = sim.asarray(np.array([[0, -100, 2], [1, 1, -100]]))
    loss, _, syncs = counted(lambda: F.cross_entropy(z, target))
    _, _, syncs_back = counted(loss.backward)
    assert syncs == syncs_back == 0
    # and the same numbers as on the CPU, where only the counted rows are computed
    backend.use_backend("numpy")
    W_cpu = minibert.tensor(W.numpy(), requires_grad=True)
    z_cpu = F.embedding(W_cpu, ids.get()) @ minibert.tensor(M)
    loss_cpu = F.cross_entropy(z_cpu, target.get())
    loss_cpu.backward()
    np.testing.assert_allclose(loss.item(), loss_cpu.item(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(W.grad), W_cpu.grad, rtol=1e-12, atol=1e-15)


def test_the_model_checks_ids_and_labels_on_the_host_before_they_go_to_the_gpu(sim):
    from minibert.config import BertConfig
    from minibert.model import BertForTokenClassification

    config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=8, num_labels=3)
    model = BertForTokenClassification(config).to("gpu")
    ids, labels = np.array([[1, 2, 3]]), np.array([[0, -100, 2]])
    for bad_ids in (np.array([[1, 20, 3]]), np.array([[-1, 2, 3]])):
        with pytest.raises(IndexError, match=r"input_ids: ids must lie in \[0, 20\)"):
            model(bad_ids)
    with pytest.raises(IndexError, match=r"token_type_ids: ids must lie in \[0, 2\)"):
        model(ids, token_type_ids=np.array([[0, 2, 0]]))
    with pytest.raises(IndexError, match=r"target ids must be in \[0, 3\)"):
        model(ids, labels=np.array([[0, 3, -100]]))
    cupy_sim.counts.reset()
    model(sim.asarray(ids), labels=sim.asarray(labels)).loss.backward()  # on the device: no
    assert cupy_sim.counts.syncs == 0  # check, no wait


def test_on_the_cpu_a_formula_run_again_reads_the_new_arrays(rng):
    # The steps of a formula are worked out once per formula and shapes; the arrays that are not
    # cut into blocks (gamma, beta: the same for every row) must still be this call's, not the
    # first call's (each layer of a model has its own gamma)
    x, _, _ = _args(rng)
    for _ in range(2):
        gamma, beta = (rng.standard_normal(x.shape[-1]).astype(np.float32) for _ in range(2))
        np.testing.assert_array_equal(two_outputs(x, gamma)[0], x * gamma)
        for a, b in zip(layer_norm_rows(x, gamma, beta, 1e-12),
                        layer_norm_rows.formula(x, gamma, beta, 1e-12), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("on_gpu", [False, True], ids=["numpy", "cupy-sim"])
def test_running_a_formula_leaves_no_reference_cycle(rng, on_gpu, request):
    """The arrays a formula read are freed when it returns, not when the garbage collector
    next runs: recording and running it make no reference cycle (a closure that called itself
    did, and with many batches the arrays piled up)."""
    import gc

    xp = request.getfixturevalue("sim") if on_gpu else np
    x = xp.asarray(rng.standard_normal((4, 5, 6)))
    gamma, beta = (xp.asarray(v) for v in rng.standard_normal((2, 6)))
    softmax_rows(x), layer_norm_rows(x, gamma, beta, 1e-5)  # compiled and cached first
    gc.collect()
    gc.disable()
    try:
        softmax_rows(x), layer_norm_rows(x, gamma, beta, 1e-5)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cycles = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cycles == [], f"{len(cycles)} objects in reference cycles"


def test_on_the_cpu_a_formula_is_recorded_once_for_all_its_numbers(rng, monkeypatch):
    """The numbers are inputs of the plan, like the arrays: another eps (or AdamW's next step
    t and learning rate) runs the plan made at the first call, with this call's numbers, and
    records nothing."""
    x, _, _ = _args(rng)
    gamma, beta = (rng.standard_normal(x.shape[-1]).astype(np.float32) for _ in range(2))
    layer_norm_rows(x, gamma, beta, 1e-12)
    plans, recorded = len(backend._PLANS), len(backend._RECORDED)
    calls = []
    monkeypatch.setattr(backend, "_record", lambda *a: calls.append(a))
    for eps in (1e-5, 0.5, 3.0):
        for a, b in zip(layer_norm_rows(x, gamma, beta, eps),
                        layer_norm_rows.formula(x, gamma, beta, eps), strict=True):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
    assert calls == [] and (len(backend._PLANS), len(backend._RECORDED)) == (plans, recorded)


@backend.elementwise
def over_numbers(x, c, t):  # an array over a number argument, numbers alone, a constant
    return x / c, x / (1 - 0.9**t) / 4


@pytest.mark.parametrize("shape", [(300, 7, 96), (5, 3)], ids=["blocks", "one block"])
def test_on_the_cpu_a_division_by_a_number_is_a_multiplication_by_its_reciprocal(rng, shape):
    """x / c runs as x · (1/c), the reciprocal taken once per block (a division costs 2-3
    multiplications per number): the plain formula's numbers to within the last bit, in the
    array's dtype; c = 0 gives ±inf and nan where NumPy's division does. An integer array is
    divided as it is."""
    x, _, _ = _args(rng, shape)
    for c in (3.0, 7, -0.25):
        for got, want in zip(over_numbers(x, c, 5), over_numbers.formula(x, c, 5), strict=True):
            assert got.dtype == want.dtype == np.float32
            np.testing.assert_array_max_ulp(got, want, maxulp=2)
    plans = [entry.plan for key, entry in backend._RECORDED.items()
             if key[0] is over_numbers.formula.__code__ and entry.plan is not None]
    if x.size >= backend.PLAN_FROM:  # (a few rows of new arrays run the plain lines)
        assert plans and all(fn is not np.divide for plan in plans for fn, *_ in plan.steps)
        # x·(1/c), and x·(1/(1 − 0.9^t))·¼ as x times one number: 2 passes over the block
        assert sum(fn is np.multiply for fn, *_ in plans[0].steps) == 2
    first = (0,) * x.ndim
    x[first] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in (0.0, -0.0):
            got, want = over_numbers(x, c, 5)[0], over_numbers.formula(x, c, 5)[0]
            assert np.isinf(got).sum() == x.size - 1 and np.isnan(got[first])
            np.testing.assert_array_equal(got, want)  # the same infinities (and nan)
    ints = rng.integers(-50, 50, shape)
    for got, want in zip(over_numbers(ints, 3, 5), over_numbers.formula(ints, 3, 5), strict=True):
        np.testing.assert_array_equal(got, want)


@backend.elementwise
def scaled_twice(x, c):  # x·c is a result itself; then a number times (x times a number)
    y = x * c
    return y, 2 * y, 3 * (x * c)


def test_on_the_cpu_a_number_times_an_array_times_a_number_is_one_multiplication(rng):
    """3·(x·c) runs as x·(3c), one pass over the block instead of two (AdamW's lr·m̂ with
    m̂ = m/(1 − β1^t)), to within the last bits (3·c is rounded once, in float32, not c and
    then the product). A product that is a result itself, or that another step reads too, is
    kept: 2·y is then the plain lines' number, bit for bit."""
    x, _, _ = _args(rng)
    got, want = scaled_twice(x, 0.7), scaled_twice.formula(x, 0.7)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_max_ulp(got[2], want[2], maxulp=2)
    (plan,) = {entry.plan for key, entry in backend._RECORDED.items()
               if key[0] is scaled_twice.formula.__code__}
    assert sum(fn is np.multiply for fn, *_ in plan.steps) == 3  # x·c, 2·y, x·(3c)


@backend.elementwise
def crossed(a, b):  # each result goes where the other argument was
    return b * 2, a + 1


@backend.elementwise
def scaled_by_root(x, t):  # a number used by plain Python: recorded as its value
    return x * math.sqrt(t)


@pytest.mark.parametrize("n", [1, 2])
def test_on_the_cpu_out_takes_the_results_even_where_they_are_the_arguments(rng, threads, n):
    threads(n)
    x, y, _ = _args(rng)
    a, b = x.copy(), y.copy()
    assert crossed(a, b, out=(a, b)) == (a, b)  # a is read after b * 2 is computed
    np.testing.assert_array_equal(a, y * 2)
    np.testing.assert_array_equal(b, x + 1)
    a, b = x.copy(), y.copy()
    c = np.empty_like(a)
    crossed(a[::-1], b, out=(c, a))  # an input overlapping an output: through new arrays
    np.testing.assert_array_equal(c, y * 2)
    np.testing.assert_array_equal(a, x[::-1] + 1)
    for t in (2.0, 9.0):  # math.sqrt(t) cannot take a stand-in: each t is its own plan
        np.testing.assert_array_equal(scaled_by_root(x, t), x * math.sqrt(t))
    with pytest.raises(ValueError, match="one array per result"):
        crossed(x, y, out=(np.empty_like(x),))
    kept = x.copy()
    with pytest.raises(ValueError, match="one array per result"):  # no plan: its plain lines
        scaled_by_root(x, 2.0, out=(kept, np.empty_like(x)))
    np.testing.assert_array_equal(kept, x)  # nothing written


@backend.elementwise
def halved_plus(x, c):
    return x * 0.5 + c


@pytest.mark.parametrize("n", [1, 2])
def test_together_runs_the_collected_formulas_at_its_end_as_one_after_another(rng, threads, n):
    """Inside backend.together() the formulas written into `out=` arrays wait for its end and
    then run on the threads together (on one thread: at once): the same numbers as one after
    another, and an array
    that a formula writes is read by a later one only after it was written (the same
    parameter given twice to an optimizer updates it twice)."""
    threads(n)
    arrays = [rng.standard_normal(shape).astype(np.float32)
              for shape in [(300, 700), (50, 40), (64,), (3, 5)]]
    expected = [halved_plus.formula(halved_plus.formula(a, 1.0), 2.0) for a in arrays]
    original = arrays[0].copy()
    with backend.together():
        for a in arrays:
            halved_plus(a, 1.0, out=(a,))
        first = arrays[0].copy()
        for a in arrays:
            halved_plus(a, 2.0, out=(a,))  # reads what the first round writes
    for a, want in zip(arrays, expected, strict=True):
        np.testing.assert_array_equal(a, want)
    # on several threads it waited for the end of the block (on one, nothing waits)
    assert np.array_equal(first, original) == (n > 1)
