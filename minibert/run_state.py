"""A training run's state on disk: what `resume=True` needs to continue a stopped run exactly.

After every epoch the training loop (train.py) saves the model, the optimizer's state and its
own counters into a new folder of ``out_dir``:

    out_dir/latest.json                                 {"checkpoint": "checkpoint-epoch-2"}
    out_dir/checkpoint-epoch-2/config.json              the model, as save_pretrained writes it:
    out_dir/checkpoint-epoch-2/model.safetensors          Hugging Face's names and layouts
    out_dir/checkpoint-epoch-2/vocab.txt                the tokenizer, as in final/
    out_dir/checkpoint-epoch-2/tokenizer_config.json
    out_dir/checkpoint-epoch-2/optimizer.safetensors    AdamW's m and v
    out_dir/checkpoint-epoch-2/trainer_state.json       epoch, step, data RNG state, history, ...

So every epoch's folder is also a model folder: ``from_pretrained`` opens it, in minibert and in
transformers, like ``final/`` (and like the checkpoint-N folders of transformers' Trainer, which
keep the optimizer beside the model too).

Each file is written atomically, into a new folder; only then does latest.json (itself written
atomically) point at it, and only then is the previous folder removed. A crash at any moment
leaves latest.json pointing at a complete folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .checkpoint import state_dict_from_hf
from .fileio import atomic_write
from .safetensors_io import load_file, save_file

LATEST = "latest.json"


def save_run_state(out_dir, name: str, model, optimizer, trainer_state: dict,
                   tokenizer=None) -> Path:
    """Write folder out_dir/name and point latest.json at it; the previous folder goes.

    trainer_state: the loop's counters (JSON-serialisable). tokenizer: saved beside the model
    (anything with save_pretrained), so the folder is a complete model folder. Returns it.
    """
    out_dir = Path(out_dir)
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # config.json + model.safetensors (Hugging Face's names)
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(folder)
    arrays, scalars = _split_optimizer_state(optimizer.state_dict())
    save_file(arrays, folder / "optimizer.safetensors")
    write_json(folder / "trainer_state.json", dict(trainer_state, optimizer=scalars))
    previous = latest_run_state(out_dir)
    write_json(out_dir / LATEST, {"checkpoint": name})
    if previous is not None and previous != folder:
        shutil.rmtree(previous, ignore_errors=True)
    return folder


def latest_run_state(out_dir) -> Path | None:
    """The folder latest.json points at, or None when the run has saved nothing yet."""
    pointer = Path(out_dir) / LATEST
    if not pointer.is_file():
        return None
    folder = Path(out_dir) / json.loads(pointer.read_text(encoding="utf-8"))["checkpoint"]
    return folder if folder.is_dir() else None


def load_run_state(folder, model, optimizer) -> dict:
    """Load the parameters and the optimizer's state from `folder`; returns trainer_state."""
    folder = Path(folder)
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    if set(tensors) == {name for name, _ in model.named_parameters()}:
        model.load_state_dict(tensors)  # a folder of an older minibert: our names
    else:
        model.load_state_dict(state_dict_from_hf(model, tensors, source=str(weights)))
    arrays = load_file(folder / "optimizer.safetensors")
    optimizer.load_state_dict(_join_optimizer_state(arrays, state["optimizer"]))
    return state


def write_json(path, obj) -> None:
    """Write `obj` as JSON, atomically."""
    atomic_write(path, lambda f: json.dump(obj, f, indent=1), mode="w")


def _split_optimizer_state(sd: dict) -> tuple[dict, dict]:
    """optimizer.state_dict() -> (arrays for safetensors, everything else for JSON)."""
    arrays, numbers = {}, {}
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
