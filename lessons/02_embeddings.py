"""Lesson 2: token ids x_0 ... x_m -> embeddings e_0 ... e_m.

    .venv/bin/python lessons/02_embeddings.py

e_i = word[x_i] + position[i] + segment[type_i], then LayerNorm — computed here piece by piece
with the real MiniLM tables, and compared with what the model's embedding layer outputs.
"""

import numpy as np
from _common import banner, minilm_dir, show

from minibert import no_grad
from minibert.model import BertModel
from minibert.tokenizer import Tokenizer

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)
model = BertModel.from_pretrained(model_dir)  # eval mode: dropout is off
emb = model.embeddings
H = model.config.hidden_size

banner("1. The input: one sentence pair (so that both segments appear)")
enc = tok.encode("The cat sat.", "It was tired.")
ids = np.array([enc.input_ids])  # (B, T) with B = 1
types = np.array([enc.token_type_ids])
print(" ".join(enc.tokens))
show("input_ids x", ids)
show("token_type_ids", types)
T = ids.shape[1]

banner("2. The three lookup tables (rows = vectors of size H)")
show("word_embeddings.weight (V, H)", emb.word_embeddings.weight, values=False)
show("position_embeddings.weight (P, H)", emb.position_embeddings.weight, values=False)
show("token_type_embeddings.weight (2, H)", emb.token_type_embeddings.weight, values=False)
print(f"V = {model.config.vocab_size} tokens, P = {model.config.max_position_embeddings} "
      f"positions, H = {H}")

banner("3. Look up each part for our T tokens")
with no_grad():
    word = emb.word_embeddings(ids)  # row x_i of the word table, for each token
    position = emb.position_embeddings(np.arange(T))  # rows 0, 1, ..., T-1
    segment = emb.token_type_embeddings(types)  # row 0 or 1
    show("word[x_i]          (B, T, H)", word)
    show("position[i]           (T, H)", position)
    show("segment[type_i]    (B, T, H)", segment)
    print("position has no batch axis: the same position vectors are added to every sequence")
    print("(broadcasting). Without them, attention could not tell 'cat bites dog' from "
          "'dog bites cat'.")

    banner("4. Sum them, then LayerNorm")
    e_sum = word + position + segment
    show("word + position + segment (B, T, H)", e_sum)
    s = e_sum.numpy()[0]
    print(f"per-token mean of the sum: {np.round(s.mean(-1)[:5], 4)} …   "
          f"std: {np.round(s.std(-1)[:5], 4)} …")
    e = emb.layer_norm(e_sum)
    show("e = LayerNorm(sum)         (B, T, H)", e)
    z = (s - s.mean(-1, keepdims=True)) / s.std(-1, keepdims=True)  # before gamma and beta
    print(f"LayerNorm first makes every token's vector mean 0, std 1 (e.g. token 1: mean "
          f"{z[1].mean():.1e}, std {z[1].std():.4f}),")
    print("then scales by gamma and shifts by beta (learned, one of each per hidden unit):")
    show("gamma (H,)", emb.layer_norm.gamma)
    show("beta  (H,)", emb.layer_norm.beta)

    banner("5. Check against the model's own embedding layer (its hidden_states[0])")
    # Only the embedding layer runs here, not the encoder: in a learner copy this lesson needs
    # no exercise beyond chapter 2.
    h0 = emb(ids, types)
    show("model.embeddings(ids, types) (B, T, H)", h0)
    diff = float(np.abs(e.numpy() - h0.numpy()).max())
    print(f"max |our e - model's| = {diff:.2e}")
    print(f"the sum matches the model's embedding output: {diff < 1e-5}")
print("\nNext: minibert/model.py (BertEmbeddings), and exercise 2.1 — the backward of the")
print("embedding lookup in minibert/functional.py (a scatter-add of gradients into rows).")
