"""Classification metrics, written out in NumPy: accuracy, confusion matrix, macro-F1.

y_true and y_pred are integer class ids of shape (N,); C is the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """The share of examples whose predicted class is the true one."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    return float((y_true == y_pred).mean()) if y_true.size else 0.0


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> np.ndarray:
    """M (C, C) int64 with M[i, j] = how many examples of true class i were predicted as j.
    The diagonal holds the correct predictions."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)  # add.at: repeated (i, j) pairs all count
    return m


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 of each class from a confusion matrix: 2·precision·recall / (precision + recall).

    precision_c = M[c, c] / (column sum), recall_c = M[c, c] / (row sum); a class with no true
    and no predicted examples gets F1 = 0 (as in scikit-learn's zero_division=0).
    """
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    # F1 = 2·tp / (predicted + actual): the same as the harmonic mean, with no 0/0 on the way.
    denom = (predicted + actual).astype(np.float64)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> float:
    """The plain mean of the per-class F1 scores: every class counts the same, however rare,
    so a model that ignores a small class is punished (accuracy would hardly notice)."""
    return float(per_class_f1(confusion_matrix(y_true, y_pred, num_classes)).mean())


def format_confusion(matrix: np.ndarray, labels: list[str], max_width: int = 120) -> str:
    """The confusion matrix as text: rows are true classes, columns predicted ones.

    Class names are never cut: the columns are headed by the whole names when the table fits in
    `max_width` characters, else by the class numbers, which the rows spell out ("2 name").
    """
    counts_width = max(len(str(int(c))) for row in matrix for c in row) + 2
    width = max(max(len(name) for name in labels) + 2, counts_width)
    rows = list(labels)
    if 8 + len(max(labels, key=len)) + width * len(labels) > max_width:  # too wide: numbers
        width = max(len(str(len(labels) - 1)) + 2, counts_width)
        rows = [f"{i} {name}" for i, name in enumerate(labels)]
        labels = [str(i) for i in range(len(labels))]
    first = max(len("true ↓"), *(len(r) for r in rows)) + 2
    lines = [" " * first + "predicted →",
             f"{'true ↓':<{first}}" + "".join(f"{name:>{width}}" for name in labels)]
    for name, row in zip(rows, matrix, strict=True):
        lines.append(f"{name:<{first}}" + "".join(f"{int(c):>{width}}" for c in row))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Entities: one label per word, scored per entity (a span of words with a type), not per word


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """BIO tags -> the entities they mark, as (type, first word, last word + 1).

    ["B-DATE", "I-DATE", "O", "B-ORDER"] -> {("DATE", 0, 2), ("ORDER", 3, 4)}. An I-TYPE that
    does not continue an entity of its type starts one (as the CoNLL evaluation script does).
    """
    spans, kind, start = set(), None, 0
    for i, tag in enumerate(list(tags) + ["O"]):  # the "O" closes an entity at the end
        continues = tag.startswith("I-") and tag[2:] == kind
        if kind is not None and not continues:
            spans.add((kind, start, i))
            kind = None
        if tag != "O" and not continues:
            kind, start = tag[2:], i
    return spans


def entity_scores(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision, recall and F1: an entity counts as found only when the prediction
    has exactly its words and type.

    true_tags, pred_tags: lists of tag sequences (one per sentence, the same lengths).
    precision = correct / predicted entities, recall = correct / true entities,
    F1 = 2PR / (P + R), overall (micro: every entity counts the same) and per type. Returns
    {"precision", "recall", "f1", "num_true", "num_pred", "num_correct",
    "per_type": {type: {...}}}.
    """
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true tag sequences but {len(pred_tags)} predicted")
    true, pred = set(), set()
    for s, (t, p) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sentence {s}: {len(t)} true tags but {len(p)} predicted")
        true |= {(s, *e) for e in entity_spans(t)}
        pred |= {(s, *e) for e in entity_spans(p)}

    def scores(T: set, P: set) -> dict:
        correct = len(T & P)
        precision = correct / len(P) if P else 0.0
        recall = correct / len(T) if T else 0.0
        f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
        return {"precision": precision, "recall": recall, "f1": f1,
                "num_true": len(T), "num_pred": len(P), "num_correct": correct}

    types = sorted({e[1] for e in true | pred})
    out = scores(true, pred)
    out["per_type"] = {k: scores({e for e in true if e[1] == k}, {e for e in pred if e[1] == k})
                       for k in types}
    return out
