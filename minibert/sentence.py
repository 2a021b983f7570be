"""Sentence embeddings: one vector per text, so that similar meanings lie close together.

The recipe of all-MiniLM-L6-v2 (its model card): run BERT, average the hidden states of the
real tokens (the attention mask says which), and scale the average to length 1. The cosine
similarity of two such vectors is then just their dot product.

    encoder = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")
    E = encoder.encode(["A cat sits on the mat.", "A dog plays in the park."])   # (2, 384)
    encoder.similarity(E, E)                                                      # (2, 2)
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from .autograd import Tensor, no_grad, where
from .backend import to_numpy
from .data import batch_indices, token_lengths
from .model import BertModel, mean_pool

__all__ = ["SentenceEncoder", "l2_normalize", "mean_pool"]


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Scale each row to length 1: x / max(‖x‖, eps).   (B, H) -> (B, H)"""
    norm = (x * x).sum(axis=-1, keepdims=True).sqrt()  # (B, 1)
    return x / where(norm.data < eps, eps, norm)


class SentenceEncoder:
    """A BERT model, its tokenizer and the pooling recipe: texts -> unit vectors (n, H)."""

    def __init__(self, model: BertModel, tokenizer, max_length: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        limit = model.config.max_position_embeddings
        self.max_length = min(max_length, limit) if max_length else limit

    @classmethod
    def from_pretrained(cls, name_or_dir, max_length: int | None = None) -> SentenceEncoder:
        """Model + tokenizer from one directory (or shortcut name, see checkpoint.py).

        max_length defaults to the directory's sentence_bert_config.json "max_seq_length"
        (256 for all-MiniLM-L6-v2, the length it was trained with), else the model's limit.
        """
        from .checkpoint import resolve_model_dir
        from .tokenizer import Tokenizer

        model_dir = resolve_model_dir(name_or_dir)
        st_config = model_dir / "sentence_bert_config.json"
        if max_length is None and st_config.is_file():
            max_length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        return cls(BertModel.from_pretrained(model_dir), Tokenizer.from_pretrained(model_dir),
                   max_length)

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32,
               sort_by_length: bool = True) -> np.ndarray:
        """Embed texts: a float32 NumPy array (n, H) of unit vectors, in input order (one
        text: (1, H)).

        sort_by_length: batch the texts longest first (in tokens), so that each batch carries
        little padding (faster; padding never changes an embedding beyond float rounding).
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        lengths = (token_lengths(self.tokenizer, texts, max_length=self.max_length)
                   if sort_by_length else None)
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with no_grad():
            for idx in batch_indices(len(texts), batch_size, lengths=lengths):
                enc = self.tokenizer.batch_encode([texts[i] for i in idx],
                                                  max_length=self.max_length)
                h = self.model(enc["input_ids"], enc["attention_mask"],
                               enc["token_type_ids"]).last_hidden_state
                out[idx] = to_numpy(l2_normalize(mean_pool(h, enc["attention_mask"])).data)
        return out

    def similarity(self, a, b) -> np.ndarray:
        """Cosine similarities (n_a, n_b) between texts or embeddings (rows of `encode`)."""
        A, B = (self.encode(x) if _is_text(x) else np.atleast_2d(np.asarray(x)) for x in (a, b))
        A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
        B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
        return A @ B.T


def _is_text(x) -> bool:
    return isinstance(x, str) or (isinstance(x, Sequence) and bool(x) and isinstance(x[0], str))
