"""BERT, top to bottom in the order the data flows.

    token ids (batch, seq)
      -> embeddings      e_i = word[id_i] + position[i] + segment[type_i], LayerNorm, dropout
      -> L encoder layers, each:
             multi-head self-attention   (every token looks at every real token)
             residual + LayerNorm        ("add & norm", after the sub-layer as in BERT)
             feed-forward with GELU      (the same small MLP applied to every token)
             residual + LayerNorm
      -> hidden states   (batch, seq, hidden): one vector per token
      -> pooler          tanh(dense(hidden state of [CLS])): one vector per sequence
      -> a head          the prediction network: logits (and a loss, given labels); the
                         softmax over them and the argmax are inference (pipeline.py)

The classes follow that order: BertEmbeddings, scaled_dot_product_attention,
MultiHeadSelfAttention, BertLayer, BertModel, then the heads (BertForSequenceClassification,
BertForTokenClassification, BertForMaskedLM). Their hyper-parameters are a BertConfig
(config.py). Loading and saving real checkpoints (`from_pretrained`, `save_pretrained`) is in
checkpoint.py; the parameter names here are ours, and checkpoint.py has the table that maps them
to the Hugging Face names.

Shapes use B = batch, T = sequence length, H = hidden size, h = number of heads,
d = head size (H / h), V = vocabulary size, C = number of classes.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import functional as F
from .autograd import Tensor
from .backend import Array, ArrayLike, get_array_module, is_device_array
from .checkpoint import load_pretrained, save_pretrained
from .config import BertConfig
from .nn import Dropout, Embedding, LayerNorm, Linear, Module, Parameter

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from typing_extensions import Self

# ----------------------------------------------------------------------------------------------
# Embeddings: e_i = word[id_i] + position[i] + segment[type_i]


class BertEmbeddings(Module):
    """Token ids -> one vector per token.   ids (B, T) -> (B, T, H)

    A token's vector is the sum of three learned vectors: what the token is (word), where it
    is (position: attention itself does not see order), and which sentence of a pair it
    belongs to (segment, from token_type_ids). Then LayerNorm and dropout.
    """

    def __init__(self, config: BertConfig):
        H, std = config.hidden_size, config.initializer_range
        self.word_embeddings = Embedding(config.vocab_size, H, std)
        self.position_embeddings = Embedding(config.max_position_embeddings, H, std)
        self.token_type_embeddings = Embedding(config.type_vocab_size, H, std)
        if config.pad_token_id is not None:  # [PAD] starts as the zero vector, as in HF
            self.word_embeddings.weight.data[config.pad_token_id] = 0
        self.layer_norm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Array, token_type_ids: Array | None = None) -> Tensor:
        """input_ids (B, T); token_type_ids (B, T), or None: every token in segment 0."""
        T = input_ids.shape[1]
        segment = (self.token_type_embeddings.weight[0] if token_type_ids is None  # (H,)
                   else self.token_type_embeddings(token_type_ids))  # (B, T, H)
        e = (
            self.word_embeddings(input_ids)  # (B, T, H)
            + self.position_embeddings.weight[:T]  # (T, H): the rows of positions 0, ..., T-1
            + segment  # broadcast over the tokens: the same vector for each, as rows of ids 0
        )
        return self.dropout(self.layer_norm(e))


# ----------------------------------------------------------------------------------------------
# Self-attention


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, mask_bias: Array | None = None,
                                 dropout_p: float = 0.0, training: bool = False) -> tuple[Tensor,
                                 Tensor]:
    """softmax(q kᵀ / √d + mask_bias) v, for every head at once.

    q, k, v:    (B, h, T, d)   queries, keys, values
    mask_bias:  (B, 1, 1, T)   0 for real keys, a huge negative number for padded keys, so
                               that after the softmax padded keys get exactly 0 attention
    returns     context (B, h, T, d) and the attention probabilities (B, h, T, T), where
                probs[b, head, i, j] is how much token i attends to token j (rows sum to 1)
    """
    # BEGIN EXERCISE 3.2: scaled dot-product attention. scores = q @ kᵀ (swapaxes(-1, -2)) times
    #   1/√d (scale q first: 4x fewer numbers than the T×T scores); add mask_bias if given;
    #   probs = F.softmax over the last axis; context = dropout
    #   (F.dropout with dropout_p, training) of probs, @ v.
    d = q.shape[-1]
    scores = (q * (1.0 / math.sqrt(d))) @ k.swapaxes(-1, -2)  # (B, h, T, T): query · key / √d
    if mask_bias is not None:
        scores = scores + mask_bias
    probs = F.softmax(scores, axis=-1)
    context = F.dropout(probs, dropout_p, training) @ v  # weighted average of the values
    # END EXERCISE
    return context, probs


class MultiHeadSelfAttention(Module):
    """Every token gathers information from every (real) token.   (B, T, H) -> (B, T, H)

    The hidden size H is split into h heads of size d = H/h; each head has its own view
    (slice of the query/key/value projections) and attends independently. The heads' outputs
    are concatenated again and mixed by the output projection.
    """

    def __init__(self, config: BertConfig):
        H, std = config.hidden_size, config.initializer_range
        self.num_heads, self.head_size = config.num_attention_heads, config.head_size
        self.query = Linear(H, H, std=std)
        self.key = Linear(H, H, std=std)
        self.value = Linear(H, H, std=std)
        self.output = Linear(H, H, std=std)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: Tensor, mask_bias: Array | None = None,
                output_bias: bool = True) -> tuple[Tensor, Tensor]:
        """(output, probs); output_bias=False leaves out the output projection's bias b_o, for
        the fused add & norm after it that adds it (BertLayer.forward)."""
        B, T, H = x.shape

        def split_heads(t):  # (B, T, H) -> (B, h, T, d)
            return t.reshape(B, T, self.num_heads, self.head_size).transpose(0, 2, 1, 3)

        if not FUSED:  # each projection with its bias, then cut into heads
            q, k, v = (split_heads(self.query(x)), split_heads(self.key(x)),
                       split_heads(self.value(x)))
        else:  # the same, with the biases added as the heads are cut (GPU: one kernel)
            q, k, v = F.attention_heads(x, self.query.W, self.key.W, self.value.W, self.query.b,
                                        self.key.b, self.value.b, self.num_heads)
        context, probs = scaled_dot_product_attention(
            q, k, v, mask_bias, self.dropout_p, self.training
        )
        context = context.transpose(0, 2, 1, 3).reshape(B, T, H)  # concatenate the heads
        return self.output(context, bias=output_bias), probs


# ----------------------------------------------------------------------------------------------
# One encoder layer

# Which lines BertLayer.forward and MultiHeadSelfAttention.forward run: False, the formulas
# line by line; True (the default), the same math with each add & norm as one fused op, and
# the query, key and value biases added as the heads are cut (F.attention_heads).
# tests/test_model.py checks that both give the same numbers.
FUSED = True


class BertLayer(Module):
    """Attention, then a per-token feed-forward network; each followed by add & norm.

        x = LayerNorm(x + Dropout(Attention(x)))
        x = LayerNorm(x + Dropout(GELU(x W₁ + b₁) W₂ + b₂))        (B, T, H) -> (B, T, H)

    The residual (x + ...) lets information and gradients pass the layer unchanged; the
    LayerNorm after it (BERT's "post-LN") keeps every token vector at a steady scale.
    """

    def __init__(self, config: BertConfig):
        H, std = config.hidden_size, config.initializer_range
        self.attention = MultiHeadSelfAttention(config)
        self.attention_norm = LayerNorm(H, config.layer_norm_eps)
        self.ffn_in = Linear(H, config.intermediate_size, std=std)  # W₁: widen (H -> 4H)
        self.ffn_out = Linear(config.intermediate_size, H, std=std)  # W₂: back (4H -> H)
        self.ffn_norm = LayerNorm(H, config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, x: Tensor, mask_bias: Array | None = None) -> tuple[Tensor, Tensor]:
        if not FUSED:  # the formulas above, line by line
            a, probs = self.attention(x, mask_bias)
            x = self.attention_norm(x + self.dropout(a))
            f = self.ffn_out(F.gelu(self.ffn_in(x)))
            x = self.ffn_norm(x + self.dropout(f))
        else:  # the same, each bias added inside the formula after it: GELU(u + b₁), and the
            # add & norm as one op, LayerNorm(x + Dropout(a + b)) (F.add_layer_norm): the
            # bias, dropout and residual cost no passes over memory (GPU kernels) of their own
            a, probs = self.attention(x, mask_bias, output_bias=False)  # context W_o
            x = self._add_norm(x, a, self.attention.output.b, self.attention_norm)
            u = self.ffn_in(x, bias=False)  # x W₁
            f = self.ffn_out(F.gelu(u, bias=self.ffn_in.b), bias=False)  # GELU(u + b₁) W₂
            x = self._add_norm(x, f, self.ffn_out.b, self.ffn_norm)
        return x, probs

    def _add_norm(self, x: Tensor, a: Tensor, b: Tensor, norm: LayerNorm) -> Tensor:
        # LayerNorm(x + Dropout(a + b))
        return F.add_layer_norm(x, a, b, norm.gamma, norm.beta, norm.eps, self.dropout.p,
                                self.training)


# ----------------------------------------------------------------------------------------------
# The encoder: embeddings, L layers, pooler


@dataclass
class BertOutput:
    """What `BertModel` returns.

    last_hidden_state  (B, T, H)      one vector per token, after the last layer
    pooler_output      (B, H)         tanh(dense([CLS] vector)), or None without a pooler
    hidden_states      L+1 × (B, T, H) the embeddings' output, then each layer's (on request)
    attentions         L × (B, h, T, T) each layer's attention probabilities (on request)
    """

    last_hidden_state: Tensor
    pooler_output: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class BertPreTrainedModel(Module):
    """What every model class shares: a config, and loading/saving checkpoints."""

    config: BertConfig
    hf_architecture = "BertModel"  # the transformers class that reads what save_pretrained writes

    @classmethod
    def from_pretrained(cls, path_or_name: str | os.PathLike[str], **overrides: Any) -> Self:
        """Load a checkpoint directory (config.json + model.safetensors) or a shortcut name
        such as "all-MiniLM-L6-v2". `overrides` replace config fields (e.g. num_labels=3,
        hidden_dropout_prob=0.0); ignore_mismatched_sizes=True starts a head of another
        shape afresh, as in transformers. Returns the model in eval mode. See checkpoint.py."""
        return load_pretrained(cls, path_or_name, **overrides)

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write config.json and model.safetensors (Hugging Face names and layout) to `path`."""
        save_pretrained(self, path)


class BertModel(BertPreTrainedModel):
    """The BERT encoder.  input_ids (B, T) -> BertOutput (last_hidden_state (B, T, H), ...)"""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = [BertLayer(config) for _ in range(config.num_hidden_layers)]
        # The pooler summarises a sequence by its [CLS] vector, trained for BERT's
        # next-sentence task; heads that work per token (masked LM) have none.
        H = config.hidden_size
        self.pooler = Linear(H, H, std=config.initializer_range) if add_pooling_layer else None

    def forward(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                token_type_ids: ArrayLike | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> BertOutput:
        """input_ids, attention_mask (1 = real token, 0 = padding), token_type_ids (segment
        0 or 1): integer arrays (B, T), NumPy/CuPy arrays or lists. Missing mask: all tokens
        are real. Missing token_type_ids: all 0."""
        # the array module (numpy or cupy) where the parameters live: the ids must go there too
        xp = get_array_module(self.embeddings.word_embeddings.weight.data)
        input_ids = _as_ids(xp, input_ids, "input_ids", size=self.config.vocab_size)
        B, T = input_ids.shape
        if T == 0:  # caught here, not as an error from deep inside softmax
            raise ValueError(f"BertModel: input_ids has shape {input_ids.shape}, no tokens; a "
                             "sequence holds at least [CLS] (the tokenizer's encode adds it)")
        if T > self.config.max_position_embeddings:
            raise ValueError(
                f"BertModel: input has {T} tokens but this model knows only "
                f"{self.config.max_position_embeddings} positions (max_position_embeddings); "
                "truncate the input (e.g. the tokenizer's max_length)"
            )
        mask = attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask
        if attention_mask is not None:
            _check_mask_values(attention_mask)
            attention_mask = _as_ids(xp, attention_mask, "attention_mask", (B, T))
        if token_type_ids is not None:  # missing: the embeddings use segment 0's vector
            token_type_ids = _as_ids(xp, token_type_ids, "token_type_ids", (B, T),
                                     size=self.config.type_vocab_size)

        # Padding mask as an additive bias on the attention scores: 0 where key j is a real
        # token, the most negative float where it is padding (exp of it is exactly 0).
        # Without padding there is nothing to mask, and we skip the work. Whether there is
        # padding is asked of the mask where it came from: a GPU would have to send the answer
        # back and the host to wait for it, so a mask already on the GPU is always applied.
        padded = mask is not None and (is_device_array(mask) or not np.all(np.asarray(mask)))
        mask_bias = None
        if padded:
            dtype = self.embeddings.word_embeddings.weight.dtype
            mask_bias = (1 - attention_mask[:, None, None, :]).astype(dtype) * xp.finfo(dtype).min

        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        # Keep each layer's output and attention only on request: otherwise they die with the
        # next layer, and inference needs the memory of one layer, not of all of them.
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, probs = layer(x, mask_bias)
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(probs)

        pooled = None
        if self.pooler is not None:  # tanh(h_[CLS] W_p + b_p); fused: the bias inside tanh
            h_cls = x[:, 0]  # (B, H)
            pooled = (self.pooler(h_cls).tanh() if not FUSED
                      else F.tanh(self.pooler(h_cls, bias=False), bias=self.pooler.b))
        return BertOutput(
            last_hidden_state=x,
            pooler_output=pooled,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


def mean_pool(last_hidden_state: Tensor, attention_mask: ArrayLike | None) -> Tensor:
    """Average of the token vectors over real tokens.   (B, T, H), mask (B, T) -> (B, H)

    Padding positions are multiplied by 0, and the sum is divided by the number of real
    tokens (at least 1e-9, so an all-padding row gives 0 instead of a division by zero).
    Built from autograd ops, so it can be trained through.
    """
    xp = get_array_module(last_hidden_state.data)
    mask = xp.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
    # BEGIN EXERCISE 10.1: the masked mean. m = the mask as a (B, T, 1) Tensor of the hidden
    #   states' dtype; counts = real tokens per row (B, 1), at least 1e-9; pooled = the sum
    #   over T of last_hidden_state * m, divided by Tensor(counts) (Tensor ops: trainable)
    m = Tensor(mask[:, :, None].astype(last_hidden_state.dtype))  # (B, T, 1)
    counts = xp.maximum(mask.sum(axis=1, keepdims=True), 1e-9).astype(last_hidden_state.dtype)
    pooled = (last_hidden_state * m).sum(axis=1) / Tensor(counts)
    # END EXERCISE
    return pooled


def _check_mask_values(mask) -> None:
    """attention_mask holds 1 (a real token) and 0 (padding) and nothing else: a 2 would give
    its key a bias of −(2 − 1)·finfo.min, pushing every score up instead of masking. Checked
    only where the mask is on the host (a NumPy array or a list, as the tokenizer makes it), so
    that a mask already on the GPU costs no device-to-host copy."""
    host = mask.data if isinstance(mask, Tensor) else mask
    if not isinstance(host, np.ndarray | list | tuple):
        return
    values = np.asarray(host)
    if values.dtype.kind not in "iub":
        return  # _as_ids says what is wrong with it
    wrong = (values != 0) & (values != 1)
    if wrong.any():
        raise ValueError(f"attention_mask must hold 1 (a real token) and 0 (padding) only; it "
                         f"holds {np.unique(values[wrong])[:5].tolist()}")


def _as_ids(xp, a, name: str, shape=None, size=None):
    """An integer array (B, T) on the model's device, from an array, a Tensor or a list. Ids
    that arrive on the host are checked against `size` (an embedding table's rows) before they
    go to the device: there, reading them back would make the host wait for the GPU."""
    a = a.data if isinstance(a, Tensor) else a
    if size is not None and not is_device_array(a):
        host = np.asarray(a)
        if host.dtype.kind in "iu":
            F.check_ids(host, size, name)
    a = xp.asarray(a)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (batch, seq), got {a.shape}; for one "
                         "sequence use [ids]")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, input_ids has {shape}")
    return a.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------------------------
# Heads: the prediction networks on top of the encoder


@dataclass
class HeadOutput:
    """What a head returns: logits (unnormalised scores), and the loss when labels were given.

    loss    scalar Tensor (mean cross-entropy over labelled positions), or None
    logits  (B, C) per sequence, (B, T, C) per token, or (B, T, V) for the masked LM
    """

    loss: Tensor | None
    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class _Head(BertPreTrainedModel):
    """Shared by the heads: the encoder is `.bert` (θ); everything else is the head (ω)."""

    bert: BertModel

    def _loss(self, logits: Tensor, labels):
        if labels is None:
            return None
        labels = _as_labels(get_array_module(logits.data), labels, logits.shape[:-1])
        return F.cross_entropy(logits, labels)


def _as_labels(xp, labels, shape):
    labels = labels.data if isinstance(labels, Tensor) else labels
    # labels on the host stay there: cross_entropy checks their range before moving them
    labels = labels if is_device_array(labels) else np.asarray(labels)
    if labels.shape != shape:
        raise ValueError(f"labels must have shape {shape}, got {labels.shape}")
    return labels.astype(np.int64, copy=False)


class BertForSequenceClassification(_Head):
    """One label per sequence: dropout + linear on one summary vector of the sequence.

    The summary (config.pooling) is the pooled [CLS] vector, tanh(dense(h_[CLS])) ("cls",
    BERT's), or the mean of the token vectors over the attention mask ("mean", how
    all-MiniLM-L6-v2 was trained to summarise a sentence).
    input_ids (B, T) -> logits (B, C), C = config.num_labels; labels (B,) class ids.
    """

    hf_architecture = "BertForSequenceClassification"

    def __init__(self, config: BertConfig):
        self.config = config
        self.bert = BertModel(config)
        p = config.classifier_dropout
        self.dropout = Dropout(config.hidden_dropout_prob if p is None else p)
        self.classifier = Linear(config.hidden_size, config.num_labels,
                                 std=config.initializer_range)

    def forward(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                token_type_ids: ArrayLike | None = None, labels: ArrayLike | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> HeadOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_hidden_states, output_attentions)
        if self.config.pooling == "mean":
            mask = (np.ones(out.last_hidden_state.shape[:2], dtype=np.int64)
                    if attention_mask is None else attention_mask)
            summary = mean_pool(out.last_hidden_state, mask)  # (B, H)
        else:
            summary = out.pooler_output  # (B, H)
        logits = self.classifier(self.dropout(summary))  # (B, C)
        return HeadOutput(self._loss(logits, labels), logits, out.hidden_states, out.attentions)

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """As BertPreTrainedModel.save_pretrained; a mean-pooled model also gets a warning,
        because transformers reads the folder but ignores `pooling` and uses the pooler."""
        if self.config.pooling == "mean":
            warnings.warn(
                "this classifier summarises a text by the mean of its token vectors "
                "(config pooling='mean'). minibert loads it back as it is, but transformers' "
                "BertForSequenceClassification ignores that field and classifies the pooled "
                "[CLS] vector instead: opened there it gives other predictions. Use minibert to "
                "run it, or fine-tune with pooling='cls' for a model transformers runs as is.",
                stacklevel=2)
        super().save_pretrained(path)


class BertForTokenClassification(_Head):
    """One label per token (named entities, ...): dropout + linear on every hidden state.

    input_ids (B, T) -> logits (B, T, C); labels (B, T), -100 where there is nothing to
    predict (padding, [CLS], [SEP], word-pieces after the first).
    """

    hf_architecture = "BertForTokenClassification"

    def __init__(self, config: BertConfig):
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        p = config.classifier_dropout
        self.dropout = Dropout(config.hidden_dropout_prob if p is None else p)
        self.classifier = Linear(config.hidden_size, config.num_labels,
                                 std=config.initializer_range)

    def forward(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                token_type_ids: ArrayLike | None = None, labels: ArrayLike | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> HeadOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_hidden_states, output_attentions)
        logits = self.classifier(self.dropout(out.last_hidden_state))  # (B, T, C)
        return HeadOutput(self._loss(logits, labels), logits, out.hidden_states, out.attentions)


class BertForMaskedLM(_Head):
    """Predict the hidden word at each [MASK]: BERT's pre-training task.

    transform: dense + GELU + LayerNorm on every hidden state, then the decoder scores every
    word of the vocabulary. The decoder's weight *is* the word-embedding table (tied, as in
    BERT: a word's input vector is also its output vector), plus a bias of its own.
    input_ids (B, T) -> logits (B, T, V); labels (B, T): the original id at masked
    positions, -100 everywhere else.
    """

    hf_architecture = "BertForMaskedLM"

    def __init__(self, config: BertConfig, add_pooling_layer: bool = False):
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=add_pooling_layer)
        H = config.hidden_size
        self.transform = Linear(H, H, std=config.initializer_range)
        self.transform_norm = LayerNorm(H, config.layer_norm_eps)
        self.decoder_bias = Parameter(np.zeros(config.vocab_size, dtype=np.float32))

    def word_scores(self, last_hidden_state: Tensor) -> Tensor:
        """The MLM head: a score for every vocabulary word at every position. (B, T, H) ->
        (B, T, V)"""
        h = self.transform_norm(F.gelu(self.transform(last_hidden_state)))  # (B, T, H)
        E = self.bert.embeddings.word_embeddings.weight  # (V, H), tied
        return F.linear(h, E.T, self.decoder_bias)  # (B, T, V): h · e_w + b_w for each word w

    def forward(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                token_type_ids: ArrayLike | None = None, labels: ArrayLike | None = None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> HeadOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_hidden_states, output_attentions)
        logits = self.word_scores(out.last_hidden_state)
        return HeadOutput(self._loss(logits, labels), logits, out.hidden_states, out.attentions)


@dataclass
class PreTrainingOutput(HeadOutput):
    """HeadOutput plus the next-sentence scores: logits (B, T, V) for the masked words,
    seq_relationship_logits (B, 2) for "B follows A" (0) or "B is a random sentence" (1)."""

    seq_relationship_logits: Tensor | None = None


class BertForPreTraining(BertForMaskedLM):
    """BERT's two pre-training tasks at once: masked LM, and next-sentence prediction (NSP).

    NSP: given a pair [CLS] A [SEP] B [SEP], was B the sentence after A in the corpus (label 0)
    or a random sentence (label 1)? It is read from the pooled [CLS] vector, tanh(dense(h_[CLS]))
    -- this task is what BERT's pooler was trained for -- by a linear layer H -> 2, saved as
    transformers' ``cls.seq_relationship``. loss = MLM loss + NSP loss.
    input_ids (B, T) -> logits (B, T, V), seq_relationship_logits (B, 2); labels (B, T) as in
    BertForMaskedLM, next_sentence_label (B,).
    """

    hf_architecture = "BertForPreTraining"

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=True)
        self.seq_relationship = Linear(config.hidden_size, 2, std=config.initializer_range)

    def forward(self, input_ids: ArrayLike, attention_mask: ArrayLike | None = None,
                token_type_ids: ArrayLike | None = None, labels: ArrayLike | None = None,
                next_sentence_label: ArrayLike | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False) -> PreTrainingOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids,
                        output_hidden_states, output_attentions)
        logits = self.word_scores(out.last_hidden_state)  # (B, T, V)
        nsp_logits = self.seq_relationship(out.pooler_output)  # (B, 2)
        losses = [self._loss(logits, labels), self._loss(nsp_logits, next_sentence_label)]
        losses = [x for x in losses if x is not None]
        loss = losses[0] + losses[1] if len(losses) == 2 else (losses[0] if losses else None)
        return PreTrainingOutput(loss, logits, out.hidden_states, out.attentions, nsp_logits)
