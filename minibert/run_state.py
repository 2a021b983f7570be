"""A training run's state on disk: what `resume=True` needs to continue a stopped run exactly.

After every epoch the training loop (train.py) saves the model, the optimizer's state and its
own counters into a new folder of ``out_dir``:

    out_dir/latest.json                                 {"checkpoint": "checkpoint-epoch-2"}
    out_dir/checkpoint-epoch-2/config.json              the model, as save_pretrained writes it:
    out_dir/checkpoint-epoch-2/model.safetensors          Hugging Face's names and layouts
    out_dir/checkpoint-epoch-2/vocab.txt                the tokenizer, as in final/
    out_dir/checkpoint-epoch-2/tokenizer_config.json
    out_dir/checkpoint-epoch-2/optimizer.safetensors    AdamW's m and v (not with save_only_model)
    out_dir/checkpoint-epoch-2/run_state.json           epoch, step, data RNG state, history, ...

So every epoch's folder is also a model folder: ``from_pretrained`` opens it, in minibert and in
transformers, like ``final/`` (and like the checkpoint-N folders of transformers' Trainer, which
keep the optimizer beside the model too). The loop's own counters are in ``run_state.json``, not
in transformers' file name ``trainer_state.json``, whose layout (TrainerState) is another: a
transformers tool that reads that name would fail on ours. Folders written before 0.2.0 hold
``trainer_state.json`` in minibert's layout; they are still read, to resume.

Each file is written atomically, into a new folder; only then does latest.json (itself written
atomically) point at it, and only then are folders no longer needed removed. A crash at any
moment leaves latest.json pointing at complete folders.

By default two folders are kept: the latest (to resume from) and the best so far (the lowest
evaluation loss, or training loss without evaluation), as transformers' Trainer does with
save_total_limit and load_best_model_at_end. A run that diverges to a huge but finite loss
so keeps its good epoch. ``save_total_limit`` (transformers' name) sets how many: the latest
and the best always, and the most recent others in the remaining places (3: the latest, the
best and the one before the latest); 1 keeps the latest only, None every epoch's.
latest.json says which is which, and lists every folder kept:

    {"checkpoint": "checkpoint-epoch-3", "best": "checkpoint-epoch-1",
     "best_by": "eval loss", "best_value": 0.41,
     "kept": ["checkpoint-epoch-1", "checkpoint-epoch-3"]}

``save_only_model`` (transformers' name) leaves the optimizer's state out (a MiniLM folder:
91 MB of weights, 182 MB of AdamW's m and v): the folder is a model folder still, but the run
cannot resume from it, and says so.

Only names this code writes are ever read or removed: latest.json may name nothing but a
``checkpoint-epoch-N`` folder directly inside out_dir (anything else is an error naming the
file), and nothing outside out_dir is touched. A folder is removed by renaming it to a hidden
``.trash-...`` name first, then deleting it: a kill half-way leaves a name that the next start
recognises and removes (``clean_leftovers``), as it removes the temporary files of writes that
a kill interrupted and checkpoint folders that latest.json no longer names.

One writer per folder: a run holds an exclusive lock (``fcntl.flock``) on
``out_dir/.minibert-run.lock`` from before it touches anything until its final model is saved;
the file says which process holds it (pid, host, command, start). A second run on the same
folder stops with an error naming the first. The run removes the file when it ends; the
kernel drops the lock when the process ends, however it ends, so a killed run leaves no stale
lock (the file stays, unlocked, and the next run takes it).

Nothing is written through a symbolic link: out_dir's own entries (the checkpoint folders,
final/, latest.json, history.json, the lock file) and the files in those folders are never
links when this code writes them, so a link found there (``final -> ../victim``) is refused
before the run starts; it is not followed, replaced or deleted. latest.json never names a link.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .checkpoint import Model, state_dict_from_hf
from .fileio import SymlinkError, atomic_write, parse_json, refuse_symlink, short_repr

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .optim import Optimizer
    from .tokenizer import Tokenizer

try:
    import fcntl
except ImportError:  # Windows: no flock; a run folder is then not locked
    fcntl = None  # type: ignore[assignment]
from .safetensors_io import load_file, save_file

LATEST = "latest.json"
LOCK = ".minibert-run.lock"
HISTORY = "history.json"
FINAL = "final"
CHECKPOINT = re.compile(r"checkpoint-epoch-[1-9][0-9]{0,8}")  # the only folder names we write
# what save_pretrained and the tokenizer write into a model folder (final/), and nothing else
MODEL_FILES = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}
RUN_STATE = "run_state.json"  # the loop's counters, beside the model in each checkpoint folder
OLD_RUN_STATE = "trainer_state.json"  # its name before 0.2.0 (transformers' name): still read
OPTIMIZER = "optimizer.safetensors"
_TEMP = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")  # fileio.atomic_open's temporary files
_TRASH = re.compile(r"\.trash-(checkpoint-epoch-[0-9]+|final)-[0-9a-f]{12}")  # remove_folder


class RunStateError(ValueError):
    """A training folder whose saved state cannot be used as it is; the message names the file
    and says what to do."""


def save_run_state(out_dir: str | os.PathLike[str], name: str, model: Model, optimizer: Optimizer,
                   trainer_state: dict,
                   tokenizer: Tokenizer | None = None, score: tuple[str, float] | None = None,
                   save_total_limit: int | None = 2, save_only_model: bool = False) -> Path:
    """Write folder out_dir/name and point latest.json at it; folders no longer needed go.

    trainer_state: the loop's counters (JSON-serialisable). tokenizer: saved beside the model
    (anything with save_pretrained), so the folder is a complete model folder. score: (what,
    value) of this epoch, lower is better (e.g. ("eval loss", 0.41)): the best folder so far is
    kept beside the latest. save_total_limit: how many folders to keep (see the module's
    docstring; None: all). save_only_model: no optimizer state (the run cannot resume from
    this folder). Returns the new folder.
    """
    out_dir = Path(out_dir)
    if not CHECKPOINT.fullmatch(name):
        raise ValueError(f"checkpoint folder name {name!r}; expected checkpoint-epoch-N")
    folder = own_folder(out_dir / name)
    model.save_pretrained(folder)  # config.json + model.safetensors (Hugging Face's names)
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(folder)
    arrays, scalars = _split_optimizer_state(optimizer.state_dict())
    if not save_only_model:
        save_file(arrays, folder / OPTIMIZER)
    write_json(folder / RUN_STATE, dict(trainer_state, optimizer=scalars,
                                        save_only_model=save_only_model))

    pointer = read_latest(out_dir) or {}
    latest: dict[str, Any] = {"checkpoint": name}
    best = pointer.get("best")
    if score is not None and _finite(score[1]) and save_total_limit != 1:
        if best is None or pointer.get("best_by") != score[0] or score[1] < pointer["best_value"]:
            best = {"best": name, "best_by": score[0], "best_value": score[1]}
        else:
            best = {k: pointer[k] for k in ("best", "best_by", "best_value")}
        latest.update(best)
    before = kept_folders(pointer)
    latest["kept"] = _rotate(before + [name], latest.get("best"), save_total_limit)
    write_json(out_dir / LATEST, latest)
    for old in before:
        if old not in latest["kept"]:
            remove_folder(out_dir / old)
    return folder


def _epoch_number(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def kept_folders(pointer: dict | None) -> list[str]:
    """The checkpoint folders latest.json keeps, oldest first ([] for None). A latest.json
    of minibert before 0.2.0 has no "kept": its latest and best folders."""
    if not pointer:
        return []
    names = pointer.get("kept") or [pointer["checkpoint"], pointer.get("best")]
    return sorted({n for n in names if n}, key=_epoch_number)


def _rotate(names: list[str], best: str | None, limit: int | None) -> list[str]:
    """Which folders to keep, oldest first: all (limit None); else the latest (the last
    name) and the best, and the most recent others in the limit's remaining places (the best
    takes one even when it is the latest: 2 keeps the latest and the best, as before 0.2.0)."""
    names = sorted(set(names), key=_epoch_number)
    if limit is None:
        return names
    latest = names[-1]
    keep = {latest} | ({best} if best else set())
    places = max(limit, 1) - 1 - (1 if best else 0)
    others = [n for n in reversed(names) if n not in keep][:max(places, 0)]
    return sorted(keep | set(others), key=_epoch_number)


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x)


def read_latest(out_dir: str | os.PathLike[str]) -> dict | None:
    """The checked contents of out_dir/latest.json, or None when there is none.

    Raises RunStateError, naming the file, for anything this code would not have written:
    invalid JSON, or a folder name other than checkpoint-epoch-N (a path such as "../x",
    "/abs", "." or "" would make the run read or delete something outside its own folders).
    """
    path = Path(out_dir) / LATEST
    if not path.is_file():
        return None
    pointer = parse_json(path.read_bytes(), path, RunStateError)
    fix = ("; it is written by minibert's training loop: restore it, or start a new run in "
           "another folder (or with overwrite=True / --overwrite)")
    if not isinstance(pointer, dict) or "checkpoint" not in pointer:
        raise RunStateError(f"{path}: expected {{\"checkpoint\": \"checkpoint-epoch-N\"}}{fix}")
    for key in ("checkpoint", "best"):
        value = pointer.get(key)
        if key in pointer and not (isinstance(value, str) and CHECKPOINT.fullmatch(value)):
            raise RunStateError(f"{path}: {key!r} is {short_repr(value)}, not the name of a "
                                f"checkpoint-epoch-N folder inside {Path(out_dir)}{fix}")
    kept = pointer.get("kept", [])
    if not (isinstance(kept, list) and all(isinstance(n, str) and CHECKPOINT.fullmatch(n)
                                           for n in kept)):
        raise RunStateError(f"{path}: 'kept' is {short_repr(kept)}, not a list of "
                            f"checkpoint-epoch-N folders inside {Path(out_dir)}{fix}")
    for name in [pointer["checkpoint"], pointer.get("best"), *kept]:
        if name is not None and (Path(out_dir) / name).is_symlink():
            raise RunStateError(f"{path}: {name!r} is a symbolic link; a run writes folders, "
                                "never links (it may point at another run's files). Remove the "
                                f"link{fix}")
    if "best" in pointer and not (isinstance(pointer.get("best_by"), str)
                                  and _finite(pointer.get("best_value"))):
        raise RunStateError(f"{path}: 'best' needs 'best_by' (a name) and 'best_value' "
                            f"(a number){fix}")
    return pointer


def latest_run_state(out_dir: str | os.PathLike[str]) -> Path | None:
    """The folder latest.json points at, or None when the run has saved nothing yet.

    A latest.json that names a folder that is not there is a RunStateError: resuming must
    never quietly start over."""
    pointer = read_latest(out_dir)
    if pointer is None:
        return None
    folder = Path(out_dir) / pointer["checkpoint"]
    if not run_state_file(folder).is_file():
        raise RunStateError(f"{Path(out_dir) / LATEST} names {pointer['checkpoint']}, but "
                            f"{folder / RUN_STATE} is missing; the run's state is "
                            "lost: start again with overwrite=True (--overwrite)")
    return folder


def run_state_file(folder: str | os.PathLike[str]) -> Path:
    """A checkpoint folder's run_state.json, or the trainer_state.json that minibert wrote
    before 0.2.0 (same contents, transformers' file name) when only that is there."""
    folder = Path(folder)
    old = folder / OLD_RUN_STATE
    return old if old.is_file() and not (folder / RUN_STATE).is_file() else folder / RUN_STATE


def check_resumable(folder: str | os.PathLike[str]) -> None:
    """A RunStateError when `folder` cannot be resumed from because it holds no optimizer
    state (save_only_model): continuing without AdamW's moments would be another run."""
    folder = Path(folder)
    if (folder / OPTIMIZER).is_file():
        return
    why = ("it was saved with save_only_model (--save-only-model), which keeps the model "
           "but not the optimizer's state" if read_trainer_state(folder).get("save_only_model")
           else f"its {OPTIMIZER} is missing")
    raise RunStateError(
        f"cannot resume from {folder}: {why}, and a run continued without AdamW's moments "
        "would not be the same run. Start a new run from its weights instead (minibert "
        f"finetune/pretrain --model {folder} --out OTHER_FOLDER, or overwrite=True / "
        "--overwrite)")


def best_run_state(out_dir: str | os.PathLike[str]) -> tuple[Path, str, float] | None:
    """(folder, what, value) of the best epoch so far, or None when none is recorded."""
    pointer = read_latest(out_dir)
    if not pointer or "best" not in pointer:
        return None
    return Path(out_dir) / pointer["best"], pointer["best_by"], pointer["best_value"]


def read_trainer_state(folder: str | os.PathLike[str]) -> dict:
    """The checked run_state.json of a checkpoint folder (RunStateError if malformed)."""
    path = run_state_file(folder)
    state = parse_json(path.read_bytes(), path, RunStateError)
    expected = {"epoch": int, "step": int, "config": dict, "data_rng": dict, "history": dict,
                "optimizer": dict}
    wrong = [k for k, kind in expected.items()
             if not isinstance(state, dict) or not isinstance(state.get(k), kind)
             or isinstance(state.get(k), bool)]
    if wrong or state["epoch"] < 0 or state["step"] < 0:
        raise RunStateError(f"{path}: not a trainer state written by minibert (fields "
                            f"{wrong or ['epoch', 'step']} are missing or wrong); resume from "
                            "another run, or start again with overwrite=True (--overwrite)")
    return state


def load_run_state(folder: str | os.PathLike[str], model: Model,
                   optimizer: Optimizer) -> dict:
    """Load the parameters and the optimizer's state from `folder`; returns trainer_state.

    A run_state.json or optimizer state that is not what this code writes, or a folder saved
    without the optimizer's state (save_only_model), is a RunStateError naming the file."""
    folder = Path(folder)
    state = read_trainer_state(folder)
    check_resumable(folder)
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    if set(tensors) == {name for name, _ in model.named_parameters()}:
        model.load_state_dict(tensors)  # a folder of an older minibert: our names
    else:
        model.load_state_dict(state_dict_from_hf(model, tensors, source=str(weights)))
    arrays = load_file(folder / OPTIMIZER)
    try:
        optimizer.load_state_dict(_join_optimizer_state(arrays, state["optimizer"]))
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise RunStateError(f"{folder}: the optimizer state does not fit this model and "
                            f"optimizer ({type(e).__name__}: {e})") from None
    return state


# ----------------------------------------------------------------------------------------------
# The output folder: is there a run in it, and what is left over from a killed one


def run_files(out_dir: str | os.PathLike[str]) -> list[str]:
    """The names in out_dir that a training run writes (sorted); [] for a fresh folder."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir()
                  if p.name in (LATEST, HISTORY, FINAL) or
                  (CHECKPOINT.fullmatch(p.name) and p.is_dir()))


def check_out_dir(out_dir: str | os.PathLike[str], resume: bool, overwrite: bool,
                  locked: bool = False) -> list[str]:
    """Check, changing nothing, that a run may start in out_dir; returns run_files(out_dir).

    An out_dir that holds a run is refused unless the run is resumed or overwritten; resume
    with a broken latest.json, and overwrite with a final/ that holds files a run does not
    write, are refused too, as are a folder another run is using (its lock is held; locked:
    this process holds it) and symbolic links among a run's files. Each a RunStateError that
    says what to do.
    """
    out_dir = Path(out_dir)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the run in "
                         f"{out_dir}, or replace it")
    if out_dir.is_symlink() and not out_dir.exists():
        raise RunStateError(f"{out_dir} is a symbolic link to {os.readlink(out_dir)}, which "
                            "does not exist: create that folder, remove the link, or choose "
                            "another output folder")
    if not locked:
        check_not_locked(out_dir)
    found = run_files(out_dir)
    if found and not resume and not overwrite:
        raise RunStateError(
            f"{out_dir} already holds a training run ({', '.join(found)}). Continue it with "
            "resume=True (--resume), replace it with overwrite=True (--overwrite), or "
            "choose another output folder"
        )
    links = _links(out_dir, found)
    if links:
        raise RunStateError(f"{out_dir} holds symbolic links where a run writes its own files "
                            f"({', '.join(links)}); a run never writes through a link (it may "
                            "point at another run or your files). Remove them, or choose "
                            "another output folder")
    if resume:
        folder = latest_run_state(out_dir)  # a broken latest.json: an error now, before work
        if folder is not None:
            check_resumable(folder)
    final = out_dir / FINAL
    if overwrite and final.is_dir():
        foreign = sorted(p.name for p in final.iterdir()
                         if p.name not in MODEL_FILES and not _TEMP.fullmatch(p.name))
        if foreign:
            raise RunStateError(f"{final} holds files a run does not write ({foreign}); "
                                "move them away before overwriting the run")
    return found


def _links(out_dir: Path, found: list[str]) -> list[str]:
    """The symbolic links among out_dir's run files and lock, and inside its run folders."""
    links = [name for name in [*found, LOCK] if (out_dir / name).is_symlink()]
    for name in found:
        folder = out_dir / name
        if folder.is_dir() and not folder.is_symlink():
            links += [f"{name}/{p.name}" for p in sorted(folder.iterdir()) if p.is_symlink()]
    return links


def own_folder(folder: Path) -> Path:
    """Create `folder` (a run's checkpoint folder or final/) or use the one this code made;
    a symbolic link there is refused, never followed."""
    folder = Path(folder)
    refuse_symlink(folder, " where the run writes a folder")
    folder.mkdir(parents=True, exist_ok=True)
    refuse_symlink(folder, " where the run writes a folder")  # made meanwhile: still refused
    return folder


def prepare_out_dir(out_dir: str | os.PathLike[str], resume: bool, overwrite: bool,
                    locked: bool = False) -> list[str]:
    """Make out_dir ready for a run (check_out_dir first): create it, clear the earlier run
    when overwrite, and remove what a killed run left behind. Returns the names removed.
    locked: the caller holds out_dir's lock (lock_out_dir), as a training run does."""
    out_dir = Path(out_dir)
    found = check_out_dir(out_dir, resume, overwrite, locked)
    out_dir.mkdir(parents=True, exist_ok=True)
    removed = []
    if overwrite:
        for name in found:
            path = out_dir / name
            if path.is_dir():
                remove_folder(path)
            else:
                path.unlink()
        removed += found
    return removed + clean_leftovers(out_dir)


def clean_leftovers(out_dir: str | os.PathLike[str]) -> list[str]:
    """Remove what a killed run left in out_dir; returns the names removed (for a note).

    That is: temporary files of atomic writes (in out_dir and its checkpoint folders and
    final/), .trash-* folders of an interrupted removal, and checkpoint-epoch-N folders that
    latest.json does not name (one half-written when the run was killed, or one whose removal
    had not started). Nothing else is touched.
    """
    out_dir = Path(out_dir)
    keep = set(kept_folders(read_latest(out_dir)))
    removed = []
    for path in sorted(out_dir.iterdir()):
        if path.is_symlink():  # never ours (see remove_folder): left alone
            continue
        if _TRASH.fullmatch(path.name) and path.is_dir():
            shutil.rmtree(path)
        elif CHECKPOINT.fullmatch(path.name) and path.is_dir() and path.name not in keep:
            remove_folder(path)
        elif not (_TEMP.fullmatch(path.name) and path.is_file()):
            continue
        else:
            path.unlink()
        removed.append(path.name)
    for folder in [out_dir / name for name in sorted(keep)] + [out_dir / FINAL]:
        if folder.is_dir() and not folder.is_symlink():
            for path in folder.iterdir():
                if _TEMP.fullmatch(path.name) and path.is_file():
                    path.unlink()
                    removed.append(f"{folder.name}/{path.name}")
    return removed


def remove_folder(folder: Path) -> None:
    """Delete a checkpoint folder safely against a kill: rename it to a hidden .trash-* name
    (one atomic step), then delete that. A kill during the deletion leaves a .trash-* folder,
    which the next start removes; never a half-deleted folder under a name that looks whole."""
    folder = Path(folder)
    if not (CHECKPOINT.fullmatch(folder.name) or folder.name == FINAL):  # only ours
        raise ValueError(f"refusing to remove {folder}: not a folder a training run writes")
    if folder.is_symlink():  # we write folders, never links: it may point anywhere
        raise RunStateError(f"refusing to remove {folder}: it is a symbolic link, which a "
                            "training run never writes; remove it yourself if it is yours")
    if not folder.is_dir():
        return
    trash = folder.with_name(f".trash-{folder.name}-{secrets.token_hex(6)}")
    folder.rename(trash)
    shutil.rmtree(trash)


# ----------------------------------------------------------------------------------------------
# One writer per run folder


def lock_out_dir(out_dir: str | os.PathLike[str]) -> int | None:
    """Take out_dir's run lock (out_dir must exist); returns the lock's file descriptor, for
    unlock_out_dir. RunStateError naming the holder when another process has it. None where
    the OS has no flock (Windows)."""
    if fcntl is None:
        return None
    path = Path(out_dir) / LOCK
    while True:
        try:  # O_NOFOLLOW: a link put where the lock goes is refused, not followed
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if path.is_symlink():
                raise SymlinkError(f"{path} is a symbolic link; a run never writes through "
                                   "one: remove it") from None
            raise RunStateError(f"cannot open the run lock {path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise _locked_error(out_dir, holder) from None
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    this_run = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500],
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(this_run) + "\n").encode("utf-8"), 0)
    return fd


def unlock_out_dir(out_dir: str | os.PathLike[str], fd: int | None) -> None:
    """Release a lock from lock_out_dir: remove the lock file, then close it (which releases
    the lock). A run that waited on the removed file sees it is gone and takes a new one."""
    if fd is None:
        return
    path = Path(out_dir) / LOCK
    try:
        if _same_file(fd, path):
            path.unlink()
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False


def check_not_locked(out_dir: str | os.PathLike[str]) -> None:
    """RunStateError naming the holder if a run holds out_dir's lock now; changes nothing."""
    path = Path(out_dir) / LOCK
    if fcntl is None or path.is_symlink() or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # unreadable: lock_out_dir will say so when the run starts
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # fails while a run holds LOCK_EX
    except BlockingIOError:
        raise _locked_error(out_dir, _holder(fd)) from None
    finally:
        os.close(fd)  # also releases the shared lock, if it was taken


def _holder(fd: int) -> str:
    """Who holds the lock, from the lock file's contents (written by the holder)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (f"pid {int(info['pid'])} on {info['host']}, started {info['started']}: "
                f"{info['command']}")
    except (ValueError, KeyError, TypeError, OSError):
        return "a process that has not written its name yet"


def _locked_error(out_dir: str | os.PathLike[str], holder: str) -> RunStateError:
    return RunStateError(f"{out_dir} is in use by another training run ({holder[:300]}); one"
                         " folder takes one run at a time: wait for it to end, or choose another "
                         "output folder")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as JSON, atomically."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), mode="w")


def _split_optimizer_state(sd: dict) -> tuple[dict, dict]:
    """optimizer.state_dict() -> (arrays for safetensors, everything else for JSON)."""
    arrays: dict[str, Any] = {}
    numbers: dict[str, Any] = {}
    for i, entry in sd["state"].items():
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                arrays[f"{i}.{k}"] = v
            else:
                numbers.setdefault(str(i), {})[k] = v
    return arrays, {"lr": sd["lr"], "groups": sd["groups"], "numbers": numbers}


def _join_optimizer_state(arrays: dict, scalars: dict) -> dict:
    """The inverse of _split_optimizer_state."""
    state: dict[int, dict] = {}
    for key, value in arrays.items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = value
    for i, entry in scalars["numbers"].items():
        state.setdefault(int(i), {}).update(entry)
    return {"lr": scalars["lr"], "groups": scalars["groups"], "state": state}


# ----------------------------------------------------------------------------------------------
# Fingerprints: what a run was trained on, so that resuming on other data is noticed


def fingerprint(value: Any) -> str:
    """A short SHA-256 of `value`: str, int, float, bool, None, NumPy arrays, and lists,
    tuples and dicts of them. Equal values give equal fingerprints, in any process."""
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:16]


def _feed(h: Any, value: object) -> None:
    if isinstance(value, np.ndarray):
        h.update(f"a{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        h.update(f"s{len(data)}:".encode() + data)  # the length keeps ["ab"] != ["a", "b"]
    elif isinstance(value, list | tuple):
        h.update(f"l{len(value)}[".encode())
        for item in value:
            _feed(h, item)
    elif isinstance(value, dict):
        h.update(f"d{len(value)}{{".encode())
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
    else:
        h.update(f"v{value!r};".encode())
