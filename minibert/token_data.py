"""One label per word: token-labelled files, BIO tags, and word labels aligned with word pieces.

A token-labelling example is a sentence already cut into words, with one tag per word:

    words  My  Kestrel    Hub        arrived  on  12      March
    tags   O   B-PRODUCT  I-PRODUCT  O        O   B-DATE  I-DATE

Tags follow the BIO scheme: B-TYPE begins an entity, I-TYPE continues it, O is outside.

The model sees word pieces, not words. "KS-204881" is one word but five pieces (ks - 204 ##8
##81); a word gets exactly one prediction, so only the first piece of a word carries its label
and the others get -100, which the loss skips (as do [CLS], [SEP] and padding):

    pieces   [CLS]  my  kestrel    hub        ...  ks      -     204   ##8   ##81  [SEP]
    labels   -100   O   B-PRODUCT  I-PRODUCT  ...  B-ORDER -100  -100  -100  -100  -100

Files: CoNLL (``word<TAB>tag`` a line, a blank line between sentences) or JSON lines
(``{"tokens": [...], "tags": [...]}``, as Hugging Face datasets write them).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .data import IGNORE_INDEX, DataError, check_data_file, json_records

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .tokenizer import Tokenizer

# Punctuation split off the ends of a whitespace-separated chunk by `split_words` (the rule the
# shipped dataset was made with): "KS-204881," -> "KS-204881" ",".
_LEADING, _TRAILING = "(\"'", ".,!?;:)\"'"


@dataclass
class TokenLabelledData:
    """Sentences as lists of words, with one tag per word. `source` names the file in errors."""

    words: list[list[str]]
    tags: list[list[str]]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if len(self.words) != len(self.tags):
            raise DataError(f"{self.source}: {len(self.words)} sentences but {len(self.tags)} "
                            "tag sequences")
        for i, (w, t) in enumerate(zip(self.words, self.tags, strict=True)):
            if len(w) != len(t):
                raise DataError(f"{self.source}: sentence {i + 1} has {len(w)} words but "
                                f"{len(t)} tags ({' '.join(w)[:80]!r}); give exactly one tag "
                                "per word")
            if not w:
                raise DataError(f"{self.source}: sentence {i + 1} has no words")
        for i, t in enumerate(self.tags):
            check_bio(t, f"{self.source}, sentence {i + 1}")

    def __len__(self) -> int:
        return len(self.words)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TokenLabelledData:
        return TokenLabelledData([self.words[i] for i in indices],
                                 [self.tags[i] for i in indices], self.source)


def check_bio(tags: list[str], where: str) -> None:
    """Every tag is O, B-TYPE or I-TYPE (a DataError naming `where` otherwise)."""
    for tag in tags:
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise DataError(f"{where}: tag {tag!r} is not BIO; use O, B-TYPE or I-TYPE "
                            "(e.g. B-PRODUCT, I-PRODUCT)")


def tag_names(tags: Iterable[Sequence[str]]) -> list[str]:
    """The tag set of some tag sequences in a fixed order: O first, then sorted by type, B before
    I ("O", "B-DATE", "I-DATE", "B-ORDER", ...). Every type gets both its B- and I- tag, so a
    model can predict an I- tag the training data happened not to contain."""
    types = sorted({t[2:] for seq in tags for t in seq if t != "O"})
    return ["O"] + [f"{bi}-{t}" for t in types for bi in ("B", "I")]


def encode_tags(tags: list[list[str]], label2id: dict[str, int], source: str) -> list[list[int]]:
    """Tag names -> ids. A tag the model does not know is a DataError naming it and the file."""
    out = []
    for i, seq in enumerate(tags):
        try:
            out.append([label2id[t] for t in seq])
        except KeyError as e:
            raise DataError(f"{source}: sentence {i + 1} has the tag {e.args[0]!r}, which the "
                            f"model does not know (its tags: {sorted(label2id)}); evaluate "
                            "with data of the same tag set the model was trained on") from None
    return out


# ----------------------------------------------------------------------------------------------
# Reading files


def read_token_labelled(path: str | os.PathLike[str],
                        format: str | None = None) -> TokenLabelledData:
    """Read a token-labelled file: CoNLL (.conll, .txt, .tsv) or JSON lines (.jsonl).

    CoNLL: ``word<TAB>tag`` (or ``word tag``) a line, a blank line between sentences; a line
    starting with ``-DOCSTART-`` is skipped. With more than two columns (as in CoNLL-2003) the
    first is the word and the last the tag. JSON lines: one object per sentence with a list of
    words under "tokens" (or "words") and one of tags under "tags" (or "ner_tags", as strings).
    """
    path = check_data_file(path, "data file", "a .conll or .jsonl file")
    fmt = format or ("jsonl" if path.suffix.lower() in (".jsonl", ".json") else "conll")
    if fmt not in ("conll", "jsonl"):
        raise ValueError(f"format must be 'conll' or 'jsonl', got {format!r}")
    words, tags = (_read_jsonl if fmt == "jsonl" else _read_conll)(path)
    if not words:
        raise DataError(f"{path}: no sentences found")
    return TokenLabelledData(words, tags, str(path))


def _read_conll(path: Path) -> tuple[list, list]:
    words: list[list[str]] = []
    tags: list[list[str]] = []
    w: list[str] = []  # the sentence being read: its words and their tags
    t: list[str] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                if w:
                    words.append(w)
                    tags.append(t)
                w, t = [], []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2:
                raise DataError(f"{path}, line {n}: expected 'word<TAB>tag', got {line!r} "
                                "(every word needs a tag; sentences end with a blank line)")
            w.append(cols[0])
            t.append(cols[-1].strip())
    if w:
        words.append(w)
        tags.append(t)
    return words, tags


def _read_jsonl(path: Path) -> tuple[list, list]:
    words, tags = [], []
    for n, obj in json_records(path):
        w, t = obj.get("tokens", obj.get("words")), obj.get("tags", obj.get("ner_tags"))
        if not isinstance(w, list) or not isinstance(t, list):
            raise DataError(f"{path}, line {n}: expected an object with lists 'tokens' and "
                            "'tags'")
        if not all(isinstance(x, str) for x in t):
            raise DataError(f"{path}, line {n}: tags must be strings such as 'B-DATE' "
                            "(integer ids name nothing)")
        words.append([str(x) for x in w])
        tags.append(t)
    return words, tags


def split_words(text: str) -> list[str]:
    """Raw text -> words, by the rule the shipped dataset was made with: split on whitespace,
    then split punctuation off the ends of each chunk.  'My hub (KS-2048), please!' ->
    ['My', 'hub', '(', 'KS-2048', ')', ',', 'please', '!']"""
    out = []
    for chunk in text.split():
        # the word is chunk[a:b]; indices, not chunk = chunk[1:], keep this linear in the
        # chunk's length (a slice per character copies the rest each time)
        a, b = 0, len(chunk)
        while b - a > 1 and chunk[a] in _LEADING:
            a += 1
        while b - a > 1 and chunk[b - 1] in _TRAILING:
            b -= 1
        out += [*chunk[:a], chunk[a:b], *chunk[b:]]
    return out


# ----------------------------------------------------------------------------------------------
# Words -> pieces, and the labels aligned with them


def encode_words(tokenizer: Tokenizer, words: list[str], max_length: int, where: str = "input"
                 ) -> tuple[list[int], list[int | None]]:
    """[CLS] + the pieces of every word + [SEP], cut to max_length tokens.

    Returns (input_ids, word_ids): word_ids[j] is the index of the word that token j is a piece
    of, None for [CLS] and [SEP]. Words that do not fit are left out (the caller can tell from
    word_ids). A word that gives no token at all (only control characters) is a DataError.
    """
    ids = [tokenizer.cls_token_id]
    word_ids: list[int | None] = [None]
    for i, word in enumerate(words):
        pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))
        if not pieces:
            raise DataError(f"{where}: word {i + 1} ({word!r}) gives no token; remove it")
        ids += pieces
        word_ids += [i] * len(pieces)
    ids, word_ids = ids[:max_length - 1], word_ids[:max_length - 1]
    return ids + [tokenizer.sep_token_id], word_ids + [None]


def align_labels(word_ids: list[int | None], word_labels: list[int]) -> list[int]:
    """One label per token: a word's label on its first piece, IGNORE_INDEX (-100) on its other
    pieces and on the special tokens."""
    # BEGIN EXERCISE 12.1: align word labels with word pieces. Walk over word_ids; a token whose
    #   word id is None, or the same as the previous token's, gets IGNORE_INDEX; the first piece of
    #   word w gets word_labels[w]. Collect them in `labels`.
    labels, previous = [], None
    for w in word_ids:
        labels.append(IGNORE_INDEX if w is None or w == previous else word_labels[w])
        previous = w
    # END EXERCISE
    return labels


def word_predictions(word_ids: list[int | None], token_preds: Sequence[int] | np.ndarray,
                     num_words: int,
                     fill: int) -> list[int]:
    """The prediction of each word: the one at its first piece. A word cut off by truncation
    gets `fill`."""
    out = [fill] * num_words
    previous = None
    for j, w in enumerate(word_ids):
        if w is not None and w != previous:
            out[w] = int(token_preds[j])
        previous = w
    return out


def token_classification_batch(tokenizer: Tokenizer, data: TokenLabelledData,
                               indices: Sequence[int] | np.ndarray,
                               label2id: dict[str, int] | None, max_length: int) -> dict:
    """A padded batch for BertForTokenClassification.

    Returns input_ids, attention_mask, token_type_ids (B, T) and, when label2id is given,
    labels (B, T) with IGNORE_INDEX wherever there is nothing to predict; also word_ids (a list
    per row) and num_truncated (words cut off by max_length).
    """
    rows, word_ids, truncated = [], [], 0
    for i in indices:
        ids, wids = encode_words(tokenizer, data.words[i], max_length,
                                 f"{data.source}, sentence {i + 1}")
        rows.append(ids)
        word_ids.append(wids)
        truncated += len(data.words[i]) - len({w for w in wids if w is not None})
    T = max(len(r) for r in rows)
    input_ids = np.full((len(rows), T), tokenizer.pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), T), dtype=np.int64)
    for b, r in enumerate(rows):
        input_ids[b, :len(r)] = r
        attention_mask[b, :len(r)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask,
             "token_type_ids": np.zeros_like(input_ids), "word_ids": word_ids,
             "num_truncated": truncated}
    if label2id is not None:
        labels = np.full((len(rows), T), IGNORE_INDEX, dtype=np.int64)
        tag_ids = encode_tags([data.tags[i] for i in indices], label2id, data.source)
        for b, (wids, t) in enumerate(zip(word_ids, tag_ids, strict=True)):
            aligned = align_labels(wids, t)
            labels[b, :len(aligned)] = aligned
        batch["labels"] = labels
    return batch
