"""The command line, run end to end on small data and tiny models."""

import json
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
    assert "4 classes" in printed.out and "epoch 1: train loss" in printed.out  # results
    assert "note: " in printed.err and "fresh random initialisation" in printed.err  # notes
    assert "note" not in printed.out
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


def test_bad_inputs_give_one_clear_line(tiny_pretrained, tmp_path, capsys):
    assert main(["finetune", "--model", str(tiny_pretrained), "--train",
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
    assert "no label names" in capsys.readouterr().err

    assert main(["predict", "--model", str(tmp_path / "nowhere"), "hello"]) == 2
    assert "config.json" in capsys.readouterr().err


@pytest.mark.skipif(minibert.cupy_available(),
                    reason="CuPy (real or simulated) is usable here: --device gpu works")
def test_device_gpu_without_cupy_is_a_clear_error(capsys):
    assert main(["predict", "--model", "x", "hi", "--device", "gpu"]) == 2
    assert "cupy" in capsys.readouterr().err.lower()
