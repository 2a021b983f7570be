"""Logs that read well in a terminal, a file and a notebook (console.py and its users).

Progress bars only where a person watches (a terminal or a notebook), never with TQDM_DISABLE
or progress=False; results on stdout, notes on stderr; class names whole in text tables.
"""

import io

import numpy as np
import pytest

import minibert
from minibert import console
from minibert.config import BertConfig
from minibert.metrics import format_confusion
from minibert.model import BertForSequenceClassification
from minibert.pipeline import Prediction, format_predictions
from minibert.tokenizer import Tokenizer


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def no_tqdm_env(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)


def test_progress_only_on_a_terminal_and_never_when_disabled(monkeypatch, no_tqdm_env):
    assert console.progress_wanted(True, FakeTerminal())
    assert not console.progress_wanted(True, io.StringIO())  # a file or a pipe
    assert not console.progress_wanted(False, FakeTerminal())  # --no-progress
    for value, wanted in [("1", False), ("true", False), ("0", True), ("", True)]:
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert console.progress_wanted(True, FakeTerminal()) is wanted, value


def test_a_bar_draws_on_a_terminal_and_is_silent_in_a_file(monkeypatch, no_tqdm_env):
    for stream, drawn in [(FakeTerminal(), True), (io.StringIO(), False)]:
        monkeypatch.setattr("sys.stderr", stream)
        bar = console.progress_bar(3, "epoch 1/1")
        for _ in range(3):
            bar.update(1)
        bar.close()
        assert ("epoch 1/1" in stream.getvalue()) is drawn
        assert ("\r" in stream.getvalue()) is drawn


def test_inside_a_notebook_bars_are_on(monkeypatch, no_tqdm_env):
    monkeypatch.setattr(console, "in_notebook", lambda: True)
    assert console.progress_wanted(True, io.StringIO())
    assert not console.progress_wanted(False, io.StringIO())
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not console.progress_wanted(True, io.StringIO())


def test_training_writes_epoch_results_to_stdout_and_notes_to_stderr(capsys, no_tqdm_env):
    texts = ["apple banana", "dog cat", "apple cherry", "cat horse"] * 4
    labels = ["fruit", "animal", "fruit", "animal"] * 4
    tokenizer = Tokenizer.train(texts, vocab_size=60, min_frequency=1)
    minibert.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=16, max_position_embeddings=8, num_labels=2))
    data = minibert.LabelledData(texts + ["apple " * 20], labels + ["fruit"], source="t")
    minibert.finetune(model, tokenizer, data, data, epochs=2, batch_size=8, max_length=8)
    out, err = capsys.readouterr()
    assert out.count("epoch ") == 2 and "eval loss" in out and "note" not in out
    assert "note: 1 of 17 training texts are longer than 8 tokens" in err
    assert "\r" not in out + err  # captured output is not a terminal: no bar


def test_long_class_names_are_never_cut():
    names = ["technical_support_escalation", "billing_and_refunds_department", "x"]
    table = format_confusion(np.array([[5, 1, 0], [0, 4, 2], [1, 0, 7]]), names)
    for name in names:
        assert name in table
    lines = table.splitlines()
    assert lines[3].split()[-3:] == ["0", "4", "2"]
    many = [f"a_rather_long_class_name_{i}" for i in range(8)]  # too wide: numbered columns
    wide = format_confusion(np.eye(8, dtype=int) * 3, many)
    assert max(len(line) for line in wide.splitlines()) <= 120
    assert all(f"{i} {name}" in wide for i, name in enumerate(many))
    prediction = Prediction("hi", names[1], {n: 1 / 3 for n in names})
    row = format_predictions([prediction]).splitlines()[2]
    assert names[1] in row and row.split()[1] == names[1]


# -- text that must not control the terminal (issue 23) ---------------------------------------


def test_printable_escapes_every_terminal_control():
    shown = console.printable("a\x1b[2J\x1b]0;title\x07\x9b1m\x7f\u202eb\u2066c\td\ne\r é 中")
    assert shown == "a\\x1b[2J\\x1b]0;title\\x07\\x9b1m\\x7f\\u202eb\\u2066c\\td\\ne\\r é 中"
    assert console.printable("line 1\nline 2\r", keep_newlines=True) == "line 1\nline 2\\r"
    assert console.printable(3) == "3"


def test_notes_results_and_the_prediction_table_show_controls_escaped(capsys):
    names = ["\x1b[2Jpos", "neg\x1b]0;x\x07"]
    table = format_predictions([Prediction("hi \x1b[31mred", names[0],
                                           {names[0]: 0.9, names[1]: 0.1})])
    assert "\x1b" not in table and "\x07" not in table
    assert "\\x1b[2Jpos" in table and "hi \\x1b[31mred" in table
    console.note("note: class \x1b[2J")
    console.result("result \x1b]0;t\x07")
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\\x1b[2J" in err and "\\x07" in out


def test_printable_json_is_the_same_json_without_terminal_controls():
    import json

    value = {"label": "a\x9b31m\u202eb\x7f\x1b[2J é"}
    text = console.printable_json(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert not set("\x9b\u202e\x7f\x1b") & set(text) and "é" in text
