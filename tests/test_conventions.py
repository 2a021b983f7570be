"""The habits a user brings from transformers and from any serious command-line tool (issue 25,
items 3 and 6; issue 23, item 8): a callable classifier and pipeline(), run_glue's flag names,
logging with a verbosity switch and -q, quiet broken pipes, one-line errors for bad environment
variables, texts from standard input, and a README that says what the commands have.
"""

import io
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import console
from minibert.cli import build_parser, main
from minibert.config import BertConfig
from minibert.model import BertForSequenceClassification
from minibert.pipeline import Classifier
from minibert.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "minibert" / "datasets" / "support_tickets" / "train.tsv")


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """A small sequence classifier folder, as `finetune` writes one (random weights)."""
    folder = tmp_path_factory.mktemp("clf")
    tok = Tokenizer.train(["the card was charged twice", "my parcel is late", "reset password"],
                          vocab_size=120)
    minibert.manual_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                        initializer_range=0.5, id2label={0: "billing", 1: "shipping",
                                                         2: "account"})
    BertForSequenceClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def run_module(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "minibert", *args], capture_output=True,
                          text=True, env=env, input=stdin)


# -- transformers' habits ----------------------------------------------------------------------


def test_a_classifier_is_called_like_a_transformers_pipeline(classifier_dir):
    clf = minibert.pipeline("text-classification", model=classifier_dir)
    assert isinstance(clf, Classifier)
    texts = ["the card was charged twice", "my parcel is late", "reset password"]
    probs = clf.predict_proba(texts)
    one = clf(texts[0])  # one text in: one answer out
    assert set(one) == {"label", "score"}
    assert one["label"] == clf.labels[int(probs[0].argmax())]
    assert one["score"] == pytest.approx(float(probs[0].max()), rel=1e-6)
    many = clf(texts)  # a list in: a list out, in input order
    assert [a["label"] for a in many] == [clf.labels[i] for i in probs.argmax(axis=1)]
    everything = clf(texts[1], top_k=None)  # every class, the most probable first
    assert [a["score"] for a in everything] == pytest.approx(sorted(probs[1], reverse=True),
                                                             rel=1e-5)
    assert {a["label"] for a in everything} == set(clf.labels)
    assert len(clf(texts, top_k=2)[2]) == 2
    pair = clf({"text": "my parcel", "text_pair": "is late"})
    assert pair["score"] == pytest.approx(
        float(clf.predict_proba(["my parcel"], ["is late"]).max()), rel=1e-6)
    with pytest.raises(ValueError, match="top_k"):
        clf(texts, top_k=0)
    with pytest.raises(ValueError, match="'text' and 'text_pair'"):
        clf({"sentence": "x"})


def test_pipeline_names_the_tasks_it_supports(classifier_dir):
    with pytest.raises(ValueError, match="supports 'text-classification'"):
        minibert.pipeline("summarization", model=classifier_dir)
    from minibert.pipeline import pipeline  # the function, as `from transformers import pipeline`

    assert isinstance(pipeline("sentiment-analysis", classifier_dir), Classifier)


def test_run_glue_flag_names_work_in_finetune(tmp_path):
    parse = build_parser().parse_args
    args = parse(["finetune", "--model_name_or_path", "some-model", "--train_file", TRAIN,
                  "--validation_file", TRAIN, "--max_seq_length", "64", "--output_dir",
                  str(tmp_path)])
    assert (args.model, args.train, args.eval, args.max_length, args.out) == (
        "some-model", TRAIN, TRAIN, 64, str(tmp_path))
    # the values are checked as under their own names, before any work
    with pytest.raises(SystemExit):
        parse(["finetune", "--train_file", TRAIN, "--max_seq_length", "2"])
    # pretrain: run_mlm's --train_file is the corpus
    assert parse(["pretrain", "--train_file", TRAIN]).corpus == TRAIN


def test_warnings_name_parameters_as_transformers_does(classifier_dir, tmp_path):
    from minibert.model import BertModel

    BertModel.from_pretrained(classifier_dir).save_pretrained(tmp_path)
    with pytest.warns(UserWarning) as warned:
        BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    said = " ".join(str(w.message) for w in warned)
    assert "['classifier.weight', 'classifier.bias']" in said
    assert "classifier.W" not in said


# -- logging and verbosity ---------------------------------------------------------------------


def test_notes_go_through_the_minibert_logger_and_verbosity_silences_them(capsys):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("minibert").addHandler(handler)
    before = console.get_verbosity()
    try:
        console.note("note: something to know")
        console.result("a result")
        assert [r.getMessage() for r in records] == ["note: something to know"]
        printed = capsys.readouterr()
        assert printed.err == "note: something to know\n" and printed.out == "a result\n"

        minibert.set_verbosity("warning")  # notes off, warnings and results on
        console.note("note: hidden")
        console.warn("warning: shown")
        console.result("still a result")
        printed = capsys.readouterr()
        assert printed.err == "warning: shown\n" and printed.out == "still a result\n"
        assert not console.progress_wanted(True, stream=type("Tty", (io.StringIO,), {
            "isatty": lambda self: True})())  # quiet: no progress bars either

        minibert.set_verbosity("error")
        console.warn("warning: hidden too")
        console.result("hidden result")
        assert capsys.readouterr() == ("", "")
        with pytest.raises(ValueError, match="unknown verbosity 'loud'"):
            minibert.set_verbosity("loud")
    finally:
        console.set_verbosity(before)
        logging.getLogger("minibert").removeHandler(handler)


def test_finetune_says_nothing_on_stderr_when_quiet(capsys):
    from minibert.data import LabelledData
    from minibert.train import finetune

    tok = Tokenizer.train(["a b c d e f g h"] * 4, vocab_size=40)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16, max_position_embeddings=8,
                        num_labels=2)
    data = LabelledData(["a b c d e f g h i j"] * 4, ["x", "y", "x", "y"])
    before = console.get_verbosity()
    try:
        finetune(BertForSequenceClassification(config), tok, data, epochs=1, batch_size=4,
                 max_length=8, progress=False)
        assert "note: " in capsys.readouterr().err  # by default: the truncation note
        minibert.set_verbosity("warning")
        finetune(BertForSequenceClassification(config), tok, data, epochs=1, batch_size=4,
                 max_length=8, progress=False)
        printed = capsys.readouterr()
        assert printed.err == "" and "epoch 1" in printed.out
    finally:
        console.set_verbosity(before)


def test_quiet_flag_on_every_command_and_only_for_one_command(classifier_dir, capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert all("--quiet" in p.format_help() for p in commands.values())
    before = console.get_verbosity()
    assert main(["predict", "-q", "--model", str(classifier_dir), "x " * 40, "--json"]) == 0
    printed = capsys.readouterr()
    assert printed.err == "" and json.loads(printed.out)["label"]
    assert console.get_verbosity() == before  # -q lasted for that command only
    assert main(["predict", "--model", str(classifier_dir), "x " * 40, "--json"]) == 0
    assert "were truncated" in capsys.readouterr().err  # without -q: the note


# -- the command line's conventions ------------------------------------------------------------


def test_a_closed_pipe_ends_the_command_quietly():
    # `minibert quiz --list | head -2`: the reader has gone before the output is written
    for argv, status in ((["quiz", "--list"], 141), (["--help"], 0)):  # argparse: 0
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            out = subprocess.run([sys.executable, "-m", "minibert", *argv], stdout=write_end,
                                 stderr=subprocess.PIPE, text=True)
        finally:
            os.close(write_end)
        assert out.stderr == "", out.stderr  # no "[Errno 32] Broken pipe", no traceback
        assert out.returncode == status  # 141 = 128 + SIGPIPE, as a shell reports it


def test_a_closed_pipe_in_process_returns_141(monkeypatch):
    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["quiz", "--list"]) == 141


@pytest.mark.parametrize("variable, value, message", [
    ("MINIBERT_BACKEND", "bogus", "MINIBERT_BACKEND='bogus': unknown backend 'bogus'"),
    ("MINIBERT_KEEP_FREED_MEMORY", "2", "MINIBERT_KEEP_FREED_MEMORY='2'"),
])
def test_a_bad_environment_variable_is_one_line_from_the_command(variable, value, message):
    env = {**os.environ, variable: value}
    for argv in (["-m", "minibert", "--version"], ["-m", "minibert.cli", "--version"]):
        out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.startswith("minibert: error: ") and message in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    # a library import still raises, so that a program can catch it
    imported = subprocess.run([sys.executable, "-c", "import minibert"], capture_output=True,
                              text=True, env=env)
    assert imported.returncode == 1 and "Traceback" in imported.stderr


def test_a_bad_thread_count_is_one_line_from_a_command(classifier_dir):
    env = {**os.environ, "MINIBERT_NUM_THREADS": "x"}
    out = run_module("predict", "--model", str(classifier_dir), "hello", env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "MINIBERT_NUM_THREADS='x'" in out.stderr


def test_predict_reads_texts_from_standard_input(classifier_dir, monkeypatch, capsys):
    texts = ["the card was charged twice", "my parcel is late"]
    expected = [p.label for p in Classifier.from_pretrained(classifier_dir).predict(texts)]
    for extra in (["--file", "-"], []):  # `--file -`, or a pipe and no texts
        monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts) + "\n"))
        assert main(["predict", "--model", str(classifier_dir), "--json", *extra]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["text"] for r in rows] == texts and [r["label"] for r in rows] == expected
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["predict", "--model", str(classifier_dir)]) == 2
    assert "standard input" in capsys.readouterr().err
    piped = run_module("predict", "--model", str(classifier_dir), "--json", stdin="reset\n")
    assert piped.returncode == 0 and json.loads(piped.stdout)["text"] == "reset"


def test_the_readme_says_which_commands_have_seed_and_device():
    commands = build_parser()._subparsers._group_actions[0].choices
    having = {name for name, p in commands.items()
              if {"--seed", "--device"} <= set(p._option_string_actions)}
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    said = re.search(r"The commands that run a model \(([^)]*)\) have `--seed`", readme)
    assert said, "README: the sentence naming the commands with --seed and --device"
    assert set(re.findall(r"`(\w+)`", said.group(1))) == having
    assert "Every command has `--help`, `--seed`" not in readme


def test_tokenizer_output_rows_are_lists_without_padding():
    tok = Tokenizer.train(["a b c d e"], vocab_size=30)
    batch = tok(["a b", "a b c d"])
    assert [len(r) for r in batch["input_ids"]] == [4, 6]
    assert batch["attention_mask"] == [[1] * 4, [1] * 6]
    with pytest.raises(ValueError, match="pad them"):
        tok(["a b", "a b c d"], return_tensors="np")
    arrays = tok(["a b", "a b c d"], padding=True, return_tensors="np")
    assert arrays["input_ids"].dtype == np.int64 and arrays["input_ids"].shape == (2, 6)
    with pytest.raises(ValueError, match="return_tensors='np'"):
        tok("a", return_tensors="pt")
    with pytest.raises(ValueError, match="padding must be"):
        tok("a", padding="longer")
