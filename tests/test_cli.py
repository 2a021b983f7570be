"""The command line, run end to end on small data and tiny models."""

import json
import os
import signal
import subprocess
import sys
import warnings

import pytest

import minibert
from minibert.cli import main
from minibert.config import BertConfig
from minibert.datasets import support_tickets_dir
from minibert.model import BertForMaskedLM
from minibert.tokenizer import Tokenizer

TICKETS = support_tickets_dir()


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "minibert.cli", *args], capture_output=True,
                          text=True, **kw)


@pytest.fixture(scope="module")
def tiny_pretrained(tmp_path_factory):
    """A tiny 'pre-trained' BERT directory (MLM head, vocab trained on the tickets)."""
    folder = tmp_path_factory.mktemp("tiny")
    texts = (TICKETS / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    tok = Tokenizer.train([t.split("\t")[0] for t in texts], vocab_size=600)
    minibert.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=32,
                                       num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=64))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_autograd_tour_prints_graph_and_agreeing_gradients():
    out = run_cli("autograd")
    assert out.returncode == 0, out.stderr
    assert "y = tanh(z)" in out.stdout and "agrees with the backward: True" in out.stdout


@pytest.mark.parametrize("command", ["demo", "pretrain", "finetune", "predict", "evaluate",
                                     "exercises"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: minibert " + command in capsys.readouterr().out


def test_finetune_predict_evaluate_end_to_end(tiny_pretrained, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--model", str(tiny_pretrained), "--train",
                 str(TICKETS / "train.tsv"), "--eval", str(TICKETS / "test.tsv"),
                 "--epochs", "1", "--batch-size", "32", "--lr", "1e-3", "--max-length", "48",
                 "--out", str(out), "--seed", "1"])
    assert code == 0
    printed = capsys.readouterr()
    assert "epoch 1: train loss" in printed.out  # results
    assert "4 classes" in printed.err and "Saved the fine-tuned model" in printed.err  # notes
    assert "note: " in printed.err and "fresh random initialisation" in printed.err
    # transformers' parameter names, not minibert's attribute names (classifier.W)
    assert "'classifier.weight', 'classifier.bias'" in printed.err and ".W'" not in printed.err
    assert "note" not in printed.out and "Saved" not in printed.out
    history = json.loads((out / "history.json").read_text())
    assert history["epochs"][0]["eval"]["accuracy"] >= 0.0
    assert (out / "final" / "model.safetensors").is_file()

    assert main(["predict", "--model", str(out / "final"), "my card was charged twice",
                 "the parcel never arrived", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-5
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)

    assert main(["evaluate", "--model", str(out / "final"), "--data",
                 str(TICKETS / "test.tsv")]) == 0
    assert "macro-F1" in capsys.readouterr().out

    # --format: a file whose extension says nothing (like TREC's .label) can still be read
    odd = tmp_path / "test.label"
    odd.write_bytes((TICKETS / "test.tsv").read_bytes())
    assert main(["evaluate", "--model", str(out / "final"), "--data", str(odd)]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(out / "final"), "--data", str(odd),
                 "--format", "tsv"]) == 0
    assert "macro-F1" in capsys.readouterr().out


def test_pretrain_from_scratch_on_a_text_file(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    lines = (TICKETS / "train.tsv").read_text(encoding="utf-8").splitlines()[1:200]
    corpus.write_text("\n".join(line.split("\t")[0] for line in lines), encoding="utf-8")
    code = main(["pretrain", "--corpus", str(corpus), "--vocab-size", "400", "--hidden", "32",
                 "--layers", "1", "--heads", "2", "--max-length", "32", "--out",
                 str(tmp_path / "pre")])
    assert code == 0
    assert (tmp_path / "pre" / "final" / "vocab.txt").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertForMaskedLM.from_pretrained(tmp_path / "pre" / "final")
    assert model.config.hidden_size == 32


def exit_code(argv):
    """main's return value, or the status of an argument error (argparse exits with 2)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_bad_inputs_give_one_clear_line(tiny_pretrained, tmp_path, capsys):
    assert exit_code(["finetune", "--model", str(tiny_pretrained), "--train",
                      str(tmp_path / "missing.tsv")]) == 2
    assert "missing.tsv" in capsys.readouterr().err

    assert main(["finetune", "--model", str(tiny_pretrained), "--train",
                 str(TICKETS / "train.tsv"), "--text-column", "body"]) == 2
    err = capsys.readouterr().err
    assert "body" in err and "text" in err  # names the missing column and the available ones

    unseen = tmp_path / "unseen.tsv"
    unseen.write_text("text\tlabel\nhello there\tRefund Request\n", encoding="utf-8")
    assert main(["finetune", "--model", str(tiny_pretrained), "--train",
                 str(TICKETS / "train.tsv"), "--eval", str(unseen), "--epochs", "1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "Refund Request" in capsys.readouterr().err

    assert main(["predict", "--model", str(tiny_pretrained), "hello"]) == 2
    err = capsys.readouterr().err  # an MLM folder: no classification head
    assert "holds a BertForMaskedLM" in err and "no classification head" in err

    assert main(["predict", "--model", str(tmp_path / "nowhere"), "hello"]) == 2
    assert "config.json" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["predict", "--model", "m", "--file", "."], "--file: '.' is a folder"),
    (["predict", "--model", "m", "hi", "--batch-size", "0"], "must be a positive integer"),
    (["predict", "--model", "m", "hi", "--batch-size", "-1"], "must be a positive integer"),
    (["predict", "--model", "m", "hi", "--labels", ","], "must not be empty"),
    (["predict", "--model", "m", "hi", "--labels", "a,b,a"], "must be distinct"),
    (["finetune", "--train", "TRAIN", "--epochs", "0"], "--epochs: must be a positive"),
    (["finetune", "--train", "TRAIN", "--lr", "-1"], "--lr: must be a positive number"),
    (["finetune", "--train", "TRAIN", "--lr", "nan"], "--lr: must be a positive number"),
    (["finetune", "--train", "TRAIN", "--max-length", "2"], "at least 3"),
    (["finetune", "--train", "TRAIN", "--validation-fraction", "1"], "below 1"),
    (["finetune", "--train", "TRAIN", "--out", ""], "--out: must name a folder"),
    (["finetune", "--train", "TRAIN", "--out", "TRAIN"], "exists and is not a folder"),
    (["finetune", "--train", "TRAIN", "--out", "TRAIN/sub"], "is a file, not a folder"),
    (["finetune", "--train", "TRAIN", "--no-header", "--text-column", "abc"],
     "--text-column 'abc': with --no-header, columns are 0-based numbers"),
    (["evaluate", "--model", "m", "--data", "TRAIN", "--batch-size", "0"], "positive integer"),
    (["pretrain", "--corpus", "TRAIN", "--out", ""], "--out: must name a folder"),
    (["pretrain", "--corpus", "TRAIN", "--heads", "0"], "--heads: must be a positive"),
    (["demo", "--epochs", "0"], "--epochs: must be a positive"),
])
def test_arguments_are_checked_before_any_work(argv, message, capsys, monkeypatch):
    """Each mistake stops the command while its line is parsed: no model is loaded, no data
    read (issue 12: before, --epochs 0 failed after loading, --out "" trained and saved
    nothing, --batch-size 0 or --file <folder> ended in a traceback)."""
    from minibert import checkpoint

    monkeypatch.setattr(checkpoint, "load_pretrained", lambda *a, **k: pytest.fail("loaded"))
    argv = [str(TICKETS / "train.tsv") if a == "TRAIN" else
            str(TICKETS / "train.tsv") + "/sub" if a == "TRAIN/sub" else a for a in argv]
    assert exit_code(argv) == 2
    assert message in capsys.readouterr().err


def test_unwritable_out_is_refused_before_work(tmp_path, capsys, monkeypatch):
    """As the read-only test below, but runnable as root: the permission check is simulated."""
    from minibert import cli

    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    assert exit_code(["finetune", "--train", str(TICKETS / "train.tsv"), "--out",
                      str(tmp_path / "run")]) == 2
    assert f"cannot write into {tmp_path}" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that bind (root may write anywhere)")
def test_read_only_out_is_refused_before_work(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert exit_code(["finetune", "--train", str(TICKETS / "train.tsv"), "--out",
                          str(locked / "run")]) == 2
        assert "cannot write into" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(minibert.cupy_available(),
                    reason="CuPy (real or simulated) is usable here: --device gpu works")
def test_device_gpu_without_cupy_is_a_clear_error(capsys):
    assert main(["predict", "--model", "x", "hi", "--device", "gpu"]) == 2
    assert "cupy" in capsys.readouterr().err.lower()


def test_single_class_training_file_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    from minibert import checkpoint

    monkeypatch.setattr(checkpoint, "load_pretrained", lambda *a, **k: pytest.fail("loaded"))
    one = tmp_path / "one.tsv"
    one.write_text("text\tlabel\nhello\tgreeting\nhi there\tgreeting\n", encoding="utf-8")
    assert main(["finetune", "--train", str(one), "--out", str(tmp_path / "run")]) == 2
    assert "every example has the label 'greeting'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------
# conventions: help with defaults, --version, python -m, transformers names, usage on errors,
# values checked first, --reinit-head, --no-progress


def _commands():
    import argparse

    from minibert.cli import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_every_flag_has_help_that_shows_its_default():
    for name, p in _commands().items():
        for action in p._actions:
            if not action.option_strings or action.help == "==SUPPRESS==":
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            if action.nargs != 0 and action.default is not None:
                text = action.help % dict(vars(action))
                shown = {str(action.default)} | ({f"{action.default:g}"} if isinstance(
                    action.default, float) else set())
                assert "default" in text and any(s in text for s in shown), (name, text)
    help_text = _commands()["pretrain"].format_help()
    for flag, default in [("--vocab-size", 8000), ("--layers", 2), ("--hidden", 128),
                          ("--heads", 2), ("--lr", "0.0005"), ("--out", "runs/pretrain")]:
        assert flag in help_text and f"(default: {default})" in help_text


def test_version_and_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "minibert", "--version"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"minibert {minibert.__version__}"


def test_transformers_names_work_in_the_commands_that_train(tmp_path):
    from minibert.cli import build_parser

    train = str(TICKETS / "train.tsv")
    args = build_parser().parse_args(
        ["finetune", "--train", train, "--learning_rate", "2e-5", "--num_train_epochs", "4",
         "--per_device_train_batch_size", "8", "--output_dir", str(tmp_path)])
    assert (args.lr, args.epochs, args.batch_size, args.out) == (2e-5, 4, 8, str(tmp_path))
    defaults = build_parser().parse_args(["finetune", "--train", train])
    assert (defaults.epochs, defaults.batch_size) == (3, 16)
    assert "also --learning_rate" in " ".join(_commands()["finetune"].format_help().split())


def test_finetune_learning_rate_defaults_to_one_that_suits_the_mode():
    # Full fine-tuning takes small steps from pre-trained θ; a head alone on a frozen encoder
    # barely moves at 5e-5 (lesson 14), so --freeze-encoder changes the default, not --lr.
    from minibert.cli import build_parser, finetune_lr

    train = str(TICKETS / "train.tsv")
    parse = build_parser().parse_args
    assert finetune_lr(parse(["finetune", "--train", train])) == 5e-5
    assert finetune_lr(parse(["finetune", "--train", train, "--freeze-encoder"])) == 1e-3
    assert finetune_lr(parse(["finetune", "--train", train, "--freeze-encoder",
                              "--lr", "3e-4"])) == 3e-4
    assert finetune_lr(parse(["finetune", "--train", train, "--learning_rate", "2e-5"])) == 2e-5
    help_text = " ".join(_commands()["finetune"].format_help().split())
    assert "(default: 5e-05; 0.001 with --freeze-encoder)" in help_text


def test_errors_show_the_commands_usage(capsys):
    for argv in (["finetune", "--train", str(TICKETS / "train.tsv"), "--bogus"],
                 ["predict", "--model", "m", "--per_device_train_batch_size", "8"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2
        assert f"usage: minibert {argv[0]}" in err and "unrecognized arguments" in err
        assert "usage: minibert [-h]" not in err


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--learning_rate", "0"], "--lr: must be a positive number"),
    (["--max-length", "2"], "--max-length"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio"),
])
def test_values_are_checked_before_anything_loads(flags, message, tmp_path, capsys):
    # neither the model nor the data exist: the bad value must be reported first
    with pytest.raises(SystemExit) as e:
        main(["finetune", *flags, "--model", str(tmp_path / "no-model"), "--train",
              str(tmp_path / "no-data.tsv")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and "usage: minibert finetune" in err
    assert "no-model" not in err and "no-data" not in err


def test_a_weights_file_as_model_says_to_pass_the_folder(tiny_pretrained, capsys):
    assert main(["predict", "--model", str(tiny_pretrained / "model.safetensors"), "hi"]) == 2
    err = capsys.readouterr().err
    assert "is a file; pass the folder that holds it" in err and str(tiny_pretrained) in err


def test_reinit_head_and_no_progress(tiny_pretrained, tmp_path, monkeypatch):
    import io

    rows = (TICKETS / "train.tsv").read_text(encoding="utf-8").splitlines()
    four = tmp_path / "four.tsv"
    four.write_text("\n".join(rows[:41]) + "\n", encoding="utf-8")
    classes = sorted({r.split("\t")[1] for r in rows[1:41]})
    assert len(classes) == 4
    three = tmp_path / "three.tsv"
    three.write_text("\n".join([rows[0]] + [r for r in rows[1:] if r.split("\t")[1] !=
                                            classes[0]][:30]) + "\n", encoding="utf-8")
    common = ["--epochs", "1", "--batch-size", "16", "--max-length", "32"]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["finetune", "--model", str(tiny_pretrained), "--train", str(four),
                 "--out", str(tmp_path / "run4"), *common]) == 0
    assert "epoch 1/1" in terminal.getvalue() and "\r" in terminal.getvalue()  # a bar

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    final4 = str(tmp_path / "run4" / "final")
    assert main(["finetune", "--model", final4, "--train", str(three), "--no-progress",
                 "--out", str(tmp_path / "run3"), *common]) == 2  # 4 outputs, 3 classes
    assert "--reinit-head" in terminal.getvalue() and "\r" not in terminal.getvalue()

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["finetune", "--model", final4, "--train", str(three), "--reinit-head",
                 "--no-progress", "--out", str(tmp_path / "run3"), *common]) == 0
    assert "ignore_mismatched_sizes" in terminal.getvalue()  # the note that says so
    assert "epoch 1/1" not in terminal.getvalue()  # --no-progress: no bar on a terminal
    config = json.loads((tmp_path / "run3" / "final" / "config.json").read_text())
    assert sorted(config["id2label"].values()) == classes[1:]


# -- labels never flip silently (issue 23) ----------------------------------------------------


def _pos_neg_classifier(tiny_pretrained, folder):
    """A classifier whose classes are named in unsorted order, {0: pos, 1: neg}."""
    from minibert.model import BertForSequenceClassification

    minibert.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertForSequenceClassification.from_pretrained(
            tiny_pretrained, id2label={0: "pos", 1: "neg"})
    model.classifier.b.data[:] = [2.0, -2.0]  # a clear preference, so a flip shows
    model.save_pretrained(folder)
    Tokenizer.from_pretrained(tiny_pretrained).save_pretrained(folder)
    return folder


def _predicted(capsys, *argv):
    assert main(["predict", *argv, "--json"]) == 0, capsys.readouterr().err
    return [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]


def test_continuing_to_finetune_keeps_each_head_row_with_its_name(tiny_pretrained, tmp_path,
                                                                  capsys):
    model = _pos_neg_classifier(tiny_pretrained, tmp_path / "posneg")
    texts = ["great stuff", "awful service", "fine"]
    before = _predicted(capsys, "--model", str(model), *texts)
    assert before == ["pos"] * 3
    data = tmp_path / "more.tsv"
    data.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in
                                               [("good", "pos"), ("bad", "neg")] * 4))
    assert main(["finetune", "--model", str(model), "--train", str(data), "--epochs", "1",
                 "--lr", "1e-9", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    capsys.readouterr()
    assert _predicted(capsys, "--model", str(tmp_path / "run" / "final"), *texts) == before
    # a classifier for other classes is not silently renamed: --reinit-head says so
    other = tmp_path / "other.tsv"
    other.write_text("text\tlabel\ngood\tyes\nbad\tno\n" * 1)
    assert main(["finetune", "--model", str(model), "--train", str(other), "--epochs", "1",
                 "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert "trained for the classes ['pos', 'neg']" in err and "--reinit-head" in err


def test_labels_that_disagree_with_the_models_names_need_rename_labels(tiny_pretrained,
                                                                       tmp_path, capsys):
    model = str(_pos_neg_classifier(tiny_pretrained, tmp_path / "posneg"))
    assert main(["predict", "--model", model, "--labels", "neg,pos", "hello"]) == 2
    err = capsys.readouterr().err
    assert "names the classes ['pos', 'neg']" in err and "--rename-labels" in err
    assert _predicted(capsys, "--model", model, "--labels", "pos,neg", "hello") == ["pos"]
    assert _predicted(capsys, "--model", model, "--labels", "neg,pos", "--rename-labels",
                      "hello") == ["neg"]
    # evaluate accepts the --labels its error message suggests (for a model without names)
    config = json.loads((tmp_path / "posneg" / "config.json").read_text())
    config["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
    config.pop("label2id", None)
    (tmp_path / "posneg" / "config.json").write_text(json.dumps(config))
    data = tmp_path / "eval.tsv"
    data.write_text("text\tlabel\ngood\tpos\nbad\tneg\n")
    assert main(["evaluate", "--model", model, "--data", str(data)]) == 2
    assert "--labels NAME,NAME" in capsys.readouterr().err
    assert main(["evaluate", "--model", model, "--data", str(data), "--labels", "pos,neg"]) == 0
    assert "accuracy 0.5000" in capsys.readouterr().out


# -- Ctrl-C and SIGTERM are a clean stop (issue 23) -------------------------------------------


def _start(*argv, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1",
           "PYTHONPATH": os.pathsep.join([str(minibert.__file__).rsplit(os.sep, 2)[0],
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "minibert", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stopped(process, signum):
    # Sent again if the program is still running 30 s later, as a user presses Ctrl-C again: on
    # a loaded CI machine a first SIGINT was once lost while `evaluate` waited on its pipe (not
    # reproduced; the stop itself must still be clean, which the asserts below check).
    for _ in range(4):
        process.send_signal(signum)
        try:
            process.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            continue
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    return err.strip().splitlines()[-1]  # the line that says what was saved (notes before)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX signals and named pipes")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_training_run_says_where_its_last_epoch_is(tmp_path, signum):
    corpus = tmp_path / "corpus.txt"
    lines = (TICKETS / "train.tsv").read_text(encoding="utf-8").splitlines()[1:120]
    corpus.write_text("\n".join(line.split("\t")[0] for line in lines), encoding="utf-8")
    out = tmp_path / "pre"
    process = _start("pretrain", "--corpus", str(corpus), "--vocab-size", "300", "--hidden",
                     "16", "--layers", "1", "--heads", "2", "--max-length", "32", "--epochs",
                     "100000", "--out", str(out), tmp_path=tmp_path)
    for line in process.stdout:  # wait until an epoch has been saved
        if line.startswith("epoch 2:"):
            break
    err = _stopped(process, signum)
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert f"minibert pretrain: stopped ({how}); the last finished epoch is saved in " in err
    assert "checkpoint-epoch-" in err and "--resume" in err
    assert not list(out.glob(".*"))  # no lock file, no temporary file left behind


def _open_when_read(pipe, process) -> int:
    """Open a named pipe for writing once `process` has opened it for reading."""
    import errno
    import time

    while process.poll() is None:
        try:
            return os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:  # ENXIO: no reader yet
            if e.errno != errno.ENXIO:
                raise
            time.sleep(0.05)
    raise AssertionError(f"the command ended without reading {pipe}: {process.communicate()}")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX signals and named pipes")
@pytest.mark.parametrize("command, signum", [("predict", signal.SIGTERM),
                                             ("evaluate", signal.SIGINT),
                                             ("finetune", signal.SIGTERM)])
def test_every_command_stops_cleanly(tiny_pretrained, tmp_path, command, signum):
    """Stopped while it reads its input (a named pipe that stays silent)."""
    pipe = tmp_path / "data.tsv"
    os.mkfifo(pipe)
    argv = {"predict": ["--file", str(pipe)], "evaluate": ["--data", str(pipe)],
            "finetune": ["--train", str(pipe), "--out", str(tmp_path / "run")]}[command]
    process = _start(command, "--model", str(tiny_pretrained), *argv, tmp_path=tmp_path)
    writer = _open_when_read(pipe, process)  # the command is running, waiting for its input
    try:
        err = _stopped(process, signum)
    finally:
        os.close(writer)
    how = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert err.startswith(f"minibert {command}: stopped ({how}); "), err
    if command == "finetune":
        assert "no checkpoint had been saved yet" in err
    else:
        assert "nothing was written" in err


# -- inputs that are not plain files, blank lines, seeds (issue 23) ----------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_read_like_a_file(tiny_pretrained, tmp_path, capsys):
    """`--train <(cat f)` said 'is a folder'; every reader reads its input once, so a pipe
    works (a device or a socket is refused by name)."""
    import threading

    pipe = tmp_path / "train.tsv"
    os.mkfifo(pipe)
    data = (TICKETS / "train.tsv").read_text(encoding="utf-8").splitlines()[:33]
    writer = threading.Thread(target=lambda: pipe.write_text("\n".join(data) + "\n"),
                              daemon=True)  # a refused pipe is never opened: no hang
    writer.start()
    assert main(["finetune", "--model", str(tiny_pretrained), "--train", str(pipe),
                 "--epochs", "1", "--max-length", "32", "--out", str(tmp_path / "run")]) == 0
    writer.join()
    assert (tmp_path / "run" / "final" / "config.json").is_file()
    assert exit_code(["finetune", "--train", "/dev/null", "--out", str(tmp_path / "x")]) == 2
    assert "neither a file nor a pipe" in capsys.readouterr().err
    assert exit_code(["finetune", "--train", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_predict_file_keeps_a_row_for_every_line(tiny_pretrained, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["finetune", "--model", str(tiny_pretrained), "--train",
                 str(TICKETS / "train.tsv"), "--epochs", "1", "--max-length", "32",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    texts = tmp_path / "texts.txt"
    texts.write_text("my card was charged twice\n\n   \nthe parcel never arrived\r\n")
    assert main(["predict", "--model", str(out / "final"), "--file", str(texts),
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["my card was charged twice", "", "   ",
                                         "the parcel never arrived"]
    assert [r["label"] is None for r in rows] == [False, True, True, False]
    assert rows[1]["probabilities"] is None and len(rows[3]["probabilities"]) == 4
    assert main(["predict", "--model", str(out / "final"), "--file", str(texts)]) == 0
    table = capsys.readouterr().out.splitlines()[2:]
    assert len(table) == 4 and "(no text)" in table[1] and "(no text)" in table[2]


@pytest.mark.parametrize("value", ["-1", str(2**32), "1.5"])
def test_a_bad_seed_names_the_flag(value, capsys):
    assert exit_code(["predict", "--model", "x", "--seed", value, "hi"]) == 2
    assert "argument --seed" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        from minibert.train import TrainConfig

        TrainConfig(seed=-1)


def test_error_messages_show_control_characters_escaped(tmp_path, capsys):
    """A message that quotes a name (here a folder's) must not clear the screen."""
    assert main(["predict", "--model", str(tmp_path / "gone\x1b[2J\x1b]0;title\x07"),
                 "hi"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "gone\\x1b[2J" in err
