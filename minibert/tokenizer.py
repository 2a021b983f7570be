"""Turning text into token ids x_0 ... x_m, exactly as BERT does.

Three layers, each usable on its own:

1. ``BasicTokenizer`` — the "words and punctuation" tokenizer. It cleans the text (drops control
   characters and U+FFFD, turns every kind of space into " "), puts spaces around CJK ideographs,
   optionally lower-cases and strips accents, then splits on whitespace and on every punctuation
   character.   "Héllo, wörld!"  ->  ["hello", ",", "world", "!"]

2. ``wordpiece`` — cuts one word into sub-word pieces from a vocabulary, greedily taking the
   longest piece that is in the vocabulary; pieces that continue a word carry a "##" prefix.
   With a vocabulary holding study, ##ing, neuro, ##pl, ##astic, ##ity:
   "studying neuroplasticity" -> ["study", "##ing", "neuro", "##pl", "##astic", "##ity"].
   (BERT's own vocabulary knows "studying" whole and gives "ne ##uro ##pl ##astic ##ity".)

3. ``Tokenizer`` — the front users call: special tokens ([CLS] a [SEP] b [SEP]), truncation,
   padding to NumPy arrays, decoding, loading and saving a ``vocab.txt`` (and reading the
   ``tokenizer.json`` that transformers 5 writes instead). ``Tokenizer.train``
   learns a new WordPiece vocabulary (see ``wordpiece_trainer.py``).

``vocabulary_coverage`` measures any of them on text: the out-of-vocabulary rate and the tokens
per text (lesson 11 compares words, WordPiece and characters with it).

Reference: with a real BERT ``vocab.txt`` the ids are identical to those of Hugging Face's
pure-Python BERT tokenizer (``BertTokenizerLegacy`` in transformers 5, ``BertTokenizer`` in 4.x);
tests/test_tokenizer_parity.py checks that on WikiText-2 and on a list of hard strings.
Known differences from the Rust ``tokenizers`` library (we follow the Python one):

- Character classes come from Python's ``unicodedata`` while Rust uses its own Unicode tables
  (another Unicode version). Code points whose category changed between versions (recently
  assigned emoji and letters) can be split or dropped differently.
- Longest-first truncation of a pair, when an odd token is left to cut from two sequences of
  equal length: Python takes it from the *second*, Rust from the one that was shorter before
  cutting (the first on a tie; see ``truncate_longest_first``).
- ``decode`` only re-joins "##" pieces; it does not "clean up" spaces before punctuation as
  transformers' ``clean_up_tokenization_spaces`` does ("hello , world" stays as is).

This module needs only the standard library and NumPy.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeGuard, overload

import numpy as np

from .fileio import atomic_write, parse_json, short_repr
from .wordpiece_trainer import train_wordpiece

# BERT's special tokens, by role. Their ids come from the vocabulary file.
PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)

# The reference turns words longer than this (in code points) into [UNK] without trying.
MAX_INPUT_CHARS_PER_WORD = 100


# ----------------------------------------------------------------------------------------------
# Character classes (BERT's definitions, not Python's str methods)


def is_whitespace(char: str) -> bool:
    """True for " ", \\t, \\n, \\r and every Unicode space separator (category Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """True for Unicode "other" characters (categories C*: controls, format characters such as
    zero-width joiners, surrogates, private use, unassigned). \\t \\n \\r count as whitespace."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


@cache
def is_punctuation(char: str) -> bool:
    """True for Unicode punctuation (categories P*) and for every ASCII character that is not a
    letter, digit, space or control: BERT also splits off symbols such as $ + < = > ^ ` | ~."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(cp: int) -> bool:
    """True if code point `cp` is a CJK ideograph. Chinese is written without spaces, so BERT
    treats each ideograph as a word of its own. (Hangul, kana are not in these blocks.)"""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _CleanTable(dict):
    """A ``str.translate`` table: code point -> what to write instead (None deletes it).

    There are a million code points, so the table is filled lazily: the first time translate
    meets a character, __missing__ classifies it once; afterwards it is a C-speed dict lookup.
    """

    def __init__(self, split_cjk: bool):
        super().__init__()
        self.split_cjk = split_cjk

    def __missing__(self, cp: int) -> str | None:
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            out = None  # drop NUL, the replacement character and invisible control/format chars
        elif is_whitespace(char):
            out = " "  # no-break space, ideographic space, tab ... all become " "
        elif self.split_cjk and is_cjk(cp):
            out = f" {char} "
        else:
            out = char
        self[cp] = out
        return out


def strip_accents(word: str) -> str:
    """'Crème brûlée' -> 'Creme brulee': decompose (NFD) and drop the combining marks (Mn)."""
    if word.isascii():  # ASCII has no accents; skip the work for most English words
        return word
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def split_on_punctuation(word: str) -> list[str]:
    """'hello,world!!' -> ['hello', ',', 'world', '!', '!']: each punctuation char is a token.

    Linear in len(word): runs between punctuation marks are cut out whole (word[start:i]),
    never grown a character at a time (that copies the run at every step: a 1 MB word took
    minutes)."""
    pieces: list[str] = []
    start = 0  # where the current run of non-punctuation characters began
    for i, char in enumerate(word):
        if is_punctuation(char):
            if start < i:
                pieces.append(word[start:i])
            pieces.append(char)
            start = i + 1
    if start < len(word):
        pieces.append(word[start:])
    return pieces


# ----------------------------------------------------------------------------------------------
# 1. Words and punctuation


class BasicTokenizer:
    """BERT's pre-tokenizer: text -> words and punctuation marks, no vocabulary involved.

    lowercase: lower-case every word (uncased BERT).
    strip_accents: drop accents; None means "do it when lower-casing", as in the original BERT.
    tokenize_chinese_chars: make every CJK ideograph a word of its own.
    never_split: words returned as they are (not lower-cased, not split on punctuation).
    """

    def __init__(
        self,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        never_split: Iterable[str] = (),
    ):
        self.lowercase = lowercase
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.tokenize_chinese_chars = tokenize_chinese_chars
        self.never_split = frozenset(never_split)
        self._table = _CleanTable(tokenize_chinese_chars)

    def split_words(self, text: str) -> list[str]:
        """Clean `text`, split on whitespace: 'a\\u00a0b\\u200bc 中文' -> ['a', 'bc', '中', '文'].

        The chunks still have their case, accents and punctuation; `normalize_word` handles those.
        """
        text = text.translate(self._table)
        # NFC composes "e" + U+0301 into "é", so both spellings give the same tokens.
        text = unicodedata.normalize("NFC", text)
        return text.split()

    def normalize_word(self, word: str) -> list[str]:
        """One whitespace-free chunk -> its tokens: lower-case, strip accents, split punctuation."""
        if word in self.never_split:
            return [word]
        if self.lowercase:
            word = word.lower()
        if self.strip_accents:
            word = strip_accents(word)
        if word in self.never_split:  # the reference checks again after lower-casing
            return [word]
        # .split(): in rare cases lower() or NFD leave a whitespace character inside a piece.
        return [t for piece in split_on_punctuation(word) for t in piece.split()]

    def tokenize(self, text: str) -> list[str]:
        """'Hello, WORLD!' -> ['hello', ',', 'world', '!'] (with lowercase=True)."""
        _check_text(text)
        return [t for word in self.split_words(text) for t in self.normalize_word(word)]


# ----------------------------------------------------------------------------------------------
# 2. WordPiece


def wordpiece(
    word: str,
    vocab: dict[str, int] | set[str],
    unk_token: str = UNK,
    max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD,
) -> list[str]:
    """Split one word into the vocabulary's pieces, greedy longest-match-first.

    'unaffable' -> ['un', '##aff', '##able']. At each position take the longest substring that
    is in `vocab` ("##" + substring after the first piece), then continue after it. If some
    position has no match at all the whole word becomes [unk_token], as does a word longer than
    `max_input_chars_per_word` (that also bounds the quadratic search).
    """
    # BEGIN EXERCISE 1.1: WordPiece. A word longer than max_input_chars_per_word is [unk_token].
    #   Else from start = 0: try word[start:end] for end from len(word) down, with "##" in front
    #   when start > 0; append the first candidate found in vocab to `pieces` and continue at
    #   end. If no candidate matches, the whole word is [unk_token].
    if len(word) > max_input_chars_per_word:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        piece = None
        while end > start:  # shrink the candidate from the right until the vocab knows it
            candidate = word[start:end] if start == 0 else "##" + word[start:end]
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return [unk_token]
        pieces.append(piece)
        start = end
    # END EXERCISE
    return pieces


# ----------------------------------------------------------------------------------------------
# 3. The Tokenizer front


class VocabError(ValueError):
    """A vocabulary file or list that cannot be used (duplicates, missing special tokens...)."""


def load_vocab(path: str | os.PathLike) -> list[str]:
    """Read a BERT ``vocab.txt``: one token per line, the line number (from 0) is its id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    try:
        # utf-8-sig: a byte-order mark that an editor put first is not part of the first token
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise VocabError(f"{path}: not UTF-8 text ({e})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    tokens = [line[:-1] if line.endswith("\r") else line for line in lines]  # tolerate CRLF
    _check_vocab(tokens, where=str(path))
    return tokens


def _check_vocab(tokens: Sequence[str], where: str) -> None:
    """Raise VocabError naming `where` and the line (1-based) of the first problem."""
    first_line: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise VocabError(f"{where}: entry {i + 1} is {type(token).__name__}, not str")
        if token == "":
            raise VocabError(f"{where}, line {i + 1}: empty token")
        if token in first_line:
            raise VocabError(
                f"{where}, line {i + 1}: duplicate token {token!r} "
                f"(first on line {first_line[token]})"
            )
        first_line[token] = i + 1
    missing = [t for t in SPECIAL_TOKENS if t not in first_line]
    if missing:
        raise VocabError(
            f"{where}: the vocabulary has no {', '.join(missing)} "
            f"(a BERT vocabulary needs all of {', '.join(SPECIAL_TOKENS)})"
        )


def read_tokenizer_json(path: str | os.PathLike) -> tuple[list[str], dict]:
    """The vocabulary and settings of a ``tokenizer.json`` (Hugging Face's ``tokenizers`` file).

    A BERT tokenizer.json says, in JSON, what vocab.txt + tokenizer_config.json say:
    "model" is {"type": "WordPiece", "vocab": {token: id}, "unk_token": "[UNK]",
    "continuing_subword_prefix": "##", ...} and "normalizer" is {"type": "BertNormalizer",
    "lowercase", "strip_accents", "handle_chinese_chars", "clean_text"}. Returns (the tokens in
    id order, the keyword arguments of ``Tokenizer`` for those settings). Another kind of
    tokenizer (BPE as in GPT-2/RoBERTa, Unigram as in T5/ALBERT) is a VocabError: minibert
    implements WordPiece only.
    """
    path = Path(path)
    spec = parse_json(path.read_bytes(), path, VocabError)  # bad UTF-8/JSON, deep nesting
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict):
        raise VocabError(f"{path}: not a tokenizers file (expected a JSON object with a "
                         "\"model\" object)")
    kind = model.get("type")
    if kind != "WordPiece":
        kind = kind if isinstance(kind, str) else short_repr(kind)
        raise VocabError(f"{path} holds a {kind} tokenizer; minibert implements "
                         "BERT's WordPiece only (BPE and Unigram are other algorithms)")
    if model.get("continuing_subword_prefix", "##") != "##" or model.get("unk_token") != UNK:
        raise VocabError(f"{path}: WordPiece with prefix "
                         f"{short_repr(model.get('continuing_subword_prefix'))} and unknown "
                         f"token {short_repr(model.get('unk_token'))}; minibert needs '##' and "
                         f"{UNK!r}")
    vocab = model.get("vocab")
    if not (isinstance(vocab, dict) and all(_is_id(i) for i in vocab.values())):
        raise VocabError(f"{path}: model.vocab must be an object {{token: id}} with integer "
                         f"ids, not {short_repr(vocab)}")
    id_of = dict(vocab)
    added_tokens = spec.get("added_tokens") or []
    if not isinstance(added_tokens, list):
        raise VocabError(f"{path}: added_tokens must be a list, not {short_repr(added_tokens)}")
    for n, added in enumerate(added_tokens):  # tokens added after training, with their ids
        if not (isinstance(added, dict) and isinstance(added.get("content"), str)
                and _is_id(added.get("id"))):
            raise VocabError(f"{path}: added_tokens[{n}] is {short_repr(added)}; expected "
                             "{\"id\": N, \"content\": \"token\", ...}")
        id_of.setdefault(added["content"], added["id"])
    tokens = sorted(id_of, key=id_of.__getitem__)
    if [id_of[t] for t in tokens] != list(range(len(tokens))):
        raise VocabError(f"{path}: the vocabulary's ids are not 0..{len(tokens) - 1}")
    _check_vocab(tokens, where=str(path))

    norm = spec.get("normalizer") or {}
    if not isinstance(norm, dict) or norm.get("type") != "BertNormalizer" \
            or norm.get("clean_text") is False:
        raise VocabError(f"{path}: normalizer {short_repr(norm)}; minibert implements BERT's "
                         "(BertNormalizer with clean_text)")
    for key, kinds, default in (("lowercase", bool, True), ("handle_chinese_chars", bool, True),
                                ("strip_accents", bool | None, None)):
        if not isinstance(norm.get(key, default), kinds):
            raise VocabError(f"{path}: normalizer.{key} must be true or false"
                             f"{' or null' if key == 'strip_accents' else ''}, not "
                             f"{short_repr(norm.get(key))}")
    pre = spec.get("pre_tokenizer") or {}
    pre = pre.get("type") if isinstance(pre, dict) else pre  # a bare string is not the format
    if pre != "BertPreTokenizer" or not isinstance(spec.get("pre_tokenizer"), dict):
        raise VocabError(f"{path}: pre-tokenizer {short_repr(pre)}; minibert implements "
                         "BertPreTokenizer")
    settings = {"lowercase": norm.get("lowercase", True),
                "strip_accents": norm.get("strip_accents"),
                "tokenize_chinese_chars": norm.get("handle_chinese_chars", True)}
    return tokens, settings


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(text: object, name: str = "text") -> None:
    if isinstance(text, str):
        return
    hint = " (decode the bytes first, e.g. b.decode('utf-8'))" if isinstance(text, bytes) else ""
    raise TypeError(f"{name} must be a str, got {type(text).__name__}{hint}")


def truncate_longest_first(len_a: int, len_b: int, num_to_remove: int) -> tuple[int, int]:
    """How many tokens to cut from the end of sequences a and b: (cut_a, cut_b).

    Cut from the longer one until both are the same length, then from both alternately. When
    the split is uneven the extra token comes from b, as in transformers' Python tokenizers (the
    Rust ``tokenizers`` takes it from the shorter of a and b, from a when they are the same
    length). E.g. (5, 2, 4) -> (3, 1) and (3, 3, 3) -> (1, 2).
    """
    first = min(abs(len_a - len_b), num_to_remove)  # evens out the lengths
    rest = num_to_remove - first  # split between the two
    if len_a > len_b:
        return first + rest // 2, rest - rest // 2
    return rest // 2, first + rest - rest // 2


@dataclass
class Encoding:
    """One encoded text (or text pair), ready for BERT.

    input_ids: [CLS] a [SEP] (or [CLS] a [SEP] b [SEP]) as vocabulary ids.
    token_type_ids: 0 for [CLS], a and its [SEP]; 1 for b and the last [SEP].
    tokens: the same sequence as strings.
    num_truncated: how many tokens of a and b were cut to fit max_length.
    """

    input_ids: list[int]
    token_type_ids: list[int]
    tokens: list[str]
    num_truncated: int = 0

    @property
    def attention_mask(self) -> list[int]:
        return [1] * len(self.input_ids)

    def __len__(self) -> int:
        return len(self.input_ids)


def pad_sequences(sequences: Sequence[Sequence[int] | np.ndarray], pad_token_id: int,
                  width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad rows of ids to one width (default: the longest row) so they stack into an array.

    pad_token_id: what fills the padding ([PAD]'s id; 0 for token_type_ids).
    Returns (padded (B, width), attention_mask (B, width)), both int64: the mask is 1 on the
    row's own entries and 0 on the padding.
    """
    if width is None:
        width = max((len(s) for s in sequences), default=0)
    padded = np.full((len(sequences), width), pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, s in enumerate(sequences):
        padded[row, :len(s)] = s
        attention_mask[row, :len(s)] = 1
    return padded, attention_mask


class BatchEncoding(dict):
    """A dict of int64 arrays of shape (batch, length): input_ids, token_type_ids,
    attention_mask (1 = real token, 0 = padding). Also: ``num_truncated`` (int64, one per row)
    and ``tokens`` (list of token lists, without padding)."""

    def __init__(self, arrays: dict[str, np.ndarray], num_truncated: np.ndarray,
                 tokens: list[list[str]]):
        super().__init__(arrays)
        self.num_truncated = num_truncated
        self.tokens = tokens

    def __getattr__(self, name: str) -> Any:  # batch.input_ids as well as batch["input_ids"]
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Tokenizer:
    """BERT's tokenizer: text -> token ids, with [CLS]/[SEP], truncation and padding.

    vocab: the tokens, position = id (what ``load_vocab`` returns). Must hold the five special
    tokens [PAD] [UNK] [CLS] [SEP] [MASK].
    lowercase, strip_accents, tokenize_chinese_chars: see ``BasicTokenizer``.
    model_max_length: the default ``max_length`` when truncating (512 for BERT); None = no limit.
    split_special_tokens: False (the default, as the reference): "[MASK]" written in the text
        becomes the [MASK] token. True: text is only ever text ("[MASK]" -> [, mask, ]), so
        user input can never inject [SEP] or [CLS]; special tokens then come only from encode.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        model_max_length: int | None = None,
        split_special_tokens: bool = False,
    ):
        if isinstance(vocab, (str, bytes)) or not isinstance(vocab, Sequence):
            raise TypeError("vocab must be a list of tokens; use Tokenizer.from_vocab_file(path)")
        _check_vocab(vocab, where="vocabulary")
        self.ids_to_tokens: list[str] = list(vocab)
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(self.ids_to_tokens)}
        self.lowercase = lowercase
        self._strip_accents = strip_accents  # kept as given, for save_pretrained
        self.model_max_length = model_max_length
        self.split_special_tokens = bool(split_special_tokens)
        # never_split: a chunk that *after cleaning* is exactly a special token stays whole, as
        # in the reference: "[MA\u200bSK]" loses its zero-width space and is [MASK].
        self.basic = BasicTokenizer(lowercase, strip_accents, tokenize_chinese_chars,
                                    never_split=() if split_special_tokens else SPECIAL_TOKENS)

        self.pad_token_id, self.unk_token_id = self.vocab[PAD], self.vocab[UNK]
        self.cls_token_id, self.sep_token_id = self.vocab[CLS], self.vocab[SEP]
        self.mask_token_id = self.vocab[MASK]
        self.special_ids = {self.vocab[t] for t in SPECIAL_TOKENS}

        # A special token written in the text ("the[MASK]sat") is kept whole, as in transformers:
        # the text is cut around it before any other processing. Case-sensitive: "[mask]" is text.
        alternatives = sorted(SPECIAL_TOKENS, key=len, reverse=True)
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, alternatives)) + ")")
        # Words repeat a lot (Zipf's law), so remember each chunk's pieces: chunk -> (tokens, ids).
        self._cache: dict[str, tuple[list[str], list[int]]] = {}

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_vocab_file(cls, path: str | os.PathLike, lowercase: bool = True,
                        **kwargs: Any) -> Tokenizer:
        """Load a BERT ``vocab.txt``. kwargs: strip_accents, tokenize_chinese_chars,
        model_max_length."""
        return cls(load_vocab(path), lowercase=lowercase, **kwargs)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike) -> Tokenizer:
        """Load a tokenizer from a model directory, as transformers saves it.

        ``vocab.txt`` with the settings in ``tokenizer_config.json`` (do_lower_case,
        strip_accents, tokenize_chinese_chars, model_max_length); or, where there is no
        ``vocab.txt`` (transformers 5 writes none), the WordPiece vocabulary and normaliser
        settings of ``tokenizer.json`` (see ``read_tokenizer_json``). ``model_dir`` may also
        be one of those two files: the settings then come from the folder it is in.

        The vocabulary must fit the model beside it: when the folder's ``config.json`` gives a
        ``vocab_size`` other than the number of tokens, that is a VocabError (a vocab.txt cut
        short would silently tokenize differently; a longer one makes ids the embedding table
        does not have).
        """
        model_dir = Path(model_dir)
        vocab_file = None
        if model_dir.is_file():  # .../vocab.txt or .../tokenizer.json: the folder's settings
            model_dir, vocab_file = model_dir.parent, model_dir
        elif not model_dir.is_dir():
            raise FileNotFoundError(f"model directory not found: {model_dir} (give the folder "
                                    "that holds vocab.txt or tokenizer.json, or either file)")
        config_path = model_dir / "tokenizer_config.json"
        config = {}
        if config_path.is_file():
            try:  # RecursionError: JSON nested thousands deep; ValueError: a 5000-digit int
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, RecursionError, ValueError) as e:
                raise VocabError(f"{config_path}: not valid UTF-8 JSON "
                                 f"({type(e).__name__}: {str(e)[:200]})") from None
            if not isinstance(config, dict):
                raise VocabError(f"{config_path}: expected a JSON object of settings, got "
                                 f"{type(config).__name__}")
            for key in ("do_lower_case", "tokenize_chinese_chars", "split_special_tokens"):
                if not isinstance(config.get(key, False), bool):
                    raise VocabError(f"{config_path}: {key} must be true or false, not "
                                     f"{config[key]!r}")
            if not isinstance(config.get("strip_accents"), bool | None):
                raise VocabError(f"{config_path}: strip_accents must be true, false or null, "
                                 f"not {config['strip_accents']!r}")
        split = config.get("split_special_tokens", False)
        max_len = config.get("model_max_length")
        if not isinstance(max_len, int) or max_len > 10**6:  # HF writes a huge int for "none"
            max_len = None
        vocab_path, json_path = model_dir / "vocab.txt", model_dir / "tokenizer.json"
        if vocab_file is None:
            use_json = not vocab_path.is_file() and json_path.is_file()
        else:  # the file given: tokenizer.json by its name, anything else a vocab.txt
            use_json = vocab_file.name == "tokenizer.json"
            vocab_path = json_path = vocab_file
        if use_json:
            vocab, settings = read_tokenizer_json(json_path)
            tokenizer = cls(vocab, model_max_length=max_len, split_special_tokens=split,
                            **settings)
            _check_fits_model(tokenizer, json_path, model_dir / "config.json")
            return tokenizer
        if not vocab_path.is_file():
            raise FileNotFoundError(f"vocabulary file not found: {vocab_path} (and no "
                                    f"tokenizer.json beside it)")
        tokenizer = cls.from_vocab_file(
            vocab_path,
            lowercase=config.get("do_lower_case", True),
            strip_accents=config.get("strip_accents"),
            tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
            model_max_length=max_len,
            split_special_tokens=split,
        )
        _check_fits_model(tokenizer, vocab_path, model_dir / "config.json")
        return tokenizer

    def save_vocab(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary, one token per line in id order; returns the path."""
        path = Path(path)
        text = "".join(t + "\n" for t in self.ids_to_tokens)
        atomic_write(path, lambda f: f.write(text), mode="w")  # never a half-written vocab
        return path

    def save_pretrained(self, model_dir: str | os.PathLike) -> list[Path]:
        """Write ``vocab.txt`` and ``tokenizer_config.json`` (readable by ``from_pretrained``
        and by transformers' BertTokenizer); returns the two paths."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.lowercase,
            "strip_accents": self._strip_accents,
            "tokenize_chinese_chars": self.basic.tokenize_chinese_chars,
            "unk_token": UNK, "sep_token": SEP, "pad_token": PAD, "cls_token": CLS,
            "mask_token": MASK,
        }
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        if self.split_special_tokens:
            config["split_special_tokens"] = True
        config_path = model_dir / "tokenizer_config.json"
        atomic_write(config_path, lambda f: f.write(json.dumps(config, indent=2) + "\n"),
                     mode="w")
        return [self.save_vocab(model_dir / "vocab.txt"), config_path]

    @classmethod
    def train(
        cls,
        lines_or_files: Iterable[str] | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        vocab_size: int = 30522,
        min_frequency: int = 2,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        model_max_length: int | None = None,
        criterion: str = "frequency",
    ) -> Tokenizer:
        """Learn a WordPiece vocabulary of at most `vocab_size` tokens from a corpus.

        lines_or_files: a path (str or Path) to a text file, or an iterable whose items are
        lines of text (str) or file paths (pathlib.Path / os.PathLike).
        min_frequency: a pair of pieces must occur at least this often to be merged.
        criterion: which pair to merge next, "frequency" (most frequent pair, as Hugging Face's
        trainer) or "likelihood" (the classic count(ab) / (count(a) count(b))); see
        ``wordpiece_trainer`` for why frequency is the default.
        The vocabulary holds the special tokens, every character seen, then the merged pieces
        in the order they were learned. It can come out smaller than `vocab_size` when no pair
        is frequent enough to merge.
        """
        basic = BasicTokenizer(lowercase, strip_accents, tokenize_chinese_chars)
        # Count whitespace chunks first, then normalize each distinct chunk only once.
        chunk_counts: Counter[str] = Counter()
        for line in _iter_lines(lines_or_files):
            chunk_counts.update(basic.split_words(line))
        word_counts: Counter[str] = Counter()
        for chunk, n in chunk_counts.items():
            for word in basic.normalize_word(chunk):
                if len(word) <= MAX_INPUT_CHARS_PER_WORD:  # longer words are [UNK] anyway
                    word_counts[word] += n
        vocab = train_wordpiece(word_counts, vocab_size, min_frequency, SPECIAL_TOKENS, criterion)
        return cls(vocab, lowercase, strip_accents, tokenize_chinese_chars, model_max_length)

    # -- text -> tokens -------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.ids_to_tokens)

    def __len__(self) -> int:
        return len(self.ids_to_tokens)

    def _word_pieces(self, chunk: str) -> tuple[list[str], list[int]]:
        """One whitespace-free chunk -> (WordPiece tokens, ids), cached."""
        cached = self._cache.get(chunk)
        if cached is None:
            tokens = []
            for word in self.basic.normalize_word(chunk):
                tokens += wordpiece(word, self.vocab, UNK)
            cached = (tokens, [self.vocab[t] for t in tokens])
            if len(self._cache) >= 1 << 18:  # keep memory bounded on endless odd input
                self._cache.clear()
            self._cache[chunk] = cached
        return cached

    def _tokens_and_ids(self, text: str) -> tuple[list[str], list[int]]:
        tokens: list[str] = []
        ids: list[int] = []
        # split() with a capturing group alternates: text, special, text, special, ..., text
        parts = [text] if self.split_special_tokens else self._special_pattern.split(text)
        for i, part in enumerate(parts):
            if i % 2 == 1:
                tokens.append(part)
                ids.append(self.vocab[part])
                continue
            for chunk in self.basic.split_words(part):
                chunk_tokens, chunk_ids = self._word_pieces(chunk)
                tokens += chunk_tokens
                ids += chunk_ids
        return tokens, ids

    def tokenize(self, text: str) -> list[str]:
        """'studying neuroplasticity' -> ['studying', 'ne', '##uro', ...] (no [CLS]/[SEP])."""
        _check_text(text)
        return self._tokens_and_ids(text)[0]

    @overload  # (a str is an Iterable[str] too: the first that fits wins)
    def convert_tokens_to_ids(self, tokens: str) -> int: ...  # type: ignore[overload-overlap]
    @overload
    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]: ...

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """A token or list of tokens -> id(s); unknown tokens get the [UNK] id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int] | np.ndarray) -> str | list[str]:
        """An id or sequence of ids (list, NumPy array) -> token(s). Raises IndexError for ids
        outside 0 .. vocab_size-1."""
        if isinstance(ids, (int, np.integer)):
            return self._id_to_token(int(ids))
        return [self._id_to_token(int(i)) for i in np.asarray(ids).reshape(-1)]

    def _id_to_token(self, i: int) -> str:
        if not 0 <= i < len(self.ids_to_tokens):
            raise IndexError(f"token id {i} is outside the vocabulary (size {self.vocab_size})")
        return self.ids_to_tokens[i]

    # -- encoding -------------------------------------------------------------------------------

    def encode(
        self,
        text: str,
        text_pair: str | None = None,
        max_length: int | None = None,
        truncation: bool = True,
    ) -> Encoding:
        """Text (or a pair) -> Encoding: [CLS] a [SEP] or [CLS] a [SEP] b [SEP].

        max_length: the most tokens in total, special tokens included (default:
        model_max_length). If the tokens do not fit and `truncation` is True, tokens are cut
        from the end, from the longer of a and b first (``truncate_longest_first``).
        """
        _check_text(text)
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        num_special = 2 if text_pair is None else 3
        if max_length is None:
            max_length = self.model_max_length
        elif not isinstance(max_length, int) or isinstance(max_length, bool):
            raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
        if max_length is not None and max_length < num_special:
            raise ValueError(
                f"max_length={max_length} leaves no room: "
                f"{'a pair' if text_pair is not None else 'one text'} needs {num_special} "
                f"special tokens ([CLS] ... [SEP]{' ... [SEP]' if text_pair is not None else ''})"
            )

        tokens_a, ids_a = self._tokens_and_ids(text)
        tokens_b, ids_b = self._tokens_and_ids(text_pair) if text_pair is not None else ([], [])
        num_truncated = 0
        if truncation and max_length is not None:
            excess = len(ids_a) + len(ids_b) + num_special - max_length
            if excess > 0:
                cut_a, cut_b = truncate_longest_first(len(ids_a), len(ids_b), excess)
                tokens_a, ids_a = tokens_a[: len(ids_a) - cut_a], ids_a[: len(ids_a) - cut_a]
                tokens_b, ids_b = tokens_b[: len(ids_b) - cut_b], ids_b[: len(ids_b) - cut_b]
                num_truncated = excess

        tokens = [CLS, *tokens_a, SEP]
        input_ids = [self.cls_token_id, *ids_a, self.sep_token_id]
        token_type_ids = [0] * len(input_ids)
        if text_pair is not None:
            tokens += [*tokens_b, SEP]
            input_ids += [*ids_b, self.sep_token_id]
            token_type_ids += [1] * (len(ids_b) + 1)
        return Encoding(input_ids, token_type_ids, tokens, num_truncated)

    def batch_encode(
        self,
        texts: Sequence[str],
        text_pairs: Sequence[str] | None = None,
        max_length: int | None = None,
        truncation: bool = True,
        padding: str = "longest",
    ) -> BatchEncoding:
        """Encode many texts (or pairs) into int64 arrays of shape (batch, length).

        padding="longest" pads every row with [PAD] to the longest row; "max_length" pads to
        `max_length` (or model_max_length). attention_mask is 1 on real tokens, 0 on padding.
        """
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a list of str, got {type(texts).__name__}")
        if text_pairs is not None:
            if isinstance(text_pairs, (str, bytes)) or not isinstance(text_pairs, Sequence):
                kind = type(text_pairs).__name__
                raise TypeError(f"text_pairs must be a list of str, got {kind}")
            if len(text_pairs) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text_pairs")
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        pairs = text_pairs if text_pairs is not None else [None] * len(texts)
        encodings = [
            self.encode(a, b, max_length, truncation) for a, b in zip(texts, pairs, strict=True)
        ]

        longest = max((len(e) for e in encodings), default=0)
        width: int | None = longest
        if padding == "max_length":
            width = max_length if max_length is not None else self.model_max_length
            if width is None:
                raise ValueError('padding="max_length" needs max_length (or model_max_length)')
            if longest > width:  # only possible with truncation=False
                raise ValueError(
                    f"a row has {longest} tokens, more than max_length={width}; "
                    "use truncation=True or padding='longest'"
                )
        input_ids, attention_mask = pad_sequences([e.input_ids for e in encodings],
                                                  self.pad_token_id, width)
        token_type_ids, _ = pad_sequences([e.token_type_ids for e in encodings], 0, width)
        arrays = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
        }
        num_truncated = np.array([e.num_truncated for e in encodings], dtype=np.int64)
        return BatchEncoding(arrays, num_truncated, [e.tokens for e in encodings])

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
    ) -> BatchEncoding:
        """transformers' way to call a tokenizer: ``tok(texts, padding=True, truncation=True,
        max_length=128, return_tensors="np")`` -> input_ids, token_type_ids, attention_mask.

        text: one text or a list; text_pair: the second text of each pair (``tok(a, b)``).
        padding: False (each row as long as it is), True or "longest" (to the longest row),
            "max_length" (to max_length, else model_max_length).
        truncation: True cuts to max_length (else model_max_length), longest text of a pair
            first; None: only when max_length is given and padding is off, as in transformers.
        return_tensors: None -> Python lists (one text: flat lists); "np" -> int64 arrays of
            shape (batch, length), a single text too. The ids are those of ``batch_encode``.
        """
        pad = {True: "longest", "longest": "longest", "max_length": "max_length",
               False: None, "do_not_pad": None}.get(padding, "?")
        if pad == "?":
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or "
                             f"'do_not_pad', got {padding!r}")
        if truncation is None:
            truncation = max_length is not None and pad is None
        truncate = {True: True, "longest_first": True, False: False,
                    "do_not_truncate": False}.get(truncation)
        if truncate is None:
            raise ValueError(f"truncation must be True, False, 'longest_first' or "
                             f"'do_not_truncate', got {truncation!r}")
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: minibert returns NumPy arrays "
                             "(return_tensors='np') or Python lists (None)")
        single = isinstance(text, str)
        if single and text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"with one text, text_pair must be one str, got "
                            f"{type(text_pair).__name__}")
        texts = [text] if isinstance(text, str) else text
        pairs = [text_pair] if isinstance(text_pair, str) else text_pair
        batch = self.batch_encode(texts, pairs, max_length, truncate, pad or "longest")
        lengths = batch["attention_mask"].sum(axis=1)
        if pad is None and return_tensors == "np" and len(set(lengths.tolist())) > 1:
            raise ValueError("the texts have different numbers of tokens, which cannot stack into "
                             "one array: pad them (padding=True), or return_tensors=None")
        if return_tensors == "np":
            return batch
        columns: dict[str, Any] = {
            key: [row[:n].tolist() if pad is None else row.tolist()
                  for row, n in zip(value, lengths, strict=True)]
            for key, value in batch.items()}
        if single:  # one text: its lists, not a batch of one
            columns = {key: rows[0] for key, rows in columns.items()}
        return BatchEncoding(columns, batch.num_truncated, batch.tokens)

    # -- ids -> text ----------------------------------------------------------------------------

    def decode(self, ids: Iterable[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Ids -> text: join tokens with spaces and glue "##" pieces to the piece before.
        [101, 2817, 2075, 102] -> 'studying'. Lower-casing and accents are not undone."""
        if isinstance(ids, (str, bytes)):
            raise TypeError("decode takes token ids (ints), not text")
        ids = np.asarray(ids)
        if ids.ndim != 1 and ids.size:
            raise ValueError(f"decode takes one sequence of ids; got shape {ids.shape}")
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
        return " ".join(tokens).replace(" ##", "").strip()

    def batch_decode(self, rows: Iterable[Iterable[int]] | np.ndarray,
                     skip_special_tokens: bool = True) -> list[str]:
        """``decode`` for each row of a 2-D array or list of id lists (padding is special)."""
        return [self.decode(row, skip_special_tokens) for row in rows]

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase})"


def _check_fits_model(tokenizer: Tokenizer, vocab_path: Path, config_path: Path) -> None:
    """A vocabulary must have exactly the model's vocab_size tokens (config.json beside it).

    Fewer: the file was cut, and words split differently without a word of warning ("parcel"
    -> par ##ce ##l). More: ids past the embedding table. No config.json, or one without a
    readable vocab_size: nothing to compare (the model's loader reports a broken config)."""
    if not config_path.is_file():
        return
    try:
        config = parse_json(config_path.read_bytes(), config_path, VocabError)
    except (VocabError, OSError):
        return
    expected = config.get("vocab_size") if isinstance(config, dict) else None
    if _is_id(expected) and expected != tokenizer.vocab_size:
        raise VocabError(
            f"{vocab_path} has {tokenizer.vocab_size:,} tokens but {config_path} says the "
            f"model has vocab_size {expected:,}: the vocabulary does not belong to this model "
            f"({'cut short' if tokenizer.vocab_size < expected else 'too long'}); restore the "
            "model's own vocabulary file")


def _iter_lines(lines_or_files: Iterable[str] | str | os.PathLike[str]
                | Sequence[str | os.PathLike[str]]) -> Iterable[str]:
    """Yield text lines from a file path, or from an iterable of lines and/or Path objects."""
    if isinstance(lines_or_files, (str, os.PathLike)):
        lines_or_files = [Path(lines_or_files)]
    if isinstance(lines_or_files, bytes):
        raise TypeError("lines_or_files must be a path or an iterable of str lines / Paths")
    for item in lines_or_files:
        if isinstance(item, os.PathLike):
            with open(item, encoding="utf-8") as f:
                yield from f
        elif isinstance(item, str):
            yield item
        else:
            raise TypeError(f"expected a str line or a Path, got {type(item).__name__}")


# ----------------------------------------------------------------------------------------------
# 4. Measuring a vocabulary on text


def vocabulary_coverage(tokenize: Callable[[str], Sequence[str]], texts: Sequence[str],
                        unk_token: str = UNK) -> dict[str, int | float]:
    """How well a way of cutting text covers `texts`: out-of-vocabulary rate and length.

    tokenize: one text -> its tokens, with `unk_token` for each one the vocabulary cannot
        represent. ``Tokenizer.tokenize`` is one (WordPiece gives [UNK] for a word it cannot
        spell); for a vocabulary of whole words or characters, map every token outside it to
        `unk_token` first.
    texts: the text to measure, one text a string: text the vocabulary was *not* built from
        says how it does on new text.
    Returns {"tokens": all tokens of all texts, "oov": how many of them are `unk_token`,
    "oov_rate": oov / tokens (the share of the text lost to [UNK]), "tokens_per_text":
    tokens / len(texts) (the length the model must read; attention grows with its square),
    "texts_with_oov": the texts holding at least one `unk_token`}.

        known = {"the", "cat", "sat"}  # a vocabulary of whole words
        words = lambda text: [w if w in known else "[UNK]" for w in text.split()]
        vocabulary_coverage(words, ["the cat sat", "the dog sat down"])
        # {'tokens': 7, 'oov': 2, 'oov_rate': 0.2857..., 'tokens_per_text': 3.5,
        #  'texts_with_oov': 1}
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of texts, not one str (its characters would be "
                        "measured one by one); wrap it: [text]")
    if len(texts) == 0:
        raise ValueError("vocabulary_coverage: no texts to measure")
    # BEGIN EXERCISE 11.1: tokenize every text; `tokens` = how many tokens they give in all,
    #   `oov` = how many of them are unk_token, `texts_with_oov` = how many texts hold at
    #   least one unk_token
    rows = [tokenize(text) for text in texts]
    tokens = sum(len(row) for row in rows)
    oov = sum(token == unk_token for row in rows for token in row)
    texts_with_oov = sum(unk_token in row for row in rows)
    # END EXERCISE
    if tokens == 0:
        raise ValueError(f"vocabulary_coverage: the {len(texts)} texts give no token at all "
                         "(empty, or only spaces and control characters)")
    return {"tokens": tokens, "oov": oov, "oov_rate": oov / tokens,
            "tokens_per_text": tokens / len(texts), "texts_with_oov": texts_with_oov}
