"""Evaluation: how good a model is on held-out data, with the metrics of metrics.py.

    evaluate(classifier, tokenizer, data)   loss, accuracy, macro-F1, confusion matrix
    evaluate_mlm(mlm_model, batches)        masked-LM loss and perplexity

Both run the model in eval mode (dropout off) without recording a graph, and leave its
train/eval mode as it was.
"""

from __future__ import annotations

import math

import numpy as np

from .autograd import no_grad
from .backend import to_numpy
from .data import IGNORE_INDEX, LabelledData, batch_indices, classification_batch, encode_labels
from .metrics import accuracy, confusion_matrix, macro_f1


def evaluate(model, tokenizer, data: LabelledData, label2id: dict[str, int] | None = None,
             batch_size: int = 64, max_length: int = 128) -> dict:
    """Loss, accuracy, macro-F1 and confusion matrix of a classifier on labelled data.

    label2id defaults to the model's ``config.label2id``. The confusion matrix is a list of rows
    (true class) of counts per predicted class, in label-id order.
    """
    label2id = label2id or model.config.label2id
    y_true = encode_labels(data.labels, label2id, data.source)  # unknown labels: clear error
    preds, total_loss = [], 0.0
    with model.evaluating(), no_grad():
        for idx in batch_indices(len(data), batch_size):
            b = classification_batch(tokenizer, data, idx, label2id, max_length)
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                        labels=b["labels"])
            total_loss += out.loss.item() * len(idx)
            preds.append(to_numpy(out.logits.data).argmax(axis=-1))
    y_pred = np.concatenate(preds)
    C = len(label2id)
    return {
        "loss": total_loss / len(data),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, C),
        "confusion_matrix": confusion_matrix(y_true, y_pred, C).tolist(),
        "num_examples": len(data),
    }


def evaluate_mlm(model, batches: list[dict]) -> dict:
    """Mean MLM loss over fixed, already-masked batches (weighted by masked tokens), and the
    perplexity exp(loss): how many words the model is 'choosing between' on average."""
    total, count = 0.0, 0
    with model.evaluating(), no_grad():
        for b in batches:
            n = int((b["labels"] != IGNORE_INDEX).sum())
            if n == 0:
                continue
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                        labels=b["labels"])
            total += out.loss.item() * n
            count += n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "masked_tokens": count}
