"""Lesson 3: self-attention, one head, step by step.

    .venv/bin/python lessons/03_attention.py

Q = x W_q, K = x W_k, V = x W_v; scores = Q Kᵀ / √d; add the padding mask; softmax over each
row; context = probabilities · V. Computed by hand with the real weights of MiniLM's first
layer, head 1, on a padded batch, and checked against the attention map the model returns.
Saves a heatmap to lessons/out/ (or $MINIBERT_LESSONS_OUT).
"""

import math

import numpy as np
from _common import banner, minilm_dir, out_dir, show

from minibert import Tensor, no_grad
from minibert import functional as F
from minibert.course.viz import attention_heatmap
from minibert.model import BertModel
from minibert.tokenizer import Tokenizer

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
model = BertModel.from_pretrained(model_dir)
# Code indices count from 0, the course's names from 1: model.layers[0] is "layer 1" and head
# index 0 is "head 1" (hidden_states[0] is the embeddings, hidden_states[1] layer 1's output).
LAYER, HEAD, ROW = 0, 0, 0

banner("1. A padded batch of two sentences; we follow row 0, which has padding")
batch = tok.batch_encode(["The cat sat on the mat.",
                          "My invoice shows the wrong amount for this month, please fix it."])
tokens = batch.tokens[ROW] + ["[PAD]"] * int((batch["attention_mask"][ROW] == 0).sum())
print("row 0:", " ".join(tokens))
show("attention_mask", batch["attention_mask"])

with no_grad():
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                output_hidden_states=True, output_attentions=True)
    attn = model.layers[LAYER].attention
    x = out.hidden_states[LAYER][ROW]  # the input of layer 1 = the embeddings, (T, H)
    T, H = x.shape
    h, d = attn.num_heads, attn.head_size
    print(f"T = {T} tokens, H = {H}, h = {h} heads of size d = H / h = {d}")
    show("x (input of the layer)       (T, H)", x)

    banner("2. Queries, keys, values: three linear maps of x, then take head 1's slice")
    cols = slice(HEAD * d, (HEAD + 1) * d)  # head 1 (index 0) owns units 0 .. d-1
    Q = attn.query(x)[:, cols]
    K = attn.key(x)[:, cols]
    V = attn.value(x)[:, cols]
    show("Q = (x W_q + b_q)[:, head]     (T, d)", Q)
    show("K                             (T, d)", K)
    show("V                             (T, d)", V)

    banner("3. Scores: how well each query matches each key, scaled by 1/√d")
    scores = (Q @ K.T) * (1.0 / math.sqrt(d))
    show("scores = Q Kᵀ / √d            (T, T)", scores)
    print(f"dividing by √d = {math.sqrt(d):.2f} keeps the scores' spread moderate, so the "
          "softmax does not saturate")

    banner("4. The padding mask: a huge negative number on padded keys (columns)")
    m = batch["attention_mask"][ROW]
    bias = np.where(m == 1, 0.0, np.finfo(np.float32).min).astype(np.float32)
    show("mask bias                       (T,)", bias, values=False)
    print(f"    {bias[m == 1][0]:.0f} on the {int(m.sum())} real keys, {bias[m == 0][0]:.3g} "
          f"(the most negative float32) on the {int((m == 0).sum())} padded keys")
    masked = scores + Tensor(bias)  # broadcast over rows: every query ignores padded keys
    probs = F.softmax(masked, axis=-1)
    show("probs = softmax(scores + bias) (T, T)", probs)
    p = probs.numpy()
    print(f"row sums: {np.round(p.sum(axis=-1), 6)}")
    print(f"every row sums to 1: {bool(np.allclose(p.sum(axis=-1), 1.0, atol=1e-5))}")
    print(f"attention paid to [PAD] keys (largest entry in padded columns): "
          f"{p[:, m == 0].max():.1e}")

    banner("5. Context: each token's new vector is a weighted average of the values")
    context = probs @ V
    show("context = probs V              (T, d)", context)
    print("all h heads do this side by side; their contexts are concatenated back to (T, H)")
    print("and mixed by the output projection (MultiHeadSelfAttention.forward).")

    banner("6. Check against the attention map the model returned")
    model_probs = out.attentions[LAYER][ROW, HEAD]
    show("out.attentions[0][0, 0] (row 0, head 1)", model_probs)
    diff = float(np.abs(p - model_probs.numpy()).max())
    print(f"max |ours - model's| = {diff:.2e}")
    print(f"our attention map matches the model's: {diff < 1e-5}")

pad_rows = p[m == 0]  # the [PAD] *queries*: the mask hides padded keys, not padded queries
favourite = {tokens[j] for j in pad_rows.argmax(axis=1)}
print(f"\nthe {len(pad_rows)} [PAD] query rows are computed too; each puts most weight on "
      f"{sorted(favourite)}. Nothing uses their outputs (pooling, the loss and the next layers' "
      "attention all skip padded positions), so what they attend to does not matter.")

title = f"MiniLM layer {LAYER + 1}, head {HEAD + 1}"
fig = attention_heatmap(p, tokens, title=title)
path = out_dir() / "03_attention_heatmap.png"
fig.savefig(path, dpi=100)
print(f"saved the heatmap '{title}' to {path}: row i = where token i looks; the [PAD] columns "
      "are 0.")

banner("7. All heads together: concatenate their contexts, then the output projection W_O")
with no_grad():
    bias_row = Tensor(bias)  # the same padding mask for every head
    contexts = []
    for k in range(h):  # head k + 1 owns hidden units k·d … (k+1)·d − 1 of Q, K and V
        c = slice(k * d, (k + 1) * d)
        Qk, Kk, Vk = attn.query(x)[:, c], attn.key(x)[:, c], attn.value(x)[:, c]
        Ak = F.softmax((Qk @ Kk.T) * (1.0 / math.sqrt(d)) + bias_row, axis=-1)
        contexts.append((Ak @ Vk).numpy())
    concat = np.concatenate(contexts, axis=-1)  # (T, h·d) = (T, H): head 1's units first
    show(f"concat(head 1 … head {h})        (T, H)", concat)
    mixed = attn.output(Tensor(concat))  # concat W_O + b_O: every output unit reads all heads
    show("concat W_O + b_O              (T, H)", mixed)
    W_O = attn.output.W.numpy()
    print(f"W_O is ({W_O.shape[0]}, {W_O.shape[1]}): row block k·d … (k+1)·d − 1 multiplies head "
          f"k + 1's context, so")
    print("each output unit is a learned mix of all the heads' findings; without W_O the heads "
          "would")
    print("stay in separate slices and could not combine what they found.")
    full_bias = Tensor(bias[None, None, None, :])  # (B, h, T, T) broadcast, for the module
    module_out = attn(x[None], full_bias)[0].numpy()[0]
    diff = float(np.abs(mixed.numpy() - module_out).max())
    print(f"max |ours - MultiHeadSelfAttention's output| = {diff:.2e}")
    print(f"concatenate-then-project matches the model's attention output: {diff < 1e-4}")
print("\nNext: scaled_dot_product_attention and MultiHeadSelfAttention in minibert/model.py;")
print("exercise 3.1 is softmax in minibert/functional.py, 3.2 the attention of one head.")
