"""Evaluation: how good a model is on held-out data, with the metrics of metrics.py.

    evaluate(classifier, tokenizer, data)   loss, accuracy, macro-F1, confusion matrix
    evaluate_mlm(mlm_model, batches)        masked-LM loss and perplexity
    evaluate_pretraining(model, batches)    the same + next-sentence loss and accuracy (NSP)
    pseudo_log_likelihood(mlm_model, tokenizer, text)   log P of a sentence under a masked LM
    evaluate_tokens(tagger, tokenizer, data) entity-level precision/recall/F1, word accuracy

All run the model in eval mode (dropout off) without recording a graph, and leave its
train/eval mode as it was.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import functional as F
from .autograd import no_grad
from .backend import to_numpy
from .console import LONG_WORK_S, progress_bar
from .data import (
    IGNORE_INDEX,
    LabelledData,
    batch_indices,
    classification_batch,
    encode_labels,
    token_lengths,
)
from .metrics import accuracy, confusion_matrix, entity_scores, macro_f1
from .token_data import TokenLabelledData, encode_tags, token_classification_batch, word_predictions

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .model import (
        BertForMaskedLM,
        BertForPreTraining,
        BertForSequenceClassification,
        BertForTokenClassification,
    )
    from .tokenizer import Tokenizer


def evaluate(model: BertForSequenceClassification, tokenizer: Tokenizer, data: LabelledData,
             label2id: dict[str, int] | None = None,
             batch_size: int = 64, max_length: int = 128, sort_by_length: bool = True,
             progress: bool = True) -> dict:
    """Loss, accuracy, macro-F1 and confusion matrix of a classifier on labelled data.

    label2id defaults to the model's ``config.label2id``. The confusion matrix is a list of rows
    (true class) of counts per predicted class, in label-id order. sort_by_length: batch the
    examples longest first, so that each batch carries little padding (the numbers are the
    same: padding never changes a prediction). progress: a bar over the batches on long work
    (after a second; only in a terminal or a notebook, see console.py).
    """
    label2id = label2id or model.config.label2id
    y_true = encode_labels(data.labels, label2id, data.source)  # unknown labels: clear error
    lengths = (token_lengths(tokenizer, data.texts, data.text_pairs, max_length)
               if sort_by_length else None)
    y_pred, total_loss = np.zeros(len(data), dtype=np.int64), 0.0
    batches = batch_indices(len(data), batch_size, lengths=lengths)
    bar = progress_bar(len(batches), "evaluate", progress, unit="batch", delay=LONG_WORK_S)
    with model.evaluating(), no_grad(), bar:
        for idx in batches:
            b = classification_batch(tokenizer, data, idx, label2id, max_length)
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                        labels=b["labels"])
            total_loss += out.loss.item() * len(idx)
            y_pred[idx] = to_numpy(out.logits.data).argmax(axis=-1)  # back in input order
            bar.update(1)
    C = len(label2id)
    return {
        "loss": total_loss / len(data),
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, C),
        "confusion_matrix": confusion_matrix(y_true, y_pred, C).tolist(),
        "num_examples": len(data),
    }


def _masked_lm_sum(logits, labels) -> tuple[float, int]:
    """One batch's MLM loss summed over its masked tokens (its mean loss × their number), and
    that number; (0.0, 0) for a batch with nothing masked."""
    # BEGIN EXERCISE 16.1: n = the number of masked positions (labels != IGNORE_INDEX); the
    #   batch's summed loss is its mean cross-entropy (F.cross_entropy skips IGNORE_INDEX) times
    #   n, or 0.0 when n is 0 (a mean over nothing is not a number)
    n = int((labels != IGNORE_INDEX).sum())
    total = F.cross_entropy(logits, labels).item() * n if n else 0.0
    # END EXERCISE
    return total, n


def _perplexity(mlm_loss: float) -> float:
    """exp(loss), capped so that an untrained model's loss cannot overflow it."""
    return math.exp(min(mlm_loss, 50.0))


def evaluate_mlm(model: BertForMaskedLM | BertForPreTraining, batches: list[dict]) -> dict:
    """Mean MLM loss over fixed, already-masked batches (weighted by masked tokens), and the
    perplexity exp(loss): how many words the model is 'choosing between' on average."""
    total, count = 0.0, 0
    with model.evaluating(), no_grad():
        for b in batches:
            if not (b["labels"] != IGNORE_INDEX).any():
                continue  # nothing masked: nothing to run the model for
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            batch_sum, n = _masked_lm_sum(out.logits, b["labels"])
            total, count = total + batch_sum, count + n
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": _perplexity(loss), "masked_tokens": count}


def pseudo_log_likelihood(model: BertForMaskedLM | BertForPreTraining, tokenizer: Tokenizer,
                          text: str, max_length: int | None = None) -> dict:
    """How probable a masked language model finds a sentence: its pseudo-log-likelihood,

        PLL(x) = Σᵢ log P(xᵢ | x with xᵢ replaced by [MASK])     over the real tokens i

    (Salazar et al., 2020). A masked LM gives no probability to a whole sentence directly, so
    each token is masked in turn and scored from both sides; one batch holds the m copies.
    Returns {"pll": the sum, "tokens": [(token, log P), ...] (no [CLS]/[SEP]), "per_token":
    pll / m}. Higher (closer to 0) means more probable; compare texts by "per_token".
    """
    enc = tokenizer.encode(text, max_length=max_length)
    ids = np.asarray(enc.input_ids)
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id,
               tokenizer.mask_token_id}
    positions = [i for i, t in enumerate(ids) if int(t) not in special]
    if not positions:
        raise ValueError(f"pseudo_log_likelihood: {text!r} has no ordinary token to score")
    with model.evaluating(), no_grad():
        # BEGIN EXERCISE 17.1: pseudo-log-likelihood. Make one copy of ids per position in
        #   `positions` (a (m, T) batch) and put tokenizer.mask_token_id at that position in its
        #   copy; run the model on the batch; take log_softmax of the logits over the vocabulary;
        #   for copy k read log P of the true token ids[positions[k]] at positions[k]: `scores`
        batch = np.repeat(ids[None, :], len(positions), axis=0)  # (m, T)
        rows = np.arange(len(positions))
        batch[rows, positions] = tokenizer.mask_token_id
        logp = to_numpy(F.log_softmax(model(batch).logits, axis=-1).data)  # (m, T, V)
        scores = logp[rows, positions, ids[positions]]  # (m,)
        # END EXERCISE
    tokens = [(enc.tokens[i], float(s)) for i, s in zip(positions, scores, strict=True)]
    total = float(np.sum(scores))
    return {"pll": total, "tokens": tokens, "per_token": total / len(positions)}


def evaluate_pretraining(model: BertForPreTraining, batches: list[dict]) -> dict:
    """BertForPreTraining's two tasks on fixed, already-masked sentence-pair batches (see
    data.NSPCollator): the MLM loss (weighted by masked tokens) and perplexity as in
    ``evaluate_mlm``, the next-sentence loss and accuracy, and the accuracy of always answering
    the commoner label (nsp_chance, about 0.5: half the pairs are real), which NSP must beat.
    loss = MLM loss + NSP loss, the quantity training minimises."""
    mlm_total, masked, nsp_total, correct, pairs, real = 0.0, 0, 0.0, 0, 0, 0
    with model.evaluating(), no_grad():
        for b in batches:
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            batch_sum, n = _masked_lm_sum(out.logits, b["labels"])
            mlm_total, masked = mlm_total + batch_sum, masked + n
            y = np.asarray(b["next_sentence_label"])
            nsp_total += F.cross_entropy(out.seq_relationship_logits, y).item() * len(y)
            correct += int((to_numpy(out.seq_relationship_logits.data).argmax(axis=-1) == y).sum())
            pairs, real = pairs + len(y), real + int((y == 0).sum())
    if pairs == 0:
        raise ValueError("evaluate_pretraining: no sentence pairs to evaluate")
    mlm_loss, nsp_loss = mlm_total / max(masked, 1), nsp_total / pairs
    return {"loss": mlm_loss + nsp_loss, "mlm_loss": mlm_loss,
            "perplexity": _perplexity(mlm_loss), "nsp_loss": nsp_loss,
            "nsp_accuracy": correct / pairs, "nsp_chance": max(real, pairs - real) / pairs,
            "masked_tokens": masked, "num_pairs": pairs}


def predict_tags(model: BertForTokenClassification, tokenizer: Tokenizer, words: list[list[str]],
                 batch_size: int = 64,
                 max_length: int = 128,
                 labels: Sequence[Sequence[str]] | None = None, progress: bool = True
                 ) -> tuple[list[list[str]], float, int]:
    """The tag of every word (the prediction at its first piece) for sentences given as words.

    With `labels` (tag sequences) also returns the mean loss over the labelled pieces; always
    returns the number of words cut off by max_length (they get the tag "O").
    progress: a bar over the batches on long work (see ``evaluate``).
    Returns (tags, loss or nan, words truncated).
    """
    id2label = model.config.id2label
    data = TokenLabelledData(words, labels or [["O"] * len(w) for w in words])
    label2id = model.config.label2id if labels is not None else None
    tags, total_loss, count, truncated = [], 0.0, 0, 0
    batches = batch_indices(len(data), batch_size)
    bar = progress_bar(len(batches), "tag", progress, unit="batch", delay=LONG_WORK_S)
    with model.evaluating(), no_grad(), bar:
        for idx in batches:
            b = token_classification_batch(tokenizer, data, idx, label2id, max_length)
            out = model(b["input_ids"], b["attention_mask"], b["token_type_ids"],
                        labels=b.get("labels"))
            if out.loss is not None:
                n = int((b["labels"] != IGNORE_INDEX).sum())
                total_loss, count = total_loss + out.loss.item() * n, count + n
            preds = to_numpy(out.logits.data).argmax(axis=-1)  # (B, T): a tag id per piece
            for row, i in enumerate(idx):
                ids = word_predictions(b["word_ids"][row], preds[row], len(words[i]),
                                       fill=model.config.label2id.get("O", 0))
                tags.append([id2label[t] for t in ids])
            truncated += b["num_truncated"]
            bar.update(1)
    return tags, (total_loss / count if count else float("nan")), truncated


def evaluate_tokens(model: BertForTokenClassification, tokenizer: Tokenizer,
                    data: TokenLabelledData, batch_size: int = 64,
                    max_length: int = 128, progress: bool = True) -> dict:
    """Loss, word accuracy and entity-level precision/recall/F1 (overall and per type) of a
    token classifier on tagged sentences. A tag the model does not know is an error.
    progress: a bar over the batches on long work (see ``evaluate``)."""
    label2id = model.config.label2id
    encode_tags(data.tags, label2id, data.source)  # unknown tags: a clear error, before any work
    pred, loss, truncated = predict_tags(model, tokenizer, data.words, batch_size, max_length,
                                         data.tags, progress)
    flat_true = [label2id[t] for seq in data.tags for t in seq]
    flat_pred = [label2id[t] for seq in pred for t in seq]
    scores = entity_scores(data.tags, pred)
    return {"loss": loss, "word_accuracy": accuracy(flat_true, flat_pred),
            "precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
            "per_type": scores["per_type"], "num_entities": scores["num_true"],
            "num_predicted": scores["num_pred"], "num_correct": scores["num_correct"],
            "num_sentences": len(data), "words_truncated": truncated}
