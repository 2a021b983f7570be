"""Lesson 13: discarding the pre-training head.

    .venv/bin/python lessons/13_discarding_the_head.py

Pre-training trains an encoder θ together with a head for its own task (predict the masked
word). Fine-tuning keeps θ and replaces that head by a new prediction network ω for the
downstream task. Here we pre-train a tiny BERT with MLM for a few steps, save it, load the
folder as a sequence classifier, and account for every tensor: discarded, kept, or fresh.
No weights needed: the vocabulary and the model are made here.
"""

import warnings

import numpy as np
from _common import banner, out_dir

import minibert
from minibert.checkpoint import loading_info
from minibert.config import BertConfig
from minibert.data import read_labelled
from minibert.datasets import support_tickets_dir
from minibert.model import BertForMaskedLM, BertForSequenceClassification
from minibert.safetensors_io import load_file
from minibert.tokenizer import Tokenizer
from minibert.train import pretrain_mlm

OUT = out_dir() / "13_tiny_mlm"  # lessons/out/ (or $MINIBERT_LESSONS_OUT): written, read back

texts = read_labelled(support_tickets_dir() / "train.tsv").texts
tok = Tokenizer.train(texts, vocab_size=800)
minibert.manual_seed(0)
mlm = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=128,
                                 max_position_embeddings=64))
banner("1. Pre-train a tiny BERT with its MLM head, then save it")
history = pretrain_mlm(mlm, tok, texts, epochs=1, batch_size=32, lr=1e-3, max_length=48,
                       seed=0, progress=False)
print(f"MLM loss: first step {history['steps'][0]['loss']:.3f}, last step "
      f"{history['steps'][-1]['loss']:.3f} ({len(history['steps'])} steps)")
mlm.save_pretrained(OUT)
tok.save_pretrained(OUT)
saved = load_file(OUT / "model.safetensors")  # what is on disk, under transformers' names
print(f"{OUT.name}/model.safetensors holds {len(saved)} tensors, "
      f"{sum(a.size for a in saved.values()):,} numbers")

banner("2. Load the folder as a sequence classifier (4 ticket classes)")
minibert.manual_seed(1)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    clf = BertForSequenceClassification.from_pretrained(OUT, num_labels=4)
for w in caught:
    print("from_pretrained says:", str(w.message).replace(str(OUT.parent) + "/", "")[:150], "…")

# Account for every tensor. loading_info (exercise 13.1, minibert/checkpoint.py) sorts the
# file's names the way from_pretrained matched them: kept, discarded, tied (nothing of their
# own), and the classifier's parameters that the file lacks: fresh. Printed here without the
# "bert." prefix (the file of a masked LM writes its encoder as "bert.embeddings...", the head
# as "cls.predictions...").
info = loading_info(clf, OUT)
short = lambda name: name.removeprefix("bert.")
params = dict(clf.named_parameters())

banner("3. Every tensor accounted for")
print(f"discarded (the MLM head: in the file, but the classifier has no place for them): "
      f"{len(info['discarded'])}")
for n in info["discarded"]:
    print(f"  {short(n):<46} {saved[n].shape}")
print(f"fresh (the classifier's new ω, and the pooler the MLM model never had): "
      f"{len(info['fresh'])}")
for n in info["fresh"]:
    print(f"  {short(n):<46} {params[n].shape}")
print(f"kept (the encoder θ): {len(info['kept'])} tensors")
print(f"tied (in the file, holding nothing of their own): {len(info['tied'])}")
n_discarded = sum(saved[n].size for n in info["discarded"])
n_fresh = sum(params[n].data.size for n in info["fresh"])
n_kept = sum(saved[n].size for n in info["kept"])
print(f"numbers: {n_kept:,} kept, {n_discarded:,} discarded, {n_fresh:,} fresh")
print(f"every tensor of the file is in one list: "
      f"{sorted(info['kept'] + info['discarded'] + info['tied']) == sorted(saved)}")
V, H = mlm.config.vocab_size, mlm.config.hidden_size
print(f"The MLM decoder scores all V = {V} words from each H = {H} vector; its weight (V, H) is")
print("the word-embedding table itself (tied), so it is not discarded: it stays as the")
print(f"encoder's embeddings. Only its bias ({V} numbers) and the transform (dense + LayerNorm)")
print("go. The classifier needs H -> 4 class scores instead: a fresh (H, 4) matrix.")

banner("4. The encoder is identical")
mlm_state, clf_state = mlm.bert.state_dict(), clf.bert.state_dict()
same = [n for n in mlm_state if np.array_equal(mlm_state[n], clf_state[n])]
print(f"encoder tensors equal in both models: {len(same)} of {len(mlm_state)}")
batch = tok.batch_encode(texts[:3], max_length=48)
with minibert.no_grad():
    h_mlm = mlm.eval().bert(batch["input_ids"], batch["attention_mask"]).last_hidden_state.numpy()
    h_clf = clf.eval().bert(batch["input_ids"], batch["attention_mask"]).last_hidden_state.numpy()
print(f"hidden states of 3 tickets {h_mlm.shape}: identical in both models: "
      f"{np.array_equal(h_mlm, h_clf)}")
print("What pre-training learned lives in θ and survives; the task head ω starts random and is")
print("what fine-tuning must train (lesson 8), together with θ or alone (lesson 14).")

print("\nRead next: loading_info and match_weights in minibert/checkpoint.py (the warnings")
print("above), NAME_TABLE and HEAD_NAME_TABLE (which names belong to which head).")
