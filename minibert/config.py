"""The configuration of a BERT model: the fields of a Hugging Face `config.json`.

    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, id2label={0: "negative", 1: "positive"})
    config.num_labels   # 2, read from id2label
    config.label2id     # {"negative": 0, "positive": 1}, read from id2label

`id2label` is the one fact about the classes of a classification head; `num_labels` and
`label2id` are read from it. The constructor also accepts ``num_labels=C`` (classes named
LABEL_0 ... LABEL_C-1, as Hugging Face names them) or ``label2id``, and turns either into
id2label. Reading and writing `config.json` files is in checkpoint.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import InitVar, dataclass, field

# The keys of config.json that describe the classes; id2label decides, the others follow.
LABEL_KEYS = ("id2label", "label2id", "num_labels")
# How a sequence classifier turns token vectors into one vector (BertConfig.pooling).
POOLINGS = ("cls", "mean")

# What each field may hold. config.json is read from files anyone may have written, so a
# wrong type or value (hidden_size "abc" or 32.0, num_attention_heads 0) is an error that
# names the field, never a crash deep inside the model or a silently different model.
POSITIVE_INTS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "type_vocab_size")
PROBABILITIES = ("hidden_dropout_prob", "attention_probs_dropout_prob")  # in [0, 1)
MAX_PARAMETERS = 20_000_000_000  # 80 GB of float32: a config beyond that is a mistake


@dataclass
class BertConfig:
    """The hyper-parameters of a BERT model. The defaults are BERT-base.

    id2label names the classes of a classification head, {0: "negative", 1: "positive"}; the
    keys must be 0 .. C-1. Without it the head has `num_labels` classes (default 2) named
    LABEL_0, LABEL_1, ... Fields this class does not know (e.g. "use_cache") are kept in
    `extra` and written back unchanged, except those that describe another writer (e.g.
    "transformers_version", "_name_or_path": see checkpoint.STALE_CONFIG_FIELDS).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    classifier_dropout: float | None = None  # None: use hidden_dropout_prob
    # How a sequence classifier summarises a text: "cls", BERT's pooler on the [CLS] vector, or
    # "mean", the average of the token vectors (how all-MiniLM-L6-v2 was trained to summarise a
    # sentence). A minibert field: transformers ignores it and always uses the pooler.
    pooling: str = "cls"
    id2label: dict[int, str] | None = None
    extra: dict = field(default_factory=dict)
    # Other ways to say which classes there are: only read by the constructor, which turns
    # them into id2label. Afterwards `num_labels` and `label2id` are read from id2label.
    num_labels: InitVar[int | None] = None
    label2id: InitVar[dict[str, int] | None] = None

    def __post_init__(self, num_labels: int | None, label2id: dict[str, int] | None) -> None:
        self._check_fields(num_labels)
        self.id2label = _id2label(self.id2label, label2id, num_labels)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"BertConfig: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act != "gelu":
            raise ValueError(
                f"BertConfig: hidden_act {self.hidden_act!r} is not supported; minibert implements "
                "BERT's exact (erf) 'gelu'"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"BertConfig: pooling must be one of {POOLINGS}, got "
                             f"{self.pooling!r}")
        if self.extra.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("BertConfig: only position_embedding_type 'absolute' is supported")

    def _check_fields(self, num_labels) -> None:
        """Every field's type and range (see POSITIVE_INTS above): a ValueError naming it."""
        def bad(name, value, want):
            text = repr(value)
            raise ValueError(f"BertConfig: {name} must be {want}, not "
                             f"{text if len(text) <= 40 else text[:40] + '...'}")

        for name in POSITIVE_INTS:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                bad(name, value, "a positive integer")
        for name in PROBABILITIES:
            value = getattr(self, name)
            if not (_is_number(value) and 0 <= value < 1):
                bad(name, value, "a number in [0, 1)")
        if self.classifier_dropout is not None and not (
                _is_number(self.classifier_dropout) and 0 <= self.classifier_dropout < 1):
            bad("classifier_dropout", self.classifier_dropout, "null or a number in [0, 1)")
        if not (_is_number(self.initializer_range) and self.initializer_range >= 0):
            bad("initializer_range", self.initializer_range, "a number >= 0")
        if not (_is_number(self.layer_norm_eps) and self.layer_norm_eps > 0):
            bad("layer_norm_eps", self.layer_norm_eps, "a number > 0")
        if self.pad_token_id is not None and not (
                _is_int(self.pad_token_id) and 0 <= self.pad_token_id < self.vocab_size):
            bad("pad_token_id", self.pad_token_id, f"null or an id in 0..{self.vocab_size - 1}")
        if num_labels is not None and (not _is_int(num_labels) or num_labels < 1):
            bad("num_labels", num_labels, "a positive integer")
        if not isinstance(self.hidden_act, str):
            bad("hidden_act", self.hidden_act, "a string")
        if not isinstance(self.extra.get("position_embedding_type", "absolute"), str):
            bad("position_embedding_type", self.extra["position_embedding_type"], "a string")
        H, I, L = self.hidden_size, self.intermediate_size, self.num_hidden_layers
        size = ((self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * H
                + L * (4 * H * H + 2 * H * I))
        if size > MAX_PARAMETERS:
            raise ValueError(f"BertConfig: these sizes make a model of {size:.3g} parameters "
                             f"(more than {MAX_PARAMETERS:.0e}); is a field wrong?")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        """From the contents of a Hugging Face `config.json`; unknown keys go to `extra`.

        A config.json holds id2label and label2id (and sometimes num_labels); id2label decides,
        as in Hugging Face.
        """
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        labels = {k: d[k] for k in LABEL_KEYS if k in d}
        if "id2label" in labels:
            labels = {"id2label": labels["id2label"]}
        kwargs = {k: v for k, v in d.items() if k in known and k not in LABEL_KEYS}
        extra = {k: v for k, v in d.items() if k not in known and k not in LABEL_KEYS}
        return cls(**kwargs, **labels, extra=extra)

    def to_dict(self) -> dict:
        """The `config.json` contents: every field (label maps with string keys) plus `extra`."""
        d = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name not in ("extra", "id2label"):
                d[f.name] = getattr(self, f.name)
        d["id2label"] = {str(i): name for i, name in sorted(self.id2label.items())}
        d["label2id"] = self.label2id  # written too: Hugging Face's readers expect both
        d.setdefault("model_type", "bert")
        return d


# Read from id2label, never stored. (Assigned after the class: written inside it, these
# properties would replace the defaults of the constructor arguments of the same names.)
BertConfig.num_labels = property(lambda self: len(self.id2label),
                                 doc="The number of classes: len(id2label).")
BertConfig.label2id = property(lambda self: {name: i for i, name in self.id2label.items()},
                               doc="Class name -> id, the inverse of id2label.")


def _id2label(id2label: dict | None, label2id: dict | None, num_labels: int | None
              ) -> dict[int, str]:
    """The class names {0: name, ...} from whichever of the three was given (checked)."""
    for name, value in (("id2label", id2label), ("label2id", label2id)):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"BertConfig: {name} must be an object {{id: name}} or "
                             f"{{name: id}}, not {type(value).__name__}")
    if id2label is not None:  # JSON keys are strings: {"0": "negative", ...}
        if not all(_is_id(k) and isinstance(v, str) for k, v in id2label.items()):
            raise ValueError(f"BertConfig: id2label must map ids 0..n-1 to names (strings), "
                             f"got {list(id2label.items())[:5]}")
        names = {int(k): v for k, v in id2label.items()}
    elif label2id is not None:
        if not all(_is_id(i) and isinstance(k, str) for k, i in label2id.items()):
            raise ValueError(f"BertConfig: label2id must map names (strings) to ids 0..n-1, "
                             f"got {list(label2id.items())[:5]}")
        names = {int(i): str(name) for name, i in label2id.items()}
    else:
        names = {i: f"LABEL_{i}" for i in range(2 if num_labels is None else num_labels)}
    if not names:
        raise ValueError("BertConfig: id2label names no class; a head needs at least one")
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"BertConfig: id2label keys must be 0..n-1, got {sorted(names)}")
    twice = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if twice:  # label2id would silently merge them into one class
        raise ValueError(f"BertConfig: id2label names two classes {twice}; label names must "
                         "be distinct")
    if num_labels is not None and num_labels != len(names):
        raise ValueError(f"BertConfig: num_labels={num_labels} but {len(names)} class names "
                         f"{list(names.values())}; give one or the other")
    return names


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # JSON true is not a size


def _is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _is_id(key) -> bool:
    """A class id: an int, or the decimal string JSON turns it into ("0", "12")."""
    if isinstance(key, str):
        return key.isascii() and key.isdigit() and len(key) < 10
    return _is_int(key) and key >= 0
