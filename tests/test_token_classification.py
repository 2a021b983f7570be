"""One label per word end to end: finetune_tokens, the Tagger, and `minibert finetune --task
token` / predict / evaluate, on tiny models and the shipped ticket_entities data."""

import json
import re
import warnings

import numpy as np
import pytest

import minibert
from minibert import no_grad
from minibert.cli import main
from minibert.config import BertConfig
from minibert.datasets import ticket_entities_dir
from minibert.evaluation import evaluate_tokens
from minibert.model import BertForMaskedLM, BertForTokenClassification
from minibert.pipeline import Tagger
from minibert.token_data import TokenLabelledData, read_token_labelled, tag_names
from minibert.tokenizer import Tokenizer
from minibert.train import finetune_tokens

ENTITIES = ticket_entities_dir()


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    """A tiny 'pre-trained' BERT folder (MLM head, vocabulary trained on the entity sentences)."""
    folder = tmp_path_factory.mktemp("tiny_mlm")
    train = read_token_labelled(ENTITIES / "train.conll")
    tok = Tokenizer.train([" ".join(w) for w in train.words], vocab_size=500)
    minibert.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64,
                               max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _load(folder, cls=BertForTokenClassification, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.from_pretrained(folder, **kw)


def test_a_token_classifier_learns_the_tags_of_its_training_sentences(tiny_mlm):
    """Eight sentences, many epochs: the tags are learned, entity F1 on them reaches 1."""
    data = read_token_labelled(ENTITIES / "train.conll").subset(range(8))
    tags = tag_names(data.tags)
    minibert.manual_seed(0)
    model = _load(tiny_mlm, id2label=dict(enumerate(tags)), hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    tok = Tokenizer.from_pretrained(tiny_mlm)
    before = evaluate_tokens(model, tok, data, max_length=64)
    history = finetune_tokens(model, tok, data, data, epochs=40, batch_size=8, lr=1e-2,
                              warmup_ratio=0.0, max_length=64, progress=False)
    after = history["epochs"][-1]["eval"]
    assert model.config.id2label == dict(enumerate(tags)) and tags[0] == "O"
    assert before["f1"] < 0.5 and after["f1"] == 1.0 and after["word_accuracy"] == 1.0
    assert after["num_entities"] == sum(t.startswith("B-") for s in data.tags for t in s)


def test_cli_finetune_token_then_predict_and_evaluate(tiny_mlm, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--task", "token", "--model", str(tiny_mlm),
                 "--train", str(ENTITIES / "train.conll"), "--eval", str(ENTITIES / "test.conll"),
                 "--epochs", "1", "--batch-size", "32", "--lr", "1e-3", "--max-length", "64",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().err  # a note
    assert "for one label per word on 225 sentences, 9 tags: O, B-AMOUNT" in printed
    final = out / "final"
    assert json.loads((final / "config.json").read_text())["architectures"] == [
        "BertForTokenClassification"]

    code = main(["predict", "--model", str(final), "My Kestrel Hub arrived on 12 March."])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["My", "Kestrel", "Hub", "arrived", "on", "12", "March", "."]
    assert len(lines[1].split()) == 8 and lines[2].startswith("entities: ")

    code = main(["evaluate", "--model", str(final), "--data", str(ENTITIES / "test.conll")])
    assert code == 0
    printed = capsys.readouterr().out
    tagger = Tagger.from_pretrained(final)
    m = evaluate_tokens(tagger.model, tagger.tokenizer, read_token_labelled(ENTITIES /
                                                                            "test.conll"))
    assert f"60 sentences, 97 entities: precision {m['precision']:.4f}, recall " \
           f"{m['recall']:.4f}, F1 {m['f1']:.4f}" in printed
    assert re.search(r"^PRODUCT\s", printed, re.M)


def test_cli_token_errors_are_one_clear_line(tiny_mlm, tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("My\tO\nhub\tB-PRODUCT\n\nFriday\tB-WEEKDAY\n", encoding="utf-8")
    code = main(["finetune", "--task", "token", "--model", str(tiny_mlm),
                 "--train", str(ENTITIES / "train.conll"), "--eval", str(bad), "--epochs", "1",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.conll: sentence 2 has the tag 'B-WEEKDAY'" in err
    assert not (tmp_path / "run" / "final").exists()  # refused before any training

    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n", encoding="utf-8")
    code = main(["finetune", "--task", "token", "--model", str(tiny_mlm), "--train", str(short)])
    assert code == 2
    assert "sentence 1 has 2 words but 1 tags" in capsys.readouterr().err


def test_token_classifier_checkpoint_gives_transformers_the_same_logits(tiny_mlm, tmp_path):
    torch = pytest.importorskip("torch", reason="the reference model runs in PyTorch")
    transformers = pytest.importorskip("transformers", reason="the reference is transformers")
    data = TokenLabelledData([["My", "Kestrel", "Hub"]], [["O", "B-PRODUCT", "I-PRODUCT"]])
    minibert.manual_seed(0)
    model = _load(tiny_mlm, num_labels=3)
    model.config.id2label = dict(enumerate(tag_names(data.tags)))
    model.save_pretrained(tmp_path)
    ids = np.array([[2, 10, 11, 12, 3]])
    with no_grad():
        ours = model.eval()(ids).logits.numpy()
    ref = transformers.BertForTokenClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert ref.config.id2label == {0: "O", 1: "B-PRODUCT", 2: "I-PRODUCT"}


def test_format_tags_shows_control_characters_escaped():
    from minibert.pipeline import TaggedText, format_tags

    shown = format_tags([TaggedText("x", ["\x1b[2Jhub", "ok"], ["B-\x1b]0;t\x07", "O"])])
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b[2Jhub" in shown
