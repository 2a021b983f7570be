"""Sentence embeddings: one vector per text, so that similar meanings lie close together.

The recipe of all-MiniLM-L6-v2 (its model card): run BERT, average the hidden states of the
real tokens (the attention mask says which), and scale the average to length 1. The cosine
similarity of two such vectors is then just their dot product.

    encoder = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")
    E = encoder.encode(["A cat sits on the mat.", "A dog plays in the park."])   # (2, 384)
    encoder.similarity(E, E)                                                      # (2, 2)

A sentence-transformers folder says its own recipe, and from_pretrained follows it:
modules.json lists the steps (Transformer, Pooling, Normalize), 1_Pooling/config.json the
pooling (pooling_mode_cls_token, _mean_tokens, _max_tokens, _mean_sqrt_len_tokens; several
are concatenated in that order, cls first, as sentence-transformers does). A step or mode this
module does not implement (Dense, weighted-mean or last-token pooling, ...) is an error that
names it: the embeddings would differ from sentence-transformers'. A folder without
modules.json (a plain BERT) gets all-MiniLM-L6-v2's recipe: mean pooling, normalised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

import numpy as np

from .autograd import Tensor, concatenate, masked_fill, no_grad, where
from .backend import ArrayLike, get_array_module, to_numpy
from .console import LONG_WORK_S, progress_bar
from .data import batch_indices, token_lengths
from .fileio import parse_json
from .model import BertModel, mean_pool

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .tokenizer import Tokenizer

__all__ = ["SentenceEncoder", "l2_normalize", "mean_pool", "pool"]

# sentence-transformers' pooling modes that minibert implements, in the order it concatenates
# them (Pooling.forward: cls, max, mean, mean_sqrt_len).
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len")
_MODE_KEYS = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens",
              "mean": "pooling_mode_mean_tokens",
              "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens"}
_ST = "sentence_transformers.models."


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Scale each row to length 1: x / max(‖x‖, eps).   (B, H) -> (B, H)"""
    norm = (x * x).sum(axis=-1, keepdims=True).sqrt()  # (B, 1)
    return x / where(norm.data < eps, eps, norm)


def pool(h: Tensor, attention_mask: ArrayLike, modes: Sequence[str] = ("mean",)) -> Tensor:
    """One vector per text from its token vectors, by each of `modes`, concatenated.
    (B, T, H), mask (B, T) -> (B, len(modes)·H)

        cls            h₀, the [CLS] token's vector
        max            the largest value of each feature over the real tokens
        mean           Σ real hᵢ / n           (mean_pool)
        mean_sqrt_len  Σ real hᵢ / √n
    """
    xp = get_array_module(h.data)
    mask = xp.asarray(attention_mask.data if isinstance(attention_mask, Tensor)
                      else attention_mask)
    pieces = []
    for mode in modes:
        if mode == "cls":
            pieces.append(h[:, 0])
        elif mode == "max":  # padding can never be the largest: it is -1e9 here, as in s-t
            pieces.append(masked_fill(h, mask[:, :, None] == 0, -1e9).max(axis=1))
        elif mode == "mean":
            pieces.append(mean_pool(h, mask))
        elif mode == "mean_sqrt_len":
            n = xp.maximum(mask.sum(axis=1, keepdims=True), 1e-9).astype(h.dtype)
            pieces.append(mean_pool(h, mask) * Tensor(xp.sqrt(n)))  # Σ/n · √n = Σ/√n
        else:
            raise ValueError(f"pooling mode {mode!r}; minibert has {list(POOLING_MODES)}")
    return pieces[0] if len(pieces) == 1 else concatenate(pieces, axis=-1)


class SentenceEncoder:
    """A BERT model, its tokenizer and the pooling recipe: texts -> vectors (n, H·modes).

    pooling: the modes of ``pool`` (default mean); normalize: scale each vector to length 1
    (all-MiniLM-L6-v2's recipe, so the cosine similarity is a dot product).
    """

    def __init__(self, model: BertModel, tokenizer: Tokenizer, max_length: int | None = None,
                 pooling: Sequence[str] = ("mean",), normalize: bool = True):
        unknown = [m for m in pooling if m not in POOLING_MODES]
        if not pooling or unknown:
            raise ValueError(f"pooling {list(pooling)}: choose from {list(POOLING_MODES)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        limit = model.config.max_position_embeddings
        self.max_length = min(max_length, limit) if max_length else limit
        self.pooling, self.normalize = tuple(pooling), normalize

    @classmethod
    def from_pretrained(cls, name_or_dir: str | os.PathLike[str],
                        max_length: int | None = None) -> SentenceEncoder:
        """Model + tokenizer from one directory (or shortcut name, see checkpoint.py).

        max_length defaults to the directory's sentence_bert_config.json "max_seq_length"
        (256 for all-MiniLM-L6-v2, the length it was trained with), else the model's limit.
        Pooling and normalisation follow the folder's modules.json and 1_Pooling/config.json
        (see the module's docstring); without them, mean pooling and normalisation.
        """
        from .checkpoint import resolve_model_dir
        from .tokenizer import Tokenizer

        model_dir = resolve_model_dir(name_or_dir)
        bert_dir, pooling, normalize = sentence_transformers_recipe(model_dir)
        st_config = bert_dir / "sentence_bert_config.json"
        if max_length is None and st_config.is_file():
            max_length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        return cls(BertModel.from_pretrained(bert_dir), Tokenizer.from_pretrained(bert_dir),
                   max_length, pooling, normalize)

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32,
               sort_by_length: bool = True, progress: bool = True) -> np.ndarray:
        """Embed texts: a float32 NumPy array (n, H · number of pooling modes), unit vectors
        when `normalize`, in input order (one text: (1, H)).

        sort_by_length: batch the texts longest first (in tokens), so that each batch carries
        little padding (faster; padding never changes an embedding beyond float rounding).
        progress: a bar over the batches on long work (after a second; only in a terminal or
        a notebook, see console.py).
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        lengths = (token_lengths(self.tokenizer, texts, max_length=self.max_length)
                   if sort_by_length else None)
        width = self.model.config.hidden_size * len(self.pooling)
        out = np.zeros((len(texts), width), dtype=np.float32)
        batches = batch_indices(len(texts), batch_size, lengths=lengths)
        bar = progress_bar(len(batches), "encode", progress, unit="batch", delay=LONG_WORK_S)
        with no_grad(), bar:
            for idx in batches:
                enc = self.tokenizer.batch_encode([texts[i] for i in idx],
                                                  max_length=self.max_length)
                h = self.model(enc["input_ids"], enc["attention_mask"],
                               enc["token_type_ids"]).last_hidden_state
                v = pool(h, enc["attention_mask"], self.pooling)
                out[idx] = to_numpy((l2_normalize(v) if self.normalize else v).data)
                bar.update(1)
        return out

    def similarity(self, a: str | Sequence[str] | np.ndarray,
                   b: str | Sequence[str] | np.ndarray) -> np.ndarray:
        """Cosine similarities (n_a, n_b) between texts or embeddings (rows of `encode`)."""
        A, B = (self.encode(x) if _is_text(x) else np.atleast_2d(np.asarray(x)) for x in (a, b))
        # BEGIN EXERCISE 15.1: cosine similarity. Scale every row of A and of B to length 1
        #   (divide by its norm, at least 1e-12); then sim[i, j] is the dot product of row i of
        #   A and row j of B: one matrix product, (n_a, H) times (H, n_b)
        A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
        B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
        sim = A @ B.T
        # END EXERCISE
        return sim


def sentence_transformers_recipe(model_dir: str | os.PathLike[str]
                                 ) -> tuple[Path, tuple[str, ...], bool]:
    """(the folder with the BERT model, pooling modes, normalize?) of a sentence-transformers
    folder, read from modules.json and the Pooling step's config.json. A folder without
    modules.json: (itself, ("mean",), True), all-MiniLM-L6-v2's recipe. What this module
    cannot compute is a ValueError naming the file and the step or mode."""
    model_dir = Path(model_dir)
    path = model_dir / "modules.json"
    if not path.is_file():
        return model_dir, ("mean",), True
    modules = parse_json(path.read_bytes(), path, ValueError)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ValueError(f"{path}: expected a list of modules ({{\"type\": ..., \"path\": ...}})")
    kinds = [str(m.get("type", "")).removeprefix(_ST) for m in modules]
    unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unsupported or kinds[:1] != ["Transformer"] or kinds.count("Pooling") != 1:
        raise ValueError(
            f"{path}: the steps {kinds}; minibert's SentenceEncoder computes Transformer -> "
            f"Pooling -> Normalize (optional) only{f', not {unsupported}' if unsupported else ''}"
            ": its embeddings would differ from sentence-transformers'. Use "
            "sentence-transformers for this model, or BertModel and your own pooling.")
    folder = {k: _module_folder(model_dir, m, path) for k, m in zip(kinds, modules, strict=True)}
    pooling_config = folder["Pooling"] / "config.json"
    if not pooling_config.is_file():
        raise FileNotFoundError(f"{pooling_config} not found: {path} lists a Pooling step there")
    options = parse_json(pooling_config.read_bytes(), pooling_config, ValueError)
    if not isinstance(options, dict):
        raise ValueError(f"{pooling_config}: expected a JSON object")
    modes = tuple(m for m in POOLING_MODES if options.get(_MODE_KEYS[m]) is True)
    other = sorted(k for k, v in options.items() if k.startswith("pooling_mode_") and v is True
                   and k not in _MODE_KEYS.values())
    if other or not modes:
        what = f"{other}, which minibert does not compute" if other else "no pooling mode set"
        raise ValueError(f"{pooling_config}: {what}; minibert pools by "
                         f"{', '.join(_MODE_KEYS.values())} (any of them, concatenated)")
    return folder["Transformer"], modes, "Normalize" in kinds


def _module_folder(model_dir: Path, module: dict, source: Path) -> Path:
    """A module's folder, which must lie inside model_dir ("" is model_dir itself)."""
    sub = module.get("path", "")
    if not isinstance(sub, str) or Path(sub).is_absolute() or ".." in Path(sub).parts:
        raise ValueError(f"{source}: module path {sub!r} is not a folder inside {model_dir}")
    return model_dir / sub


def _is_text(x: object) -> TypeGuard[str | Sequence[str]]:
    return isinstance(x, str) or (isinstance(x, Sequence) and bool(x) and isinstance(x[0], str))
