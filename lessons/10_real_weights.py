"""Lesson 10: loading real BERT weights, and checking them against a reference.

    .venv/bin/python lessons/10_real_weights.py

A checkpoint is a folder with config.json (the sizes) and model.safetensors (the numbers).
We read the safetensors header, map Hugging Face's parameter names to minibert's, load the
model, and compare its outputs with the reference outputs of Hugging Face's own BertModel
stored in tests/fixtures/minilm_reference.safetensors (max absolute difference per layer).
"""

import json
import struct

import numpy as np
from _common import REPO, banner, minilm_dir, show

from minibert import no_grad
from minibert.checkpoint import load_config, name_table
from minibert.model import BertModel
from minibert.safetensors_io import load_file, read_header
from minibert.sentence import l2_normalize, mean_pool

model_dir = minilm_dir()
FIXTURES = REPO / "tests" / "fixtures"

banner("1. config.json: the hyper-parameters")
print(f"folder: {model_dir}")
config = load_config(model_dir)
for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "max_position_embeddings", "type_vocab_size"):
    print(f"  {key:<26} {getattr(config, key)}")
print(f"  head size d = hidden / heads = {config.head_size}")

banner("2. model.safetensors: 8 bytes of header length, a JSON header, then raw numbers")
weights = model_dir / "model.safetensors"
with open(weights, "rb") as f:
    (header_len,) = struct.unpack("<Q", f.read(8))  # little-endian unsigned 64-bit integer
print(f"file size {weights.stat().st_size:,} bytes; header: {header_len:,} bytes of JSON")
header = read_header(weights)
names = sorted(k for k in header if k != "__metadata__")
print(f"{len(names)} tensors; the first few entries of the header:")
for name in names[:5]:
    print(f"  {name:<55} {json.dumps(header[name])}")
print("data_offsets = [start, end) in bytes after the header: a tensor is read without parsing")
print("anything else, and can be memory-mapped.")

banner("3. Hugging Face names <-> minibert names (Linear weights are transposed)")
model = BertModel.from_pretrained(model_dir)
rows = name_table(model)
shown = [r for r in rows if ".0." in r[0] or not r[0].startswith("layers.")][:12]
for ours, hf, transpose in shown:
    print(f"  {hf:<52} -> {ours:<34} {'transposed' if transpose else ''}")
print(f"  … {len(rows)} parameters in all (the file's 104th entry, embeddings.position_ids, is "
      "just the numbers 0..511, not a parameter)")
# A non-square weight, so that the shapes themselves show the transpose: the feed-forward
# network's first layer widens H = 384 to 4H = 1536 (a square one like the query's would not).
hf_w = load_file(weights)["encoder.layer.0.intermediate.dense.weight"]
show("HF encoder.layer.0.intermediate.dense.weight (out, in)", hf_w, values=False)
show("minibert layers.0.ffn_in.W (in, out)", model.layers[0].ffn_in.W, values=False)
print(f"one is the transpose of the other: "
      f"{bool(np.array_equal(hf_w.T, model.layers[0].ffn_in.W.numpy()))}")
print("(PyTorch computes x Wᵀ + b with W stored (out, in); minibert writes x W + b as the math.)")

banner("4. Compare with the reference outputs of Hugging Face's BertModel")
reference = load_file(FIXTURES / "minilm_reference.safetensors")
meta = json.loads((FIXTURES / "minilm_reference.json").read_text(encoding="utf-8"))
case = next(c for c in meta["cases"] if c["name"] == "batch5")
ids = np.array(case["input_ids"])
mask = np.array(case["attention_mask"])
types = np.array(case["token_type_ids"])
print(f"case 'batch5': {case['description']}")
show("input_ids", ids, values=False)
print(f"real tokens per row: {mask.sum(1)}")
with no_grad():
    out = model(ids, mask, types, output_hidden_states=True, output_attentions=True)
    emb = l2_normalize(mean_pool(out.last_hidden_state, mask)).numpy()
real = mask.astype(bool)  # compare real tokens only (padded positions are never used)
tol = meta["tolerances"]["hidden_states_abs"]
print(f"\n{'output':<26} {'max |minibert - reference|':>28}")
worst = 0.0
for i, h in enumerate(out.hidden_states):
    d = float(np.abs(h.numpy()[real] - reference[f"batch5.hidden_states.{i}"][real]).max())
    worst = max(worst, d)
    print(f"{'embeddings' if i == 0 else f'layer {i}':<26} {d:>28.2e}")
for i in (0, len(out.attentions) - 1):
    d = float(np.abs(out.attentions[i].numpy() - reference[f"batch5.attentions.{i}"]).max())
    worst = max(worst, d)
    print(f"{f'attention probs, layer {i + 1}':<26} {d:>28.2e}")
d = float(np.abs(out.pooler_output.numpy() - reference["batch5.pooler_output"]).max())
worst = max(worst, d)
print(f"{'pooler output':<26} {d:>28.2e}")
cos = (emb * reference["batch5.sentence_embedding"]).sum(1)
print(f"{'sentence embeddings':<26} {'cosine ≥ ' + format(cos.min(), '.7f'):>28}")
print(f"\nall within the tolerance {tol:g}: {worst < tol}")
print("Next: minibert/checkpoint.py (NAME_TABLE, load_hf_state_dict) and "
      "minibert/safetensors_io.py.")
