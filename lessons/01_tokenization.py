"""Lesson 1: from text to token ids x_0 ... x_m.

    .venv/bin/python lessons/01_tokenization.py

Words-and-punctuation splitting, WordPiece sub-words with the real MiniLM vocabulary (the same
30,522-token vocabulary as bert-base-uncased), the special tokens [CLS] and [SEP], a sentence
pair, and a padded batch with its attention mask. Read lessons/01_tokenization.md alongside.
"""

from _common import banner, minilm_dir, show

from minibert.data import read_labelled
from minibert.datasets import support_tickets_dir
from minibert.tokenizer import SPECIAL_TOKENS, BasicTokenizer, Tokenizer, wordpiece

TEXT = "Neuroplasticity lets the brain rewire itself!"

banner("1. Words and punctuation (BasicTokenizer: no vocabulary involved)")
basic = BasicTokenizer(lowercase=True)
words = basic.tokenize(TEXT)
print(f"text:  {TEXT!r}")
print(f"words: {words}   ({len(words)} words)")

banner("2. A words-only vocabulary cannot cope with a word it has never seen")
# A vocabulary of whole words: every word of the support-ticket training set (plus the five
# special tokens). With no "##" pieces in it, WordPiece can only match a word as a whole.
tickets = read_labelled(support_tickets_dir() / "train.tsv")
ticket_words = sorted({w for t in tickets.texts for w in basic.tokenize(t)})
words_only = Tokenizer(list(SPECIAL_TOKENS) + ticket_words)
print(f"words-only vocabulary: {words_only.vocab_size} entries (from {len(tickets)} tickets)")
unk_tokens = words_only.tokenize(TEXT)
print(f"tokens: {unk_tokens}")
# one word, one token here (no ## pieces), so the lists line up
unknown = [w for w, t in zip(words, unk_tokens, strict=True) if t == "[UNK]"]
print(f"-> {len(unknown)} of {len(words)} words never occur in the tickets: {unknown} all "
      "became [UNK], their meaning is lost.")

banner("3. WordPiece with the real MiniLM vocabulary")
tok = Tokenizer.from_pretrained(minilm_dir())
print(tok)
pieces = wordpiece("neuroplasticity", tok.vocab)
print(f"wordpiece('neuroplasticity') = {pieces}")
print(f"neuroplasticity -> {' '.join(pieces)}   (every piece is a known token)")
print(f"ids of the pieces: {tok.convert_tokens_to_ids(pieces)}")
print(f"tokenize(text) = {tok.tokenize(TEXT)}")
print("'##' marks a piece that continues the word before it; no [UNK] anywhere.")

banner("4. Encoding one text: x_0 ... x_m with [CLS] first and [SEP] last")
enc = tok.encode(TEXT)
for i, (t, x) in enumerate(zip(enc.tokens, enc.input_ids, strict=True)):
    print(f"  x_{i:<2} = {x:>5}   {t}")
show("input_ids", enc.input_ids)
print(f"[CLS] = {tok.cls_token_id}, [SEP] = {tok.sep_token_id}, [PAD] = {tok.pad_token_id}, "
      f"[MASK] = {tok.mask_token_id}, [UNK] = {tok.unk_token_id}")
print(f"decode(input_ids) = {tok.decode(enc.input_ids)!r}")

banner("5. A pair of texts: [CLS] a [SEP] b [SEP], told apart by token_type_ids")
pair = tok.encode("How do I reset my password?", "Click 'Forgot password' on the login page.")
print(" ".join(pair.tokens))
show("token_type_ids (segment 0 / 1)", pair.token_type_ids)

banner("6. A batch: pad to the longest row, attention_mask = 1 on real tokens, 0 on padding")
batch = tok.batch_encode(["I was charged twice.", TEXT])
for row in batch.tokens:
    print("  ", row)
show("input_ids", batch["input_ids"])
show("attention_mask", batch["attention_mask"])
show("token_type_ids", batch["token_type_ids"])
print("row 0 is padded with [PAD] (id 0); its attention_mask is 0 there, so the model ignores it.")
