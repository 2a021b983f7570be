"""How a sequence classifier summarises a text (config.pooling: "cls" or "mean"), what a frozen
encoder leaves trainable, and what transformers makes of a mean-pooled folder."""

import json
import warnings

import numpy as np
import pytest

import minibert
from minibert import no_grad
from minibert.cli import main
from minibert.config import BertConfig
from minibert.data import LabelledData
from minibert.datasets import support_tickets_dir
from minibert.model import BertForSequenceClassification, BertForTokenClassification, mean_pool
from minibert.tokenizer import Tokenizer
from minibert.train import _freeze_encoder, finetune


def tiny(pooling="cls", **kw):
    minibert.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, pooling=pooling, num_labels=3, **kw))


def test_pooling_is_a_config_field_saved_in_config_json(tmp_path):
    assert BertConfig().pooling == "cls"
    with pytest.raises(ValueError, match="pooling must be one of"):
        BertConfig(pooling="max")
    model = tiny("mean")
    with pytest.warns(UserWarning, match="transformers' BertForSequenceClassification ignores"):
        model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["pooling"] == "mean"
    again = BertForSequenceClassification.from_pretrained(tmp_path)
    assert again.config.pooling == "mean"
    ids = np.array([[2, 7, 8, 9, 3]])
    with no_grad():
        np.testing.assert_array_equal(model.eval()(ids).logits.numpy(), again(ids).logits.numpy())


def test_mean_pooling_averages_the_real_tokens_only():
    model = tiny("mean").eval()
    ids = np.array([[2, 7, 8, 9, 3, 0, 0], [2, 11, 3, 0, 0, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    with no_grad():
        logits = model(ids, mask).logits.numpy()
        hidden = model.bert(ids, mask).last_hidden_state
        by_hand = model.classifier(mean_pool(hidden, mask)).numpy()
        # the same text without padding gives the same logits: padding does not count
        alone = model(ids[1:, :3]).logits.numpy()
    np.testing.assert_allclose(logits, by_hand, rtol=1e-6)
    np.testing.assert_allclose(logits[1:], alone, rtol=1e-5, atol=1e-6)
    h = hidden.numpy()
    np.testing.assert_allclose(mean_pool(hidden, mask).numpy()[1], h[1, :3].mean(axis=0),
                               rtol=1e-5)


def test_frozen_encoder_trains_the_pooler_only_when_the_head_reads_it():
    cls_model, mean_model = tiny("cls"), tiny("mean")
    for model, pooler_trains in ((cls_model, True), (mean_model, False)):
        frozen = _freeze_encoder(model)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == ({"bert.pooler.W", "bert.pooler.b"} if pooler_trains else set()) \
            | {"classifier.W", "classifier.b"}
        assert all(not p.requires_grad for p in frozen)
    token = BertForTokenClassification(cls_model.config)  # no pooler at all
    _freeze_encoder(token)
    assert {n for n, p in token.named_parameters() if p.requires_grad} == {"classifier.W",
                                                                           "classifier.b"}


def test_frozen_fine_tuning_moves_pooler_and_classifier_not_the_encoder():
    texts = ["refund my card", "the app crashes", "reset my password", "parcel is late"] * 2
    tok = Tokenizer.train(texts, vocab_size=60)
    model = tiny("cls", pad_token_id=0)
    data = LabelledData(texts, ["a", "b", "c", "a", "b", "c", "a", "b"])
    before = model.state_dict()
    finetune(model, tok, data, epochs=2, batch_size=4, lr=1e-2, freeze_encoder=True,
             progress=False)
    after = model.state_dict()
    moved = {n for n in before if not np.array_equal(before[n], after[n])}
    assert moved == {"bert.pooler.W", "bert.pooler.b", "classifier.W", "classifier.b"}


def test_a_frozen_encoder_runs_without_dropout_while_the_head_trains():
    """Frozen, the encoder is a fixed feature extractor: every step sees the features that
    evaluation sees (dropout off inside it), while the head's own dropout stays on."""
    texts = ["refund my card", "the app crashes", "reset my password", "parcel is late"] * 2
    tok = Tokenizer.train(texts, vocab_size=60)
    minibert.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, hidden_dropout_prob=0.5,
        attention_probs_dropout_prob=0.5, pooling="mean", num_labels=3, pad_token_id=0))
    data = LabelledData(texts, ["a", "b", "c", "a", "b", "c", "a", "b"])
    encoder_modes, head_modes = set(), set()
    forward = model.bert.forward

    def spy(*args, **kwargs):
        encoder_modes.update(m.training for _, m in model.bert.named_modules())
        head_modes.add(model.dropout.training)
        return forward(*args, **kwargs)

    model.bert.forward = spy
    finetune(model, tok, data, eval_data=data, epochs=2, batch_size=4, lr=1e-2,
             freeze_encoder=True, progress=False)
    assert encoder_modes == {False}  # training steps and evaluations alike
    assert head_modes == {True, False}  # on in the training steps, off in the evaluations


def test_transformers_opens_a_mean_pooled_folder_with_the_pooler(tmp_path):
    """What the save warning is about: transformers ignores `pooling` and reads the pooler."""
    torch = pytest.importorskip("torch", reason="the reference model runs in PyTorch")
    transformers = pytest.importorskip("transformers", reason="the reference is transformers")
    model = tiny("mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save_pretrained(tmp_path)
    ids = np.array([[2, 7, 8, 9, 3]])
    with no_grad():
        ours = model.eval()(ids).logits.numpy()
        cls_logits = tiny("cls")(ids).logits.numpy()  # same weights (seed 0), [CLS] pooling
    ref = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    assert not np.allclose(ours, theirs, atol=1e-3)
    np.testing.assert_allclose(theirs, cls_logits, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("enc")
    lines = (support_tickets_dir() / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    tok = Tokenizer.train([t.split("\t")[0] for t in lines], vocab_size=400)
    minibert.manual_seed(0)
    BertForSequenceClassification(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64)).bert.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_cli_pooling_flag(tiny_encoder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--model", str(tiny_encoder), "--pooling", "mean",
                 "--train", str(support_tickets_dir() / "test.tsv"), "--epochs", "1",
                 "--max-length", "32", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "(full, mean pooling, lr 5e-05)" in captured.err  # a note
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["pooling"] == "mean"
    assert main(["predict", "--model", str(out / "final"), "my card was charged twice"]) == 0
    from minibert.course.explain import trace  # explain computes the head by hand from the mean too

    assert trace("my card was charged twice", out / "final").same_as_model
    assert main(["finetune", "--task", "token", "--pooling", "mean", "--train",
                 str(support_tickets_dir() / "test.tsv")]) == 2
    assert "a token classifier labels every token" in capsys.readouterr().err
