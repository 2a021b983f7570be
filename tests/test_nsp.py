"""Next-sentence prediction: sentence pairs cut from a corpus, BertForPreTraining (MLM + NSP,
transformers' names), pretrain_nsp and `minibert pretrain --nsp`."""

import json
import warnings

import numpy as np
import pytest

import minibert
from minibert import functional as F
from minibert import no_grad
from minibert.cli import main
from minibert.config import BertConfig
from minibert.data import (
    DataError,
    NSPCollator,
    hold_out_lines,
    next_sentence_pairs,
    split_sentences,
)
from minibert.evaluation import evaluate_pretraining
from minibert.model import BertForPreTraining, BertForSequenceClassification
from minibert.tokenizer import Tokenizer
from minibert.train import pretrain_nsp

DOCS = [
    "The hub arrived today. It was cracked. I want a new one.",
    "My card was charged twice. Please refund one charge.",
    "The app crashes on start. I reinstalled it. It still crashes.",
    "I forgot my password. The reset link does not work.",
] * 3


def test_split_sentences():
    assert split_sentences(" One. Two? Three!  Four ") == ["One.", "Two?", "Three!", "Four"]


def test_pairs_are_half_real_next_sentences_half_random_ones():
    # 400 documents whose sentences are all different (each carries its document's number)
    docs = [d.replace(".", f" {i}.") for i in range(100) for d in DOCS[:4]]
    pairs = next_sentence_pairs(docs, rng=0)
    sentences = [split_sentences(d) for d in docs]
    follows = {(a, b) for doc in sentences for a, b in zip(doc, doc[1:], strict=False)}
    assert len(pairs) == sum(len(d) - 1 for d in sentences)
    real = [p for p in pairs if p[2] == 0]
    assert all((a, b) in follows for a, b, _ in real)
    doc_of = {s: i for i, d in enumerate(sentences) for s in d}
    assert all(doc_of[a] != doc_of[b] for a, b, y in pairs if y == 1)
    assert 0.4 < len(real) / len(pairs) < 0.6
    with pytest.raises(DataError, match="at least two documents"):
        next_sentence_pairs(["Only one document. With two sentences."])


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.train(DOCS, vocab_size=120)


def tiny(tok):
    minibert.manual_seed(0)
    return BertForPreTraining(BertConfig(vocab_size=tok.vocab_size, hidden_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=64))


def test_collator_gives_segments_and_labels(tok):
    pairs = [("The hub arrived today.", "It was cracked.", 0),
             ("My card was charged twice.", "It still crashes.", 1)]
    b = NSPCollator(tok, max_length=32, rng=0)(pairs)
    assert b["next_sentence_label"].tolist() == [0, 1]
    enc = tok.encode(*pairs[0][:2])
    n = len(enc.input_ids)
    assert b["token_type_ids"][0, :n].tolist() == enc.token_type_ids
    assert b["attention_mask"][0].sum() == n and set(b["token_type_ids"][0, :n]) == {0, 1}


def test_loss_is_mlm_plus_nsp(tok):
    model = tiny(tok).eval()
    b = NSPCollator(tok, max_length=32, rng=0)(next_sentence_pairs(DOCS, rng=0)[:4])
    with no_grad():
        out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], labels=b["labels"],
                    next_sentence_label=b["next_sentence_label"])
        mlm = F.cross_entropy(out.logits, b["labels"]).item()
        nsp = F.cross_entropy(out.seq_relationship_logits, b["next_sentence_label"]).item()
    assert out.seq_relationship_logits.shape == (4, 2)
    assert out.loss.item() == pytest.approx(mlm + nsp, rel=1e-6)


def test_pretraining_checkpoint_gives_transformers_the_same_outputs(tok, tmp_path):
    torch = pytest.importorskip("torch", reason="the reference model runs in PyTorch")
    transformers = pytest.importorskip("transformers", reason="the reference is transformers")
    model = tiny(tok).eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [
        "BertForPreTraining"]
    enc = tok.encode("The hub arrived today.", "It was cracked.")
    ids, types = np.array([enc.input_ids]), np.array([enc.token_type_ids])
    with no_grad():
        ours = model(ids, None, types)
    ref = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = ref(torch.tensor(ids), token_type_ids=torch.tensor(types))
    np.testing.assert_allclose(ours.logits.numpy(), theirs.prediction_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(ours.seq_relationship_logits.numpy(),
                               theirs.seq_relationship_logits.numpy(), atol=1e-5)


def test_pretrain_nsp_lowers_the_loss_and_trains_the_pooler(tok, tmp_path):
    model = tiny(tok)
    pooler_before = model.bert.pooler.W.numpy().copy()
    history = pretrain_nsp(model, tok, DOCS * 4, epochs=6, batch_size=16, lr=3e-3,
                           max_length=48, progress=False, out_dir=str(tmp_path / "run"))
    losses = [e["train_loss"] for e in history["epochs"]]
    assert losses[-1] < losses[0]
    assert not np.array_equal(model.bert.pooler.W.numpy(), pooler_before)
    # fine-tuning from it keeps the (now trained) pooler and discards both pre-training heads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = BertForSequenceClassification.from_pretrained(tmp_path / "run" / "final",
                                                            num_labels=2)
    said = " ".join(str(w.message) for w in caught)
    assert "cls.seq_relationship" in said and "bert.pooler" not in said.split("discarding")[0]
    np.testing.assert_array_equal(clf.bert.pooler.W.numpy(), model.bert.pooler.W.numpy())


def test_evaluate_pretraining_counts_what_it_reports(tok):
    model = tiny(tok)
    pairs = next_sentence_pairs(DOCS, rng=0)
    collate = NSPCollator(tok, max_length=32, rng=0)
    batches = [collate(pairs[:5]), collate(pairs[5:])]
    m = evaluate_pretraining(model, batches)
    y = np.concatenate([b["next_sentence_label"] for b in batches])
    right, masked, mlm = 0, 0, 0.0
    with no_grad():
        for b in batches:
            out = model.eval()(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            right += int((out.seq_relationship_logits.numpy().argmax(-1)
                          == b["next_sentence_label"]).sum())
            n = int((b["labels"] != -100).sum())
            masked, mlm = masked + n, mlm + F.cross_entropy(out.logits, b["labels"]).item() * n
    assert m["num_pairs"] == len(pairs) and m["masked_tokens"] == masked
    assert m["nsp_accuracy"] == right / len(pairs)
    assert m["nsp_chance"] == max(np.mean(y == 0), np.mean(y == 1))
    assert m["mlm_loss"] == pytest.approx(mlm / masked, rel=1e-6)
    assert m["loss"] == pytest.approx(m["mlm_loss"] + m["nsp_loss"], rel=1e-9)
    assert m["perplexity"] == pytest.approx(np.exp(m["mlm_loss"]), rel=1e-9)


def test_hold_out_lines_keeps_whole_documents_apart():
    lines = [f"Line {i}. Sentence two of {i}." for i in range(40)]
    train, held = hold_out_lines(lines, 0.1, seed=3)
    assert len(held) == 4 and sorted(train + held) == sorted(lines) and not set(train) & set(held)
    assert held == hold_out_lines(lines, 0.1, seed=3)[1] != hold_out_lines(lines, 0.1, seed=4)[1]
    assert train == [x for x in lines if x in train]  # file order kept
    assert len(hold_out_lines(lines[:5], 0.05, minimum=2)[1]) == 2
    with pytest.raises(DataError, match="too few to hold out"):
        hold_out_lines(lines[:2], 0.05, minimum=2)


def test_pretrain_nsp_reports_held_out_mlm_loss_and_next_sentence_accuracy(tok, tmp_path,
                                                                         capsys):
    # Held-out documents whose real next sentences can be learned from the training ones: the
    # same four kinds of paragraph, with other words around them.
    held = [d.replace(". ", " again. ") for d in DOCS[:4]]
    model = tiny(tok)
    history = pretrain_nsp(model, tok, DOCS * 4, held, epochs=8, batch_size=16, lr=3e-3,
                           max_length=48, progress=False, out_dir=str(tmp_path / "run"))
    evals = [e["eval"] for e in history["epochs"]]
    assert len(evals) == 8
    n_pairs = len(next_sentence_pairs(held, rng=np.random.default_rng([0, 2])))
    assert all(e["num_pairs"] == n_pairs and 0 <= e["nsp_accuracy"] <= 1 for e in evals)
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"]
    assert evals[-1]["loss"] < evals[0]["loss"]
    # in the epoch lines, and in the run's saved state (history.json and the checkpoint)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch ")]
    assert len(lines) == 8 and all("mlm_loss" in x and "nsp_accuracy" in x and "chance" in x
                                   for x in lines)
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert saved["epochs"][-1]["eval"] == pytest.approx(evals[-1])
    state = json.loads((tmp_path / "run" / "checkpoint-epoch-8" / "run_state.json")
                       .read_text())
    assert state["history"]["epochs"][-1]["eval"]["nsp_accuracy"] == evals[-1]["nsp_accuracy"]
    with pytest.raises(DataError, match="held-out text"):
        pretrain_nsp(tiny(tok), tok, DOCS, ["One paragraph. Two sentences."], epochs=1,
                     progress=False)


def test_cli_pretrain_nsp(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["pretrain", "--nsp", "--corpus", str(corpus), "--vocab-size", "120",
                 "--hidden", "32", "--layers", "1", "--heads", "2", "--max-length", "48",
                 "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    said = "".join(capsys.readouterr())  # results on stdout, notes on stderr
    assert "MLM + next-sentence pre-training" in said
    # by default 5 % of the lines (at least 2 documents) are held out and evaluated each epoch
    assert "Held out 2 of the 12 lines" in said
    evals = [e["eval"] for e in json.loads((out / "history.json").read_text())["epochs"]]
    assert len(evals) == 2
    assert (f"next-sentence accuracy {evals[0]['nsp_accuracy']:.3f} -> "
            f"{evals[1]['nsp_accuracy']:.3f} (chance {evals[1]['nsp_chance']:.3f}") in said
    assert f"Held-out MLM loss {evals[0]['mlm_loss']:.4f} -> {evals[1]['mlm_loss']:.4f}" in said
    # --validation-fraction 0: every line trains, nothing is evaluated
    assert main(["pretrain", "--nsp", "--corpus", str(corpus), "--vocab-size", "120",
                 "--hidden", "32", "--layers", "1", "--heads", "2", "--max-length", "48",
                 "--validation-fraction", "0", "--out", str(tmp_path / "all"),
                 "--no-progress"]) == 0
    said = "".join(capsys.readouterr())
    assert "Held out" not in said and "next-sentence accuracy" not in said
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["architectures"] == ["BertForPreTraining"]
    with pytest.raises(TypeError, match="pretrain_nsp trains BertForPreTraining"):
        from minibert.model import BertForMaskedLM
        pretrain_nsp(BertForMaskedLM(BertForPreTraining.from_pretrained(out / "final").config),
                     Tokenizer.from_pretrained(out / "final"), DOCS)


def test_cli_pretrain_evaluates_a_held_out_file_without_nsp_too(tmp_path, capsys):
    corpus, held = tmp_path / "corpus.txt", tmp_path / "held.txt"
    corpus.write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    held.write_text("The hub arrived again. My card was charged again.\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["pretrain", "--corpus", str(corpus), "--eval", str(held), "--vocab-size",
                 "120", "--hidden", "32", "--layers", "1", "--heads", "2", "--max-length", "48",
                 "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    said = "".join(capsys.readouterr())
    assert "Held out" not in said  # --eval: every line of --corpus trains
    evals = [e["eval"] for e in json.loads((out / "history.json").read_text())["epochs"]]
    assert f"Held-out MLM loss {evals[0]['loss']:.4f} -> {evals[1]['loss']:.4f}" in said
    assert "next-sentence" not in said and "nsp_accuracy" not in evals[1]
    # --nsp needs pairs in the held-out text: one paragraph of one sentence has none
    held.write_text("Only one sentence here\n", encoding="utf-8")
    assert main(["pretrain", "--nsp", "--corpus", str(corpus), "--eval", str(held),
                 "--vocab-size", "120", "--hidden", "32", "--layers", "1", "--heads", "2",
                 "--out", str(tmp_path / "nsp"), "--no-progress"]) == 2
    assert "the held-out text" in capsys.readouterr().err
    assert not (tmp_path / "nsp").exists()  # refused before any run folder was written
