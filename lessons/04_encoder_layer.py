"""Lesson 4: one encoder layer, and hidden states layer by layer.

    .venv/bin/python lessons/04_encoder_layer.py

    x = LayerNorm(x + Attention(x))                 "add & norm" after attention
    x = LayerNorm(x + GELU(x W₁ + b₁) W₂ + b₂)      "add & norm" after the feed-forward network

First with a randomly initialised BERT-base-sized model (H = 768, 12 heads; 2 layers are enough
to show the shapes), then with the real MiniLM (H = 384), whose first layer we run step by step.
"""

import numpy as np
from _common import banner, minilm_dir, out_dir, show

import minibert
from minibert import functional as F
from minibert import no_grad
from minibert.config import BertConfig
from minibert.course.viz import encoder_block
from minibert.model import BertModel
from minibert.tokenizer import Tokenizer

model_dir = minilm_dir()
tok = Tokenizer.from_pretrained(model_dir)  # the bert-base-uncased vocabulary (30,522 tokens)
TEXT = "The quick brown fox jumps over the lazy dog near a river."
enc = tok.encode(TEXT)
ids = np.array([enc.input_ids])
print(" ".join(enc.tokens))
print(f"{len(enc)} tokens")

banner("1. BERT-base sizes, random weights: a 15-token input gives a 15 × 768 output")
minibert.manual_seed(0)
base_config = BertConfig(num_hidden_layers=2)  # BERT-base defaults otherwise: 768, 12, 3072
base = BertModel(base_config).eval()
print(f"hidden H = {base_config.hidden_size}, heads h = {base_config.num_attention_heads}, "
      f"feed-forward width = {base_config.intermediate_size}, layers = "
      f"{base_config.num_hidden_layers} (BERT-base has 12)")
per_layer = base.layers[0].num_parameters()
print(f"parameters: {base.num_parameters():,} here; one encoder layer has {per_layer:,}")
with no_grad():
    out = base(ids, output_hidden_states=True)
show("input_ids                 (1, T)", ids)
for i, hs in enumerate(out.hidden_states):
    show(f"hidden_states[{i}]        (1, T, H)", hs, values=False)
print(f"last_hidden_state: {out.last_hidden_state.shape[1]} × {out.last_hidden_state.shape[2]}"
      " per sentence — one 768-vector per token")

banner("2. The real MiniLM, layer 1 step by step (H = 384)")
model = BertModel.from_pretrained(model_dir)
layer = model.layers[0]
with no_grad():
    ref = model(ids, output_hidden_states=True, output_attentions=True)
    x = ref.hidden_states[0]  # the embeddings e_0 ... e_m
    show("x = embeddings               (1, T, H)", x)
    a, probs = layer.attention(x)  # no padding here, so no mask
    show("a = MultiHeadAttention(x)    (1, T, H)", a)
    show("attention probabilities  (1, h, T, T)", probs, values=False)
    x1 = layer.attention_norm(x + a)
    show("x1 = LayerNorm(x + a)        (1, T, H)", x1)
    u = layer.ffn_in(x1)
    show("u = x1 W₁ + b₁      (1, T, 4H = 1536)", u)
    g = F.gelu(u)
    show("GELU(u)                   (1, T, 1536)", g)
    print(f"    GELU lets positive values through and squashes negatives towards 0: "
          f"min of u {u.numpy().min():.2f} -> min of GELU(u) {g.numpy().min():.2f}")
    f = layer.ffn_out(g)
    show("f = GELU(u) W₂ + b₂          (1, T, H)", f)
    x2 = layer.ffn_norm(x1 + f)
    show("x2 = LayerNorm(x1 + f)       (1, T, H)", x2)
    diff = float(np.abs(x2.numpy() - ref.hidden_states[1].numpy()).max())
    print(f"max |x2 - model's hidden_states[1]| = {diff:.2e}   "
          f"matches the model's layer 1: {diff < 1e-4}")

banner("3. How the hidden states change, layer by layer (MiniLM, 6 layers)")
states = [h.numpy()[0] for h in ref.hidden_states]  # L+1 arrays (T, H)
print("layer   mean ‖h_i‖   cos(h_i, same token one layer below)   cos([CLS], 'fox')")
fox = enc.tokens.index("fox")
for i, s in enumerate(states):
    norm = np.linalg.norm(s, axis=-1)
    if i == 0:
        change = "        —"
    else:
        prev = states[i - 1]
        cos = (s * prev).sum(-1) / (norm * np.linalg.norm(prev, axis=-1))
        change = f"{cos.mean():9.3f}"
    cls_fox = s[0] @ s[fox] / (norm[0] * norm[fox])
    print(f"{'emb' if i == 0 else i:>5}   {norm.mean():10.2f}   {change:>26}"
          f"                         {cls_fox:8.3f}")
print("Each layer keeps most of a token's vector (the residual path) and mixes in context from")
print("the other tokens: the vectors drift away from the embeddings as depth grows.")
cfg = model.config
fig = encoder_block(cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size,
                    title=f"One MiniLM encoder layer (of {cfg.num_hidden_layers})")
path = out_dir() / "04_encoder_block.png"
fig.savefig(path, dpi=100)
print(f"\nsaved a diagram of one layer, with MiniLM's sizes, to {path}")
print("\nNext: BertLayer in minibert/model.py; exercises 4.1 (LayerNorm backward), 4.2 (GELU")
print("backward) and 4.3 (dropout) in minibert/functional.py.")
