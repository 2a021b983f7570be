"""Tidy outputs (issue 25, item 5): what the commands leave and print for a person or a script.

- `finetune` (and `pretrain`) draw the run's loss curve into --out, as the demo does;
- `evaluate --json` gives the metrics as one JSON object (confusion matrix and class names);
- evaluate, predict and SentenceEncoder.encode show a progress bar on long work, only where a
  person watches (console.py's rules), and --no-progress turns it off.
(What a run keeps on disk, save_total_limit and save_only_model: tests/test_run_state.py; the
demo's folder size: tests/test_pipeline.py.)
"""

import json

import numpy as np
import pytest
from test_cli import TICKETS, tiny_pretrained  # noqa: F401  (a fixture)

import minibert
from minibert import console, evaluation, pipeline, sentence
from minibert.cli import main
from minibert.config import BertConfig
from minibert.model import BertModel
from minibert.sentence import SentenceEncoder
from minibert.tokenizer import Tokenizer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finetuned(tiny_pretrained, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["finetune", "--model", str(tiny_pretrained), "--train",
                 str(TICKETS / "train.tsv"), "--eval", str(TICKETS / "test.tsv"),
                 "--epochs", "2", "--batch-size", "64", "--lr", "1e-3", "--max-length", "32",
                 "--out", str(out), "--seed", "1", "--no-progress"]) == 0
    return out


def test_finetune_draws_its_loss_curve_into_out(finetuned, capsys):
    curve = finetuned / "loss_curve.png"
    assert curve.read_bytes()[:8] == PNG and curve.stat().st_size > 5000


def test_pretrain_draws_its_loss_curve_too(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the ticket number {i} was about a parcel and a refund"
                                for i in range(40)), encoding="utf-8")
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "pre"),
                 "--vocab-size", "120", "--layers", "1", "--hidden", "16", "--heads", "2",
                 "--max-length", "16", "--no-progress"]) == 0
    assert (tmp_path / "pre" / "loss_curve.png").read_bytes()[:8] == PNG
    assert "loss_curve.png" in capsys.readouterr().err  # said where it went, as a note


def test_evaluate_json_is_one_object_with_the_tables_numbers(finetuned, capsys):
    model, data = str(finetuned / "final"), str(TICKETS / "test.tsv")
    assert main(["evaluate", "--model", model, "--data", data, "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    metrics = json.loads(out)
    assert metrics["model"] == model and metrics["data"] == data
    assert metrics["labels"] == sorted(metrics["labels"]) and len(metrics["labels"]) == 4
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (4, 4) and matrix.sum() == metrics["num_examples"]
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert main(["evaluate", "--model", model, "--data", data]) == 0
    table = capsys.readouterr().out
    assert f"accuracy {metrics['accuracy']:.4f}" in table
    assert f"macro-F1 {metrics['macro_f1']:.4f}" in table


def test_json_line_writes_a_loss_of_nan_as_null():
    from minibert.cli import _json_line

    assert json.loads(_json_line({"loss": float("nan"), "x": [float("inf"), 1.5]})) == {
        "loss": None, "x": [None, 1.5]}


# ----------------------------------------------------------------------------------------------
# progress bars on long work


@pytest.fixture
def bars(monkeypatch):
    """Make every bar show at once (as on a terminal, past the long-work delay); returns the
    descriptions of the bars drawn."""
    drawn = []
    real = console.progress_bar

    def progress_bar(total, desc, enabled=True, unit="step", delay=0.0):
        assert delay == console.LONG_WORK_S  # inference bars wait for long work
        if console.progress_wanted(enabled):
            drawn.append((desc, total, unit))
        return real(total, desc, enabled, unit)

    monkeypatch.setattr(console, "progress_wanted", lambda enabled=True, stream=None: enabled)
    for module in (evaluation, pipeline, sentence):
        monkeypatch.setattr(module, "progress_bar", progress_bar)
    return drawn


def test_evaluate_and_predict_show_a_bar_unless_no_progress(finetuned, bars, capsys):
    model, data = str(finetuned / "final"), str(TICKETS / "test.tsv")
    assert main(["evaluate", "--model", model, "--data", data, "--batch-size", "32"]) == 0
    assert bars == [("evaluate", 5, "batch")]  # 142 tickets in batches of 32
    assert "evaluate" in capsys.readouterr().err  # tqdm drew it on stderr
    texts = ["my card was charged twice", "where is my parcel", "reset my password"]
    assert main(["predict", "--model", model, "--batch-size", "2", *texts]) == 0
    assert bars[-1] == ("predict", 2, "batch")
    bars.clear()
    assert main(["evaluate", "--model", model, "--data", data, "--no-progress"]) == 0
    assert main(["predict", "--model", model, "--no-progress", *texts]) == 0
    assert bars == []


def test_sentence_encoder_shows_a_bar_on_long_work(bars):
    tok = Tokenizer.train(["a b c d e f g"] * 3, vocab_size=30)
    minibert.manual_seed(0)
    encoder = SentenceEncoder(BertModel(BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=16)), tok)
    encoder.encode(["a b", "c d", "e f"], batch_size=1)
    assert bars == [("encode", 3, "batch")]
    encoder.encode(["a b"], progress=False)
    assert len(bars) == 1


def test_a_quick_call_draws_nothing(capsys, monkeypatch):
    """The delay: a bar appears only when the work takes longer than LONG_WORK_S."""
    monkeypatch.setattr(console, "progress_wanted", lambda enabled=True, stream=None: enabled)
    with console.progress_bar(3, "quick", unit="batch", delay=console.LONG_WORK_S) as bar:
        bar.update(3)
    assert "quick" not in capsys.readouterr().err
    with console.progress_bar(3, "shown", unit="batch") as bar:
        bar.update(3)
    assert "shown" in capsys.readouterr().err
