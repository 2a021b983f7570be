"""A training folder (issue 12): only our own names are read or removed, an earlier run is never
replaced by accident, the best and the latest epoch are kept, leftovers of a killed run are
cleaned up, kills during checkpoint rotation resume bit for bit, and resuming on other data is
refused."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_train import FAST, make_task, tiny_classifier

from minibert import run_state
from minibert.cli import main
from minibert.fileio import SymlinkError
from minibert.optim import AdamW
from minibert.run_state import (
    RunStateError,
    clean_leftovers,
    latest_run_state,
    read_latest,
)
from minibert.tokenizer import Tokenizer
from minibert.train import TrainConfig, finetune

TRAIN, VAL = make_task(64, seed=1), make_task(12, seed=2)  # 4 steps per epoch
OPTS = dict(FAST, epochs=3, seed=5)


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(make_task(300, seed=99).texts, vocab_size=200)


def run(tokenizer, out, **kw):
    model = tiny_classifier(tokenizer, seed=5)
    history = finetune(model, tokenizer, TRAIN, VAL, out_dir=str(out), **{**OPTS, **kw})
    return model, history


@pytest.fixture(scope="module")
def reference(tokenizer, tmp_path_factory):
    """An uninterrupted 3-epoch run: what every killed and resumed run must reproduce."""
    model, history = run(tokenizer, tmp_path_factory.mktemp("full"))
    return model.state_dict(), [s["loss"] for s in history["steps"]]


def assert_same_run(model, history, reference):
    weights, losses = reference
    for name, value in weights.items():
        np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    assert [s["loss"] for s in history["steps"]] == losses


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- 1. latest.json is never trusted as a path ---------------------------------------------------


@pytest.mark.parametrize("pointer", ["../victim", "/tmp/victim", ".", "", "checkpoint-epoch-0",
                                     "checkpoint-epoch-1/../../victim", 3, ["x"], None])
def test_latest_json_may_only_name_our_checkpoint_folders(tokenizer, tmp_path, pointer):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "latest.json").write_text(json.dumps({"checkpoint": pointer}))
    (out / "mine.txt").write_text("the user's")
    with pytest.raises(RunStateError, match=r"latest\.json: 'checkpoint' is .* not the name"):
        read_latest(out)
    with pytest.raises(RunStateError, match=r"latest\.json"):  # resume: refused, before work
        run(tokenizer, out, resume=True, epochs=1)
    with pytest.raises(RunStateError, match="already holds a training run"):  # a fresh run too
        run(tokenizer, out, epochs=1)
    assert (victim / "precious.txt").read_text() == "keep me"
    run(tokenizer, out, overwrite=True, epochs=2)  # replaced without reading the bad pointer
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (out / "mine.txt").read_text() == "the user's"
    assert read_latest(out)["checkpoint"] == "checkpoint-epoch-2"


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"), ("[1, 2]", "expected"), ("[" * 100_000, "nested too"),
    ('{"checkpoint": "checkpoint-epoch-1", "best": "../x", "best_by": "l", "best_value": 1}',
     "'best' is '../x'"),
    ('{"checkpoint": "checkpoint-epoch-1", "best": "checkpoint-epoch-1"}', "'best' needs"),
])
def test_corrupt_latest_json_is_a_clear_error(tokenizer, tmp_path, content, match):
    run(tokenizer, tmp_path, epochs=1)
    (tmp_path / "latest.json").write_text(content)
    with pytest.raises(RunStateError, match=match) as e:
        run(tokenizer, tmp_path, resume=True)
    assert str(tmp_path / "latest.json") in str(e.value)


@pytest.mark.parametrize("change, match", [
    (lambda s: "garbage", "not valid JSON"),
    (lambda s: "[]", "not a trainer state"),
    (lambda s: json.dumps({**json.loads(s), "epoch": "2"}), r"\['epoch'\]"),
    (lambda s: json.dumps({k: v for k, v in json.loads(s).items() if k != "data_rng"}),
     "data_rng"),
    (lambda s: json.dumps({**json.loads(s), "optimizer": {"lr": 1}}), "optimizer state"),
])
def test_corrupt_trainer_state_is_a_clear_error(tokenizer, tmp_path, change, match):
    run(tokenizer, tmp_path, epochs=1)
    path = tmp_path / "checkpoint-epoch-1" / "run_state.json"
    path.write_text(change(path.read_text()))
    with pytest.raises(RunStateError, match=match) as e:
        run(tokenizer, tmp_path, resume=True)
    assert "checkpoint-epoch-1" in str(e.value)


def test_latest_json_naming_a_missing_folder_never_starts_over(tokenizer, tmp_path):
    run(tokenizer, tmp_path, epochs=1)
    shutil.rmtree(tmp_path / "checkpoint-epoch-1")
    with pytest.raises(RunStateError, match="run_state.json is missing"):
        latest_run_state(tmp_path)


# -- 2. an earlier run is never replaced by accident ----------------------------------------------


def test_a_rerun_without_resume_is_refused_and_overwrite_is_explicit(tokenizer, tmp_path):
    run(tokenizer, tmp_path, epochs=2)
    (tmp_path / "notes.txt").write_text("mine")
    before = {p: (tmp_path / p).read_bytes() for p in tree(tmp_path) if (tmp_path / p).is_file()}
    with pytest.raises(RunStateError, match=r"already holds a training run \(checkpoint-epoch-2"
                                            r".*--resume.*--overwrite"):
        run(tokenizer, tmp_path, epochs=2)
    assert {p: (tmp_path / p).read_bytes() for p in before} == before  # nothing touched
    run(tokenizer, tmp_path, epochs=1, overwrite=True)
    assert read_latest(tmp_path)["checkpoint"] == "checkpoint-epoch-1"
    assert not (tmp_path / "checkpoint-epoch-2").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not ours: never removed
    (tmp_path / "final" / "my-notes.md").write_text("mine too")
    with pytest.raises(RunStateError, match=r"final holds files a run does not write"):
        run(tokenizer, tmp_path, epochs=1, overwrite=True)
    with pytest.raises(ValueError, match="exclude each other"):
        TrainConfig(out_dir=str(tmp_path), resume=True, overwrite=True)


def test_cli_refuses_a_rerun_before_loading_anything(tmp_path, capsys, monkeypatch):
    from minibert import checkpoint
    from minibert.datasets import support_tickets_dir

    out = tmp_path / "run"
    out.mkdir()
    (out / "latest.json").write_text('{"checkpoint": "checkpoint-epoch-1"}')
    monkeypatch.setattr(checkpoint, "load_pretrained", lambda *a, **k: pytest.fail("loaded"))
    train = str(support_tickets_dir() / "train.tsv")
    assert main(["finetune", "--train", train, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["finetune", "--train", train, "--out", str(out), "--resume",
                 "--overwrite"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_empty_out_dir_is_an_error():
    with pytest.raises(ValueError, match="out_dir is empty"):
        TrainConfig(out_dir="")


# -- 4. the best epoch is kept beside the latest --------------------------------------------------


def test_divergence_to_a_huge_finite_loss_keeps_the_good_epoch(tokenizer, tmp_path, capsys):
    model = tiny_classifier(tokenizer, seed=5)
    good = {}

    def log(record):  # early in epoch 2, blow the head up: huge but finite losses from then on
        if record["event"] == "epoch" and record["epoch"] == 1:
            good.update(model.state_dict())  # what epoch 1's folder holds
        if record["event"] == "step" and record["step"] == 5:
            model.classifier.W.data *= 1e6

    finetune(model, tokenizer, TRAIN, VAL, out_dir=str(tmp_path), log=log, **OPTS)
    pointer = read_latest(tmp_path)
    assert pointer["checkpoint"] == "checkpoint-epoch-3"
    assert pointer["best"] == "checkpoint-epoch-1" and pointer["best_by"] == "eval loss"
    assert sorted(p.name for p in tmp_path.glob("checkpoint-epoch-*")) == [
        "checkpoint-epoch-1", "checkpoint-epoch-3"]  # epoch 2: neither best nor latest
    best = tiny_classifier(tokenizer).from_pretrained(tmp_path / "checkpoint-epoch-1")
    for name, value in good.items():
        np.testing.assert_array_equal(best.state_dict()[name], value, err_msg=name)
    assert "best epoch by eval loss" in capsys.readouterr().err


def test_without_evaluation_the_best_is_by_training_loss(tokenizer, tmp_path):
    model = tiny_classifier(tokenizer, seed=5)
    finetune(model, tokenizer, TRAIN, out_dir=str(tmp_path), **OPTS)
    pointer = read_latest(tmp_path)
    assert pointer["best_by"] == "train loss" and pointer["checkpoint"] == "checkpoint-epoch-3"
    assert {p.name for p in tmp_path.glob("checkpoint-epoch-*")} == {pointer["checkpoint"],
                                                                     pointer["best"]}


# -- 5. kills during checkpoint rotation, and what they leave behind ------------------------------


class Kill(KeyboardInterrupt):
    pass


def _kill_in_rmtree(monkeypatch):
    """The removal of the old folder is killed half-way: some files gone, then the kill."""
    real = shutil.rmtree

    def rmtree(path, *a, **k):
        files = sorted(p for p in path.rglob("*") if p.is_file())
        files[0].unlink()  # a half-deleted folder
        monkeypatch.setattr(run_state.shutil, "rmtree", real)
        raise Kill("killed while deleting")
    monkeypatch.setattr(run_state.shutil, "rmtree", rmtree)


def _kill_before_removal(monkeypatch):
    """Killed after latest.json moved on, before the old folder was touched."""
    def remove(folder):
        monkeypatch.setattr(run_state, "remove_folder", real)
        raise Kill("killed before removing")
    real = run_state.remove_folder
    monkeypatch.setattr(run_state, "remove_folder", remove)


def _kill_while_writing(monkeypatch):
    """Killed while the new folder is half-written (its optimizer state not yet saved)."""
    real = run_state.save_file

    def save_file(tensors, path, **k):
        (path.parent / f".{path.name}.0123456789ab.tmp").write_bytes(b"half")  # as atomic_open
        monkeypatch.setattr(run_state, "save_file", real)
        raise Kill("killed while writing")
    monkeypatch.setattr(run_state, "save_file", save_file)


@pytest.mark.parametrize("kill", [_kill_in_rmtree, _kill_before_removal, _kill_while_writing])
def test_kill_during_checkpoint_rotation_resumes_bit_identically(tokenizer, tmp_path, reference,
                                                                 monkeypatch, kill):
    def log(record):  # arm the kill at the end of epoch 2, just before its folder is saved
        if record["event"] == "epoch" and record["epoch"] == 2:
            kill(monkeypatch)

    with pytest.raises(Kill):
        run(tokenizer, tmp_path, log=log)
    (tmp_path / ".notes.tmp").write_text("not ours: the name has no 12-hex-digit token")
    model, history = run(tokenizer, tmp_path, resume=True)
    assert_same_run(model, history, reference)
    names = {p.name for p in tmp_path.iterdir()}
    assert not any(n.startswith(".trash-") or n.endswith("ab.tmp") for n in names), names
    assert {n for n in names if n.startswith("checkpoint-")} <= {"checkpoint-epoch-1",
                                                                "checkpoint-epoch-3"}
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("checkpoint-*/*"))
    assert (tmp_path / ".notes.tmp").is_file()


def test_clean_leftovers_touches_only_our_names(tmp_path):
    (tmp_path / "checkpoint-epoch-4").mkdir()  # no latest.json names it: half-written
    (tmp_path / ".trash-checkpoint-epoch-1-0123456789ab").mkdir()
    (tmp_path / ".history.json.0123456789ab.tmp").write_text("x")
    for name in ("checkpoint-epoch-x", ".trash-mine", "keep.tmp", ".a.12345.tmp", "final.txt"):
        (tmp_path / name).write_text("the user's")
    removed = clean_leftovers(tmp_path)
    assert sorted(removed) == [".history.json.0123456789ab.tmp",
                               ".trash-checkpoint-epoch-1-0123456789ab", "checkpoint-epoch-4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint-epoch-x", ".trash-mine", "keep.tmp", ".a.12345.tmp", "final.txt"])
    with pytest.raises(ValueError, match="refusing to remove"):
        run_state.remove_folder(tmp_path / "keep.tmp")


# -- 11. a run remembers what it was trained on ---------------------------------------------------


def test_resume_on_other_data_or_vocabulary_is_refused(tokenizer, tmp_path, capsys):
    run(tokenizer, tmp_path, epochs=1)
    model = tiny_classifier(tokenizer, seed=5)
    other = make_task(64, seed=7)
    with pytest.raises(RunStateError, match="the training data differ"):
        finetune(model, tokenizer, other, VAL, out_dir=str(tmp_path), resume=True, **OPTS)
    bigger = Tokenizer(tokenizer.ids_to_tokens + ["zzz"])
    with pytest.raises(RunStateError, match="the vocabulary differ"):
        finetune(tiny_classifier(bigger, seed=5), bigger, TRAIN, VAL, out_dir=str(tmp_path),
                 resume=True, **OPTS)
    finetune(model, tokenizer, other, VAL, out_dir=str(tmp_path), resume=True,
             allow_data_change=True, **OPTS)
    assert "allow_data_change" in capsys.readouterr().err
    assert read_latest(tmp_path)["checkpoint"] == "checkpoint-epoch-3"


def test_pretrain_resume_keeps_its_vocabulary_and_refuses_a_changed_corpus(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(make_task(80, seed=3).texts), encoding="utf-8")
    out = tmp_path / "pre"
    args = ["pretrain", "--corpus", str(corpus), "--vocab-size", "120", "--hidden", "16",
            "--layers", "1", "--heads", "2", "--max-length", "16", "--out", str(out)]
    assert main([*args, "--epochs", "1"]) == 0
    vocab = (out / "checkpoint-epoch-1" / "vocab.txt").read_text()
    corpus.write_text("\n".join(make_task(80, seed=4).texts) + "\nnew words here\n",
                      encoding="utf-8")
    capsys.readouterr()
    assert main([*args, "--epochs", "2", "--resume"]) == 2
    assert "the training data differ" in capsys.readouterr().err
    corpus.write_text("\n".join(make_task(80, seed=3).texts), encoding="utf-8")
    assert main([*args, "--epochs", "2", "--resume"]) == 0  # the same corpus: it continues
    assert (out / "checkpoint-epoch-2" / "vocab.txt").read_text() == vocab


def test_symbolic_links_are_never_followed_for_removal(tokenizer, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint-epoch-7").symlink_to(victim)  # looks like ours, points elsewhere
    (out / ".trash-checkpoint-epoch-1-0123456789ab").symlink_to(victim)
    assert clean_leftovers(out) == []
    with pytest.raises(RunStateError, match="symbolic link"):
        run_state.remove_folder(out / "checkpoint-epoch-7")
    with pytest.raises(RunStateError, match="already holds a training run"):
        run(tokenizer, out, epochs=1)
    with pytest.raises(RunStateError, match="symbolic link"):
        run(tokenizer, out, epochs=1, overwrite=True)
    assert (victim / "precious.txt").read_text() == "keep me"


# -- 6. the run's own file name, and how much a run keeps (issue 25) -----------------------------


def _stop_after_epoch(n):
    def log(record):
        if record["event"] == "step" and record["epoch"] == n + 1:
            raise Kill(f"stopped in epoch {n + 1}")
    return log


def test_the_run_state_does_not_take_transformers_file_name(tokenizer, tmp_path):
    """transformers' TrainerState.load_from_json reads trainer_state.json with its own fields;
    ours (config, data_rng, history, ...) would fail there: it is run_state.json."""
    run(tokenizer, tmp_path, epochs=1)
    folder = tmp_path / "checkpoint-epoch-1"
    assert (folder / "run_state.json").is_file()
    assert not list(tmp_path.rglob("trainer_state.json"))
    transformers = pytest.importorskip("transformers", reason="compares with TrainerState")
    with pytest.raises(TypeError):  # what a transformers tool would have met under its name
        transformers.TrainerState.load_from_json(str(folder / "run_state.json"))


def test_a_run_saved_before_0_2_0_still_resumes(tokenizer, tmp_path, reference):
    """Its folders hold trainer_state.json (our layout) and latest.json has no "kept"."""
    with pytest.raises(Kill):
        run(tokenizer, tmp_path, log=_stop_after_epoch(1))
    folder = tmp_path / "checkpoint-epoch-1"
    (folder / "run_state.json").rename(folder / "trainer_state.json")
    pointer = read_latest(tmp_path)
    (tmp_path / "latest.json").write_text(json.dumps(
        {k: v for k, v in pointer.items() if k != "kept"}))
    model, history = run(tokenizer, tmp_path, resume=True)
    assert_same_run(model, history, reference)


@pytest.mark.parametrize("limit, kept", [
    (None, [f"checkpoint-epoch-{i}" for i in (1, 2, 3, 4)]),
    (3, ["checkpoint-epoch-1", "checkpoint-epoch-3", "checkpoint-epoch-4"]),
    (2, ["checkpoint-epoch-1", "checkpoint-epoch-4"]),
    (1, ["checkpoint-epoch-4"]),
])
def test_save_total_limit_keeps_the_latest_then_the_best_then_the_most_recent(
        tokenizer, tmp_path, limit, kept):
    model = tiny_classifier(tokenizer, seed=5)
    optimizer = AdamW(model.parameters(), lr=1e-3)
    for epoch, loss in enumerate([0.1, 0.5, 0.4, 0.3], start=1):  # epoch 1 stays the best
        run_state.save_run_state(tmp_path, f"checkpoint-epoch-{epoch}", model, optimizer,
                                 {"epoch": epoch}, tokenizer, ("eval loss", loss),
                                 save_total_limit=limit)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-epoch-*")) == kept
    pointer = read_latest(tmp_path)
    assert pointer["kept"] == kept and pointer["checkpoint"] == "checkpoint-epoch-4"
    assert pointer.get("best") == (None if limit == 1 else "checkpoint-epoch-1")
    clean_leftovers(tmp_path)  # what latest.json lists is never taken for a leftover
    assert sorted(p.name for p in tmp_path.glob("checkpoint-epoch-*")) == kept


@pytest.mark.parametrize("bad", [0, -1, True])
def test_save_total_limit_must_keep_something(bad):
    with pytest.raises(ValueError, match="save_total_limit must be >= 1.*save_strategy='no'"):
        TrainConfig(save_total_limit=bad)
    with pytest.raises(ValueError, match="save_strategy must be 'epoch'.*or 'no'"):
        TrainConfig(save_strategy="steps")


def test_save_only_model_keeps_no_optimizer_state_and_resume_says_why(tokenizer, tmp_path):
    with pytest.raises(Kill):
        run(tokenizer, tmp_path, log=_stop_after_epoch(1), save_only_model=True)
    folder = tmp_path / "checkpoint-epoch-1"
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors",
                                                  "vocab.txt", "tokenizer_config.json",
                                                  "run_state.json"}
    tiny_classifier(tokenizer).from_pretrained(folder)  # still a model folder
    for attempt in (lambda: run(tokenizer, tmp_path, resume=True),
                    lambda: run_state.check_out_dir(tmp_path, resume=True, overwrite=False)):
        with pytest.raises(RunStateError, match=r"cannot resume from .*checkpoint-epoch-1: it "
                                                r"was saved with save_only_model.*--model"):
            attempt()
    (folder / "run_state.json").write_text(
        (folder / "run_state.json").read_text().replace('"save_only_model": true',
                                                        '"save_only_model": false'))
    with pytest.raises(RunStateError, match="its optimizer.safetensors is missing"):
        run(tokenizer, tmp_path, resume=True)


def test_save_strategy_no_writes_no_checkpoint(tokenizer, tmp_path):
    run(tokenizer, tmp_path, epochs=2, save_strategy="no")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final", "history.json"]
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 2
    with pytest.raises(RunStateError, match="already holds a training run"):
        run(tokenizer, tmp_path, epochs=1)


def test_cli_save_flags_and_their_transformers_names(tmp_path):
    from minibert.cli import _finetune_options, build_parser

    parser = build_parser()
    for argv in (["--save-total-limit", "3", "--save-only-model", "--save-strategy", "no"],
                 ["--save_total_limit", "3", "--save_only_model", "--save_strategy", "no"]):
        args = parser.parse_args(["finetune", "--train", __file__, *argv])
        options = _finetune_options(args)
        assert (options["save_total_limit"], options["save_only_model"],
                options["save_strategy"]) == (3, True, "no")
        args = parser.parse_args(["pretrain", "--corpus", __file__, *argv])
        assert (args.save_total_limit, args.save_only_model, args.save_strategy) == (3, True, "no")
    args = parser.parse_args(["finetune", "--train", __file__, "--save-total-limit", "all"])
    assert _finetune_options(args)["save_total_limit"] is None
    defaults = _finetune_options(parser.parse_args(["finetune", "--train", __file__]))
    assert (defaults["save_total_limit"], defaults["save_only_model"],
            defaults["save_strategy"]) == (2, False, "epoch")
    with pytest.raises(SystemExit):
        parser.parse_args(["finetune", "--train", __file__, "--save-total-limit", "0"])
# -- one writer per folder, never through a link (issue 23) ------------------------------------


def test_a_folder_in_use_by_another_run_is_refused_naming_it(tokenizer, tmp_path):
    """Two runs on one --out both 'succeeded' while one deleted the other's checkpoints."""
    out = tmp_path / "out"
    out.mkdir()
    held = run_state.lock_out_dir(out)  # another run, as far as the lock is concerned
    try:
        with pytest.raises(RunStateError, match=r"in use by another training run \(pid "
                                                rf"{os.getpid()} on .*\); one folder takes one"):
            run(tokenizer, out, epochs=1)
        with pytest.raises(RunStateError, match="in use by another training run"):
            run_state.check_out_dir(out, resume=False, overwrite=False)
        assert sorted(p.name for p in out.iterdir()) == [run_state.LOCK]  # nothing written
    finally:
        os.close(held)  # as a killed holder would: the lock file stays, unlocked
    assert (out / run_state.LOCK).is_file()
    run(tokenizer, out, epochs=1)  # a stale lock file is no lock
    assert not (out / run_state.LOCK).exists()  # removed when the run ended
    assert (out / "final" / "model.safetensors").is_file()
    with pytest.raises(RunStateError, match="already holds a training run"):
        run(tokenizer, out, epochs=1)  # and the lock was released at the end of the run


def test_a_lock_held_by_another_process_is_refused(tokenizer, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'{\"pid\": 1, \"host\": \"h\", "
            "\"command\": \"minibert pretrain\", \"started\": \"now\"}'); print('held', "
            "flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out / run_state.LOCK)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunStateError, match=r"pid 1 on h, started now: minibert pretrain"):
            run(tokenizer, out, epochs=1)
    finally:
        holder.communicate("")
    run(tokenizer, out, epochs=1)  # the holder is gone, and so is its lock


def test_a_link_inside_out_dir_is_never_written_through(tokenizer, tmp_path):
    """A symlink final -> ../victim made a resumed run overwrite the victim's files."""
    out = tmp_path / "out"
    run(tokenizer, out, epochs=1)
    victim = tmp_path / "victim"
    shutil.copytree(out / "final", victim)
    before = {p.name: p.read_bytes() for p in victim.iterdir()}
    shutil.rmtree(out / "final")
    (out / "final").symlink_to(victim)
    with pytest.raises(RunStateError, match=r"symbolic links where a run writes.*final"):
        run(tokenizer, out, epochs=2, resume=True)
    with pytest.raises(RunStateError, match="symbolic link"):
        run(tokenizer, out, epochs=2, overwrite=True)
    assert {p.name: p.read_bytes() for p in victim.iterdir()} == before
    (out / "final").unlink()
    # a file inside a checkpoint folder: a link there is refused too
    (out / "checkpoint-epoch-1" / "vocab.txt").rename(tmp_path / "vocab.txt")
    (out / "checkpoint-epoch-1" / "vocab.txt").symlink_to(tmp_path / "vocab.txt")
    with pytest.raises(RunStateError, match=r"checkpoint-epoch-1/vocab\.txt"):
        run(tokenizer, out, epochs=2, resume=True)
    # and the file writer itself never writes through one, whoever calls it
    with pytest.raises(SymlinkError, match="symbolic link"):
        run_state.write_json(out / "checkpoint-epoch-1" / "vocab.txt", {})
    assert (tmp_path / "vocab.txt").read_text().startswith("[PAD]")


def test_latest_json_never_names_a_link(tokenizer, tmp_path):
    out = tmp_path / "out"
    run(tokenizer, out, epochs=1)
    (out / "checkpoint-epoch-1").rename(tmp_path / "elsewhere")
    (out / "checkpoint-epoch-1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunStateError, match="'checkpoint-epoch-1' is a symbolic link"):
        run_state.latest_run_state(out)


def test_a_link_as_the_lock_file_or_a_dangling_out_dir_is_refused(tokenizer, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / run_state.LOCK).symlink_to(tmp_path / "victim.lock")
    with pytest.raises(RunStateError, match=r"symbolic links.*\.minibert-run\.lock"):
        run(tokenizer, out, epochs=1)
    with pytest.raises(SymlinkError):
        run_state.lock_out_dir(out)
    assert not (tmp_path / "victim.lock").exists()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "missing")
    with pytest.raises(RunStateError, match="symbolic link to .*missing, which does not exist"):
        run(tokenizer, dangling, epochs=1)
    data = tmp_path / "train.tsv"
    data.write_text("text\tlabel\na\tx\n")
    with pytest.raises(SystemExit) as stop:
        main(["finetune", "--train", str(data), "--out", str(dangling)])
    assert stop.value.code == 2 and "which does not exist" in capsys.readouterr().err


def test_a_run_that_never_fits_holds_no_lock(tokenizer, tmp_path):
    """The lock is taken by fit, not by building the run: a notebook whose data step failed
    after the run was built can try again in the same folder."""
    from minibert.train import TrainingRun

    built = TrainingRun(tiny_classifier(tokenizer), TrainConfig(**OPTS, out_dir=str(tmp_path)),
                        len(TRAIN), {"task": "finetune"})
    assert built.lock is None and not (tmp_path / run_state.LOCK).exists()
    run(tokenizer, tmp_path, epochs=1)
