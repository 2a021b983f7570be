"""Inference with a fine-tuned model: text → tokens → class probability distribution → argmax.

    >>> clf = Classifier.from_pretrained("runs/tickets/final")
    >>> clf.predict(["I was charged twice this month"])[0].label
    'Billing Issue'

A model directory holds what `finetune` saved: config.json (with the label names, `id2label`),
model.safetensors, vocab.txt and tokenizer_config.json.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import load_config, load_pretrained
from .model import BertForSequenceClassification
from .tokenizer import Tokenizer


@dataclass
class Prediction:
    """One text's result: the argmax label and the probability of every class."""

    text: str
    label: str
    probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


class Classifier:
    """A sequence classifier bundled with its tokenizer and label names."""

    def __init__(self, model: BertForSequenceClassification, tokenizer: Tokenizer,
                 labels: list[str], max_length: int | None = None):
        if len(labels) != model.config.num_labels:
            raise ValueError(f"{len(labels)} label names for a model with "
                             f"{model.config.num_labels} classes")
        _check_label_names(labels)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = min(max_length or model.config.max_position_embeddings,
                              model.config.max_position_embeddings)

    @classmethod
    def from_pretrained(cls, path, labels: list[str] | None = None,
                        max_length: int | None = None) -> Classifier:
        """Load model, tokenizer and label names from a directory that `finetune` wrote.

        `labels` overrides the label names stored in config.json (id2label).
        """
        path = Path(path)
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file} not found: is {path} a model directory "
                                    "written by `minibert finetune` (or save_pretrained)?")
        if labels is None:
            id2label = load_config(path).id2label
            labels = [id2label[i] for i in sorted(id2label)]
            # Hugging Face writes LABEL_0, LABEL_1, ... into every config: those name nothing.
            if not labels or labels == [f"LABEL_{i}" for i in range(len(labels))]:
                raise ValueError(
                    f"{config_file} has no label names (id2label is missing or only the default "
                    "LABEL_0, LABEL_1, ...): this directory does not hold a fine-tuned "
                    "classifier. Fine-tune one with `minibert finetune`, or pass the label "
                    "names explicitly (labels=[...] / --labels)."
                )
        _check_label_names(labels)
        # require_head: predicting with a freshly initialised, random head must be an error
        model = load_pretrained(BertForSequenceClassification, path, require_head=True,
                                id2label=dict(enumerate(labels)))  # names kept in the config
        return cls(model, Tokenizer.from_pretrained(path), labels, max_length)

    def predict_proba(self, texts: list[str], text_pairs: list[str] | None = None,
                      batch_size: int = 32) -> np.ndarray:
        """P(class | text) for each text: (n, num_classes), rows sum to 1."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts; wrap a single one: [text]")
        rows, truncated = [], 0
        for i in range(0, len(texts), batch_size):
            pairs = text_pairs[i:i + batch_size] if text_pairs is not None else None
            batch = self.tokenizer.batch_encode(texts[i:i + batch_size], pairs,
                                                max_length=self.max_length)
            truncated += int(np.count_nonzero(batch.num_truncated))
            rows.append(self.model.predict_proba(batch["input_ids"], batch["attention_mask"],
                                                 batch["token_type_ids"]))
        if truncated:
            print(f"note: {truncated} text(s) longer than {self.max_length} tokens were "
                  "truncated", file=sys.stderr)
        n = self.model.config.num_labels
        return np.concatenate(rows) if rows else np.zeros((0, n), dtype=np.float32)

    def predict(self, texts: list[str], text_pairs: list[str] | None = None,
                batch_size: int = 32) -> list[Prediction]:
        """The decision rule: the class with the highest probability, for each text."""
        probs = self.predict_proba(texts, text_pairs, batch_size)
        return [
            Prediction(text, self.labels[int(p.argmax())],
                       {name: float(q) for name, q in zip(self.labels, p, strict=True)})
            for text, p in zip(texts, probs, strict=True)
        ]


def _check_label_names(labels: list[str]) -> None:
    """Label names must be non-empty and distinct: two classes with one name would print one
    merged probability and make evaluation count them as one."""
    empty = [i for i, name in enumerate(labels) if not str(name).strip()]
    if empty:
        raise ValueError(f"label names must not be empty (class {empty[0]} has {labels[empty[0]]!r}"
                         f" in {list(labels)})")
    twice = sorted({name for name in labels if list(labels).count(name) > 1})
    if twice:
        raise ValueError(f"label names must be distinct; {twice} name two classes each "
                         f"(in {list(labels)})")


def format_predictions(predictions: list[Prediction], width: int = 48) -> str:
    """A readable table: each text, its predicted label, and every class probability."""
    if not predictions:
        return "(no texts)"
    labels = list(predictions[0].probabilities)
    cols = [max(len(name), 6) for name in labels]
    label_width = max(len("prediction"), *(len(name) for name in labels))  # names whole
    head = f"{'text':<{width}}  {'prediction':<{label_width}}  " + "  ".join(
        f"{name:>{c}}" for name, c in zip(labels, cols, strict=True))
    lines = [head, "-" * len(head)]
    for p in predictions:
        text = p.text if len(p.text) <= width else p.text[: width - 1] + "…"
        probs = "  ".join(f"{p.probabilities[name]:>{c}.3f}"
                          for name, c in zip(labels, cols, strict=True))
        lines.append(f"{text:<{width}}  {p.label:<{label_width}}  {probs}")
    return "\n".join(lines)
