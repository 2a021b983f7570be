"""Inference with a fine-tuned model: text → tokens → class probability distribution → argmax.

The new text is tokenized into x_0 ... x_m; the fine-tuned model turns the tokens into a
probability distribution over the classes, Pr(y | x) = softmax(logits); the prediction is the
most probable class, ŷ = argmax_y Pr(y | x). In code, all of it here:

    tokens        Tokenizer.batch_encode                     (Classifier.predict_proba)
    probabilities class_probabilities(model, input_ids, ...)  softmax of the head's logits
    decision      most_probable(probabilities)                the argmax

    >>> clf = Classifier.from_pretrained("runs/tickets/final")
    >>> clf.predict(["I was charged twice this month"])[0].label
    'Billing Issue'

or as transformers' pipeline is called (this module is callable: minibert.pipeline(...)):

    >>> clf = minibert.pipeline("text-classification", model="runs/tickets/final")
    >>> clf("I was charged twice this month")
    {'label': 'Billing Issue', 'score': 0.93...}

One label per word (a token classifier, `minibert finetune --task token`):

    >>> tagger = Tagger.from_pretrained("runs/entities/final")
    >>> tagger.tag(["My Kestrel Hub arrived on 12 March"])[0].entities
    [('PRODUCT', 'Kestrel Hub'), ('DATE', '12 March')]

A model directory holds what `finetune` saved: config.json (with the label names, `id2label`),
model.safetensors, vocab.txt and tokenizer_config.json.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import functional as F
from .autograd import no_grad
from .backend import ArrayLike, to_numpy
from .checkpoint import class_names, load_config, load_pretrained, resolve_model_dir
from .console import LONG_WORK_S, note, printable, progress_bar
from .data import batch_indices, token_lengths
from .evaluation import predict_tags
from .metrics import entity_spans
from .model import BertForSequenceClassification, BertForTokenClassification
from .token_data import check_bio, split_words
from .tokenizer import Tokenizer


def class_probabilities(model: BertForSequenceClassification | BertForTokenClassification,
                        input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                        token_type_ids: ArrayLike | None = None
                        ) -> np.ndarray:
    """Pr(y | x): the softmax of a head's logits, as a NumPy array on the host.

    input_ids etc. as for the model (B, T). Returns (B, C) for a sequence classifier, (B, T, C)
    per token for a token classifier (rows sum to 1). Dropout is off and no graph is recorded;
    the model's train/eval mode is left as it was.
    """
    with model.evaluating(), no_grad():
        # BEGIN EXERCISE 5.1: run the model on the batch (input_ids, attention_mask,
        #   token_type_ids) and turn its logits into probabilities `probs` with a softmax over
        #   the classes (the last axis)
        logits = model(input_ids, attention_mask, token_type_ids).logits
        probs = F.softmax(logits, axis=-1)
        # END EXERCISE
    return to_numpy(probs.data)


def most_probable(probabilities: np.ndarray) -> np.ndarray:
    """The decision rule: the class with the highest probability, ŷ = argmax_y Pr(y | x)."""
    return np.asarray(probabilities).argmax(axis=-1)


@dataclass
class Prediction:
    """One text's result: the argmax label and the probability of every class. (label None
    and no probabilities: a blank text, given a row so that rows stay aligned with lines.)"""

    text: str
    label: str | None
    probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


class Classifier:
    """A sequence classifier bundled with its tokenizer; the model's config names the classes.

    labels: the class names, in id order; they are written into ``model.config.id2label`` (the
        one place they are kept). None: the names the model's config already has. For a model
        whose config already names its classes, other names (or another order) are an error
        unless rename_labels=True: each row of the head was trained for its named class.
    """

    def __init__(self, model: BertForSequenceClassification, tokenizer: Tokenizer,
                 labels: list[str] | None = None, max_length: int | None = None,
                 rename_labels: bool = False):
        if labels is not None:
            _check_labels(labels, model.config.num_labels)
            _check_renaming(class_names(model.config), labels, rename_labels, "the model")
            model.config.id2label = dict(enumerate(labels))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = min(max_length or model.config.max_position_embeddings,
                              model.config.max_position_embeddings)

    @property
    def labels(self) -> list[str]:
        """The class names in id order (from model.config.id2label)."""
        id2label = self.model.config.id2label
        return [id2label[i] for i in range(len(id2label))]

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], labels: list[str] | None = None,
                        max_length: int | None = None, rename_labels: bool = False
                        ) -> Classifier:
        """Load model, tokenizer and label names from a directory that `finetune` wrote.

        `labels` names the classes of a model whose config.json does not (id2label missing or
        only LABEL_0, LABEL_1, ...). Names other than config.json's own are an error, unless
        rename_labels=True (then they replace them, in id order). Without `labels`, a trained
        head whose classes are Hugging Face's default LABEL_0, LABEL_1, ... predicts those
        names, as transformers' pipeline does. `path` may be a shortcut name; a folder whose
        config.json says it holds another architecture (a BertModel: no head) is refused.
        """
        name = str(path)
        try:
            path = resolve_model_dir(path)  # a shortcut name (all-MiniLM-L6-v2): its folder
            config = load_config(path)  # the one read of config.json
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e}. A classifier folder holds config.json, "
                                    "model.safetensors and vocab.txt, as `minibert finetune` "
                                    "writes them into its final/") from None
        _check_architecture(config, name, path, "BertForSequenceClassification")
        if labels is not None:
            _check_labels(labels, config.num_labels)
            _check_renaming(class_names(config), labels, rename_labels, path / "config.json")
            config.id2label = dict(enumerate(labels))
        # require_head: predicting with a freshly initialised, random head must be an error
        model = load_pretrained(BertForSequenceClassification, path, config=config,
                                require_head=True)
        return cls(model, Tokenizer.from_pretrained(path), max_length=max_length)

    def predict_proba(self, texts: list[str], text_pairs: list[str] | None = None,
                      batch_size: int = 32, sort_by_length: bool = True,
                      progress: bool = True) -> np.ndarray:
        """P(class | text) for each text: (n, num_classes), rows sum to 1, in input order.

        sort_by_length: batch the texts longest first, so that each batch carries little
        padding (faster; padding never changes a probability beyond float rounding).
        progress: a bar over the batches on long work (after a second; only in a terminal or
        a notebook, see console.py).
        """
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a list of texts; wrap a single one: [text]")
        lengths = (token_lengths(self.tokenizer, texts, text_pairs, self.max_length)
                   if sort_by_length else None)
        dtype = self.model.classifier.W.dtype  # float32, or float64 for a float64 model
        probs = np.zeros((len(texts), self.model.config.num_labels), dtype=dtype)
        truncated = 0
        batches = batch_indices(len(texts), batch_size, lengths=lengths)
        with progress_bar(len(batches), "predict", progress, unit="batch",
                          delay=LONG_WORK_S) as bar:
            for idx in batches:
                pairs = [text_pairs[i] for i in idx] if text_pairs is not None else None
                batch = self.tokenizer.batch_encode([texts[i] for i in idx], pairs,
                                                    max_length=self.max_length)
                truncated += int(np.count_nonzero(batch.num_truncated))
                probs[idx] = class_probabilities(self.model, batch["input_ids"],
                                                 batch["attention_mask"],
                                                 batch["token_type_ids"])
                bar.update(1)
        if truncated:
            note(f"note: {truncated} text(s) longer than {self.max_length} tokens were "
                 "truncated")
        return probs

    def predict(self, texts: list[str], text_pairs: list[str] | None = None,
                batch_size: int = 32, sort_by_length: bool = True,
                progress: bool = True) -> list[Prediction]:
        """The decision rule: the class with the highest probability, for each text."""
        probs = self.predict_proba(texts, text_pairs, batch_size, sort_by_length, progress)
        labels = self.labels
        # BEGIN EXERCISE 9.1: the decision rule. For each text and its row of probs, one
        #   Prediction(text, label, probabilities): label = the name (labels) of the most
        #   probable class (most_probable), probabilities = {class name: float probability}
        predictions = [
            Prediction(text, labels[int(best)],
                       {name: float(q) for name, q in zip(labels, p, strict=True)})
            for text, p, best in zip(texts, probs, most_probable(probs), strict=True)
        ]
        # END EXERCISE
        return predictions

    def __call__(self, inputs: str | dict[str, str] | Sequence[str | dict[str, str]],
                 top_k: int | None = 1, batch_size: int = 32) -> Any:
        """transformers' pipeline habit: ``clf("text")`` -> {"label": ..., "score": ...}, and a
        list of texts -> a list of those, in input order.

        A text pair is a dict {"text": a, "text_pair": b}. top_k: 1 (default) gives the best
        label as one dict; k gives the k most probable as a list, best first; None all classes.
        (transformers wraps the answer for one string in a list of one; here one text gives
        one answer.)
        """
        one = isinstance(inputs, (str, dict))
        items = [inputs] if isinstance(inputs, (str, dict)) else list(inputs)
        texts, pairs = [], []
        for item in items:
            if isinstance(item, dict):
                if set(item) != {"text", "text_pair"}:
                    raise ValueError(f"a text pair is a dict with the keys 'text' and "
                                     f"'text_pair', got {sorted(item)}")
                texts.append(item["text"])
                pairs.append(item["text_pair"])
            else:
                texts.append(item)
        if pairs and len(pairs) != len(texts):
            raise ValueError("give every input as a text pair ({'text': ..., 'text_pair': "
                             "...}) or none of them")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                                  or top_k < 1):
            raise ValueError(f"top_k must be a positive int or None (all classes), got {top_k!r}")
        probs = self.predict_proba(texts, pairs or None, batch_size=batch_size)
        labels = self.labels
        answers: list[Any] = []
        for p in probs:
            ranked = [{"label": labels[int(i)], "score": float(p[i])}
                      for i in np.argsort(-p, kind="stable")[:top_k]]
            answers.append(ranked[0] if top_k == 1 else ranked)
        return answers[0] if one else answers


def _check_renaming(names: list[str] | None, labels: list[str], rename: bool, where) -> None:
    """Names for a model that already names its classes: the same names in the same order, or
    an explicit rename. Anything else would silently change what every prediction is called."""
    if names is None or list(labels) == names or rename:
        return
    how = ("the same names in another order: each class would get another's scores"
           if set(labels) == set(names) else "other names")
    raise ValueError(f"{where} names the classes {names} (in id order); the labels given, "
                     f"{list(labels)}, are {how}. Leave the labels out to use the model's own "
                     "names, or rename the classes on purpose with rename_labels=True "
                     "(--rename-labels)")


def _check_architecture(config, name: str, path: Path, wanted: str) -> None:
    """A folder whose config.json names its architecture (transformers' "architectures") and
    names another than `wanted` has no head of that kind: say what it is and what to do,
    instead of a list of missing weights. A config.json without the field is left to the
    loader (require_head). name: what the user gave (a shortcut name or the folder)."""
    architectures = config.extra.get("architectures") or []
    if not architectures or wanted in architectures:
        return
    what = ", ".join(map(str, architectures))
    if "BertForTokenClassification" in architectures:
        todo = "it tags words: use Tagger (`minibert predict` finds that out by itself)"
    else:
        todo = (f"it has no classification head to predict with; fine-tune one first "
                f"(minibert finetune --model {name} --train FILE), then use that run's final/")
    shown = name if Path(name) == path else f"{name} (the folder {path})"
    raise ValueError(f"{shown} holds a {what} (config.json's \"architectures\"), not a "
                     f"{wanted}: {todo}")


def _check_labels(labels: list[str], num_classes: int) -> None:
    """One name per class, non-empty and distinct: two classes with one name would print one
    merged probability and make evaluation count them as one."""
    if len(labels) != num_classes:
        raise ValueError(f"{len(labels)} label names for a model with {num_classes} classes")
    empty = [i for i, name in enumerate(labels) if not str(name).strip()]
    if empty:
        raise ValueError(f"label names must not be empty (class {empty[0]} has {labels[empty[0]]!r}"
                         f" in {list(labels)})")
    twice = sorted({name for name in labels if list(labels).count(name) > 1})
    if twice:
        raise ValueError(f"label names must be distinct; {twice} name two classes each "
                         f"(in {list(labels)})")


def format_predictions(predictions: list[Prediction], width: int = 48) -> str:
    """A readable table: each text, its predicted label, and every class probability.
    Control characters in texts and names are shown escaped (console.printable)."""
    if not predictions:
        return "(no texts)"
    labels = next((list(p.probabilities) for p in predictions if p.probabilities), [])
    shown = {name: printable(name) for name in labels}
    cols = [max(len(shown[name]), 6) for name in labels]
    label_width = max(len("prediction"), *(len(shown[name]) for name in labels))  # names whole
    head = f"{'text':<{width}}  {'prediction':<{label_width}}  " + "  ".join(
        f"{shown[name]:>{c}}" for name, c in zip(labels, cols, strict=True))
    lines = [head, "-" * len(head)]
    for p in predictions:
        text = printable(p.text)
        text = text if len(text) <= width else text[: width - 1] + "…"
        if p.label is None:  # a blank line: its row, without a prediction
            lines.append(f"{text:<{width}}  {'(no text)':<{label_width}}")
            continue
        probs = "  ".join(f"{p.probabilities[name]:>{c}.3f}"
                          for name, c in zip(labels, cols, strict=True))
        lines.append(f"{text:<{width}}  {shown[p.label]:<{label_width}}  {probs}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# One label per word


def is_token_classifier(path: str | os.PathLike[str]) -> bool:
    """Whether a model directory (or shortcut name) holds a token classifier (config.json's
    "architectures"). False when there is no config.json: the loader then says what is
    missing."""
    try:
        path = resolve_model_dir(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not (Path(path) / "config.json").is_file():
        return False
    return "BertForTokenClassification" in load_config(path).extra.get("architectures", [])


@dataclass
class TaggedText:
    """One text's result: its words and the predicted BIO tag of each."""

    text: str
    words: list[str]
    tags: list[str]

    @property
    def entities(self) -> list[tuple[str, str]]:
        """(type, the entity's words) for every entity the tags mark, in text order."""
        spans = sorted(entity_spans(self.tags), key=lambda e: e[1])
        return [(kind, " ".join(self.words[a:b])) for kind, a, b in spans]


class Tagger:
    """A token classifier bundled with its tokenizer: text -> words -> one tag per word.

    A text is cut into words as the training data was (``token_data.split_words``); each word's
    tag is the prediction at its first word piece.
    """

    def __init__(self, model: BertForTokenClassification, tokenizer: Tokenizer,
                 max_length: int | None = None):
        tags = [model.config.id2label[i] for i in sorted(model.config.id2label)]
        check_bio(tags, "the model's id2label")
        self.model, self.tokenizer, self.tags = model.eval(), tokenizer, tags
        self.max_length = min(max_length or model.config.max_position_embeddings,
                              model.config.max_position_embeddings)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], max_length: int | None = None) -> Tagger:
        """Load a directory that `finetune_tokens` (`minibert finetune --task token`) wrote."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path / 'config.json'} not found: is {path} a model "
                                    "directory written by `minibert finetune --task token`?")
        model = load_pretrained(BertForTokenClassification, path, require_head=True)
        return cls(model, Tokenizer.from_pretrained(path), max_length)

    def tag(self, texts: list[str], batch_size: int = 32,
            progress: bool = True) -> list[TaggedText]:
        """The words of each text with their predicted tags (progress: a bar on long work)."""
        if isinstance(texts, str):
            raise TypeError("tag takes a list of texts; wrap a single one: [text]")
        words = [split_words(t) for t in texts]
        keep = [i for i, w in enumerate(words) if w]  # a blank text has no word to tag
        tags, _, truncated = predict_tags(self.model, self.tokenizer, [words[i] for i in keep],
                                          batch_size, self.max_length, progress=progress)
        by_text = dict(zip(keep, tags, strict=True))
        if truncated:
            note(f"note: {truncated} word(s) past {self.max_length} tokens were not tagged "
                 "(shown as O)")
        return [TaggedText(t, words[i], by_text.get(i, [])) for i, t in enumerate(texts)]


def format_tags(results: list[TaggedText]) -> str:
    """Each text as two aligned rows, the words and their tags, then its entities. Control
    characters in words and tags are shown escaped (console.printable)."""
    lines = []
    for r in results:
        words, tags = [printable(w) for w in r.words], [printable(t) for t in r.tags]
        widths = [max(len(w), len(t)) for w, t in zip(words, tags, strict=True)]
        lines.append("  ".join(f"{w:<{n}}" for w, n in zip(words, widths, strict=True)))
        lines.append("  ".join(f"{t:<{n}}" for t, n in zip(tags, widths, strict=True)))
        found = ", ".join(f"{printable(kind)} {printable(repr(text))}"
                          for kind, text in r.entities)
        lines.append(f"entities: {found or '(none)'}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


# ----------------------------------------------------------------------------------------------
# transformers' entry point: pipeline("text-classification", model=...)

TASKS = {"text-classification": Classifier, "sentiment-analysis": Classifier,
         "token-classification": Tagger, "ner": Tagger}


def pipeline(task: str, model: str | os.PathLike, **kwargs: Any) -> Classifier | Tagger:
    """A ready model for `task`, as transformers' ``pipeline(task, model=...)`` makes one.

    task: "text-classification" (or its other name "sentiment-analysis") gives a
        ``Classifier``: ``clf("text")`` -> {"label": ..., "score": ...}. "token-classification"
        (or "ner") gives a ``Tagger`` (``tagger.tag([...])``: a tag for every word).
    model: a folder that `minibert finetune` wrote (its final/), or a shortcut name.
    kwargs: passed to ``from_pretrained`` (labels=, max_length=).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: minibert's pipeline supports "
                         f"{', '.join(map(repr, TASKS))}. For sentence embeddings use "
                         "minibert.SentenceEncoder; for masked words minibert.BertForMaskedLM")
    return TASKS[task].from_pretrained(resolve_model_dir(model), **kwargs)


class _CallableModule(types.ModuleType):
    """This module, callable: ``minibert.pipeline("text-classification", model=...)`` reads as
    in transformers, while ``from minibert.pipeline import Classifier`` still works."""

    def __call__(self, task: str, model: str | os.PathLike, **kwargs: Any) -> Classifier | Tagger:
        return pipeline(task, model, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
