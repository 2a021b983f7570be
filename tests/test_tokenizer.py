"""Tokenizer tests that need nothing but the repository: a small hand-written vocabulary.

Parity with the real BERT tokenizer is in test_tokenizer_parity.py.
"""

import ast
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.tokenizer import (
    BasicTokenizer,
    Tokenizer,
    VocabError,
    is_punctuation,
    load_vocab,
    split_on_punctuation,
    strip_accents,
    truncate_longest_first,
    vocabulary_coverage,
    wordpiece,
)
from minibert.wordpiece_trainer import merge_pair, train_wordpiece

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = [
    "the", "cat", "sat", "on", "mat", "hello", "world", "study", "neuro", "un", "cafe", "中", "文",
    ",", ".", "!", "?", "$", "`", "'", "-", "[", "]",
]
PIECES = ["##ing", "##pl", "##astic", "##ity", "##aff", "##able"]
VOCAB = SPECIALS + LETTERS + ["##" + c for c in LETTERS] + WORDS + PIECES
HARD_STRINGS = Path(__file__).parent / "data" / "tokenizer_hard_strings.json"


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(VOCAB)


# -- 1. words and punctuation -------------------------------------------------------------------


def test_basic_lowercases_strips_accents_and_splits_punctuation():
    basic = BasicTokenizer()
    assert basic.tokenize("Héllo, WÖRLD!") == ["hello", ",", "world", "!"]
    # BERT counts ASCII symbols as punctuation too, although Unicode calls $ and ` symbols.
    assert basic.tokenize("$5 `x` a+b") == ["$", "5", "`", "x", "`", "a", "+", "b"]
    assert basic.tokenize("don't") == ["don", "'", "t"]


def test_basic_cleans_control_characters_and_odd_spaces():
    basic = BasicTokenizer()
    # NUL, U+FFFD and zero-width space (a format character) vanish; NBSP/tab/ideographic space
    # separate words.
    assert basic.tokenize("a\x00b\ufffdc\u200bd") == ["abcd"]
    assert basic.tokenize("x\u00a0y\tz\u3000w\n") == ["x", "y", "z", "w"]
    assert basic.tokenize("") == []
    assert basic.tokenize(" \t\n ") == []


def test_basic_splits_cjk_into_characters():
    assert BasicTokenizer().tokenize("BERT模型好") == ["bert", "模", "型", "好"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("BERT模型好") == ["bert模型好"]


def test_basic_cased_keeps_case_and_accents_unless_asked():
    assert BasicTokenizer(lowercase=False).tokenize("Héllo") == ["Héllo"]
    assert BasicTokenizer(lowercase=False, strip_accents=True).tokenize("Héllo") == ["Hello"]
    assert BasicTokenizer(lowercase=True, strip_accents=False).tokenize("Héllo") == ["héllo"]


def test_basic_nfc_makes_both_spellings_of_an_accent_equal():
    basic = BasicTokenizer(lowercase=False)
    assert basic.tokenize("cafe\u0301") == basic.tokenize("caf\u00e9") == ["café"]


def test_basic_never_split():
    basic = BasicTokenizer(never_split=["[MASK]"])
    assert basic.tokenize("the [MASK] sat") == ["the", "[MASK]", "sat"]
    assert BasicTokenizer().tokenize("the [MASK] sat") == ["the", "[", "mask", "]", "sat"]


def test_helpers():
    assert strip_accents("Crème Brûlée") == "Creme Brulee"
    assert split_on_punctuation("hi,,there!") == ["hi", ",", ",", "there", "!"]
    assert split_on_punctuation("") == []
    assert is_punctuation("$") and is_punctuation("¿") and is_punctuation("、")
    assert not is_punctuation("a") and not is_punctuation("5") and not is_punctuation("€")


# -- 2. WordPiece --------------------------------------------------------------------------------


@pytest.mark.exercise("1.1")
def test_wordpiece_greedy_longest_match():
    vocab = set(VOCAB)
    assert wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece("studying", vocab) == ["study", "##ing"]
    assert wordpiece("neuroplasticity", vocab) == ["neuro", "##pl", "##astic", "##ity"]
    # Greedy, not optimal: "cats" takes "cat" then "##s".
    assert wordpiece("cats", vocab) == ["cat", "##s"]


@pytest.mark.exercise("1.1")
def test_wordpiece_unknown_and_too_long_words():
    vocab = set(VOCAB)
    assert wordpiece("cat€", vocab) == ["[UNK]"]  # one uncovered character spoils the word
    assert wordpiece("€", vocab, unk_token="<?>") == ["<?>"]
    assert wordpiece("a" * 100, vocab) == ["a"] + ["##a"] * 99
    assert wordpiece("a" * 101, vocab) == ["[UNK]"]


@pytest.mark.exercise("11.1")
def test_vocabulary_coverage_counts_unknown_tokens_and_length():
    """Lesson 11's measures: the docstring's example, a vocabulary of whole words."""
    known = {"the", "cat", "sat"}
    words = lambda text: [w if w in known else "[UNK]" for w in text.split()]
    assert vocabulary_coverage(words, ["the cat sat", "the dog sat down"]) == {
        "tokens": 7, "oov": 2, "oov_rate": 2 / 7, "tokens_per_text": 3.5, "texts_with_oov": 1}


@pytest.mark.exercise("11.1")
def test_vocabulary_coverage_of_wordpiece_and_of_characters(tok):
    texts = ["the cat sat", "hello € world", "€ €"]  # € is no piece of VOCAB: [UNK]
    assert vocabulary_coverage(tok.tokenize, texts) == {
        "tokens": 8, "oov": 3, "oov_rate": 3 / 8, "tokens_per_text": 8 / 3, "texts_with_oov": 2}
    chars = lambda text: [c if c in "the cat" else "<?>" for c in text if c != " "]
    r = vocabulary_coverage(chars, ["the cat", "sat", "the"], unk_token="<?>")
    assert (r["tokens"], r["oov"], r["texts_with_oov"]) == (12, 1, 1)  # only the s of "sat"
    assert r["tokens_per_text"] == 4.0


def test_vocabulary_coverage_refuses_what_it_cannot_measure(tok):
    with pytest.raises(TypeError, match="not one str"):
        vocabulary_coverage(tok.tokenize, "the cat")
    with pytest.raises(ValueError, match="no texts"):
        vocabulary_coverage(tok.tokenize, [])
    with pytest.raises(ValueError, match="no token at all"):
        vocabulary_coverage(tok.tokenize, ["", " \t"])


# -- 3. the Tokenizer front ---------------------------------------------------------------------


def test_tokenize_and_special_attributes(tok):
    assert tok.tokenize("Studying neuroplasticity, CATS!") == [
        "study", "##ing", "neuro", "##pl", "##astic", "##ity", ",", "cat", "##s", "!",
    ]
    assert tok.vocab_size == len(tok) == len(VOCAB)
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id) == (0, 1, 2)
    assert (tok.sep_token_id, tok.mask_token_id) == (3, 4)
    assert tok.special_ids == {0, 1, 2, 3, 4}
    assert tok.convert_tokens_to_ids(["the", "zzz-not-a-token"]) == [VOCAB.index("the"), 1]
    assert tok.convert_tokens_to_ids("cat") == VOCAB.index("cat")
    assert tok.convert_ids_to_tokens(np.array([2, 3])) == ["[CLS]", "[SEP]"]
    with pytest.raises(IndexError, match="outside the vocabulary"):
        tok.convert_ids_to_tokens(len(VOCAB))


def test_special_tokens_inside_text_stay_whole(tok):
    assert tok.tokenize("the[MASK]sat") == ["the", "[MASK]", "sat"]
    assert tok.tokenize("a[SEP]b[CLS]") == ["a", "[SEP]", "b", "[CLS]"]
    # Matching is case-sensitive, as in transformers: "[mask]" is ordinary text.
    assert tok.tokenize("[mask]") == ["[", "m", "##a", "##s", "##k", "]"]


def test_encode_single_and_pair(tok):
    e = tok.encode("the cat")
    the, cat, sat = (VOCAB.index(w) for w in ("the", "cat", "sat"))
    assert e.input_ids == [2, the, cat, 3]
    assert e.tokens == ["[CLS]", "the", "cat", "[SEP]"]
    assert e.token_type_ids == [0, 0, 0, 0] and e.attention_mask == [1, 1, 1, 1]
    assert e.num_truncated == 0
    p = tok.encode("the cat", "sat")
    assert p.input_ids == [2, the, cat, 3, sat, 3]
    assert p.token_type_ids == [0, 0, 0, 0, 1, 1]


def test_empty_string_is_cls_sep(tok):
    assert tok.encode("").input_ids == [2, 3]
    assert tok.encode("", "").input_ids == [2, 3, 3]
    assert tok.encode(" \u200b\x00 ").tokens == ["[CLS]", "[SEP]"]


def test_truncate_longest_first_arithmetic():
    assert truncate_longest_first(5, 2, 4) == (3, 1)  # 3 to even out, then 1 each
    assert truncate_longest_first(2, 5, 4) == (0, 4)  # the odd one always comes from b
    assert truncate_longest_first(3, 3, 3) == (1, 2)  # the odd one comes from the second
    assert truncate_longest_first(7, 0, 2) == (2, 0)
    assert truncate_longest_first(4, 4, 0) == (0, 0)


def test_encode_truncation(tok):
    e = tok.encode("a b c d e f", max_length=5)
    assert e.tokens == ["[CLS]", "a", "b", "c", "[SEP]"] and e.num_truncated == 3
    p = tok.encode("a b c d e", "the cat", max_length=7)  # 5 + 2 + 3 = 10 -> cut 3, all from a
    assert p.tokens == ["[CLS]", "a", "b", "[SEP]", "the", "cat", "[SEP]"]
    assert p.num_truncated == 3
    assert tok.encode("a b", "c", max_length=3).tokens == ["[CLS]", "[SEP]", "[SEP]"]
    untouched = tok.encode("a b c d e f", max_length=5, truncation=False)
    assert len(untouched) == 8 and untouched.num_truncated == 0


def test_model_max_length_is_the_default_limit():
    tok = Tokenizer(VOCAB, model_max_length=4)
    assert tok.encode("a b c d").tokens == ["[CLS]", "a", "b", "[SEP]"]
    assert len(tok.encode("a b c d", max_length=6)) == 6


def test_max_length_too_small_is_an_error(tok):
    with pytest.raises(ValueError, match="needs 2 special tokens"):
        tok.encode("a", max_length=1)
    with pytest.raises(ValueError, match="needs 3 special tokens"):
        tok.encode("a", "b", max_length=2)
    with pytest.raises(TypeError, match="max_length"):
        tok.encode("a", max_length=5.0)


@pytest.mark.parametrize("bad", [None, b"bytes", 42, ["a list"]])
def test_non_string_input_is_a_type_error(tok, bad):
    with pytest.raises(TypeError, match="must be a str"):
        tok.encode(bad)
    with pytest.raises(TypeError, match="must be a str"):
        tok.tokenize(bad)
    with pytest.raises(TypeError):
        tok.encode("ok", bad if bad is not None else 1.5)
    with pytest.raises(TypeError, match="must be a str"):
        BasicTokenizer().tokenize(bad)


def test_bytes_error_says_how_to_fix(tok):
    with pytest.raises(TypeError, match="decode"):
        tok.encode(b"hello")


def test_batch_encode_pads_to_longest(tok):
    batch = tok.batch_encode(["the cat sat", "hello", ""])
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    assert ids.dtype == mask.dtype == types.dtype == np.int64
    assert ids.shape == (3, 5)
    assert ids[1].tolist() == [2, VOCAB.index("hello"), 3, 0, 0]
    assert mask.tolist() == [[1] * 5, [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert types.sum() == 0
    assert batch.num_truncated.tolist() == [0, 0, 0]
    assert batch.input_ids is ids  # attribute access too
    assert batch.tokens[1] == ["[CLS]", "hello", "[SEP]"]


def test_batch_encode_pairs_max_length_and_truncation(tok):
    batch = tok.batch_encode(["a b c d", "a"], ["the", "cat sat"], max_length=6,
                             padding="max_length")
    assert batch["input_ids"].shape == (2, 6)
    assert batch["token_type_ids"][1].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 1, 1]
    assert batch.num_truncated.tolist() == [2, 0]
    assert tok.batch_encode([]).input_ids.shape == (0, 0)


def test_batch_encode_errors(tok):
    with pytest.raises(TypeError, match="list of str"):
        tok.batch_encode("a single string")
    with pytest.raises(ValueError, match="text_pairs"):
        tok.batch_encode(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="padding"):
        tok.batch_encode(["a"], padding="max")
    with pytest.raises(ValueError, match="needs max_length"):
        tok.batch_encode(["a"], padding="max_length")
    with pytest.raises(ValueError, match="truncation=True"):
        tok.batch_encode(["a b c d"], max_length=4, truncation=False, padding="max_length")


def test_decode_rejoins_pieces_and_skips_specials(tok):
    ids = tok.encode("Studying neuroplasticity", "the cat").input_ids
    assert tok.decode(ids) == "studying neuroplasticity the cat"
    assert tok.decode(ids, skip_special_tokens=False) == (
        "[CLS] studying neuroplasticity [SEP] the cat [SEP]"
    )
    padded = tok.batch_encode(["the cat", "hello"]).input_ids
    assert tok.batch_decode(padded) == ["the cat", "hello"]
    with pytest.raises(TypeError):
        tok.decode("the cat")


# -- vocabulary files ----------------------------------------------------------------------------


def test_vocab_file_round_trip(tok, tmp_path):
    path = tok.save_vocab(tmp_path / "vocab.txt")
    assert path.read_text(encoding="utf-8").splitlines() == VOCAB
    again = Tokenizer.from_vocab_file(path)
    assert again.vocab == tok.vocab
    assert load_vocab(path) == VOCAB


def test_pretrained_round_trip_keeps_settings(tmp_path):
    cased = Tokenizer(VOCAB, lowercase=False, model_max_length=64)
    written = cased.save_pretrained(tmp_path / "model")
    assert {p.name for p in written} == {"vocab.txt", "tokenizer_config.json"}
    config = json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())
    assert config["do_lower_case"] is False
    again = Tokenizer.from_pretrained(tmp_path / "model")
    assert again.lowercase is False and again.model_max_length == 64
    assert again.tokenize("The Cat") == cased.tokenize("The Cat") == ["[UNK]", "[UNK]"]


def test_missing_vocab_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Tokenizer.from_vocab_file(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match="model directory"):
        Tokenizer.from_pretrained(tmp_path / "no-model")


def test_malformed_vocab_files_name_file_and_line(tmp_path):
    dup = tmp_path / "dup.txt"
    dup.write_text("\n".join(SPECIALS + ["a", "b", "a"]) + "\n", encoding="utf-8")
    message = r"dup\.txt, line 8: duplicate token 'a' \(first on line 6\)"
    with pytest.raises(VocabError, match=message):
        Tokenizer.from_vocab_file(dup)
    no_unk = tmp_path / "no_unk.txt"
    no_unk.write_text("[PAD]\n[CLS]\n[SEP]\n[MASK]\na\n", encoding="utf-8")
    with pytest.raises(VocabError, match=r"no_unk\.txt: the vocabulary has no \[UNK\]"):
        Tokenizer.from_vocab_file(no_unk)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n".join(SPECIALS + ["a", "", "b"]) + "\n", encoding="utf-8")
    with pytest.raises(VocabError, match=r"blank\.txt, line 7: empty token"):
        Tokenizer.from_vocab_file(blank)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("\n".join(SPECIALS + ["caf\xe9"]).encode("latin-1"))
    with pytest.raises(VocabError, match=r"latin1\.txt: not UTF-8"):
        Tokenizer.from_vocab_file(latin1)
    with pytest.raises(VocabError, match="duplicate"):
        Tokenizer(VOCAB + ["the"])
    with pytest.raises(TypeError, match="from_vocab_file"):
        Tokenizer("vocab.txt")


def test_crlf_vocab_file_is_read(tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes("\r\n".join(VOCAB).encode("utf-8") + b"\r\n")
    assert load_vocab(crlf) == VOCAB


# -- vocabulary training -------------------------------------------------------------------------

CORPUS = ["low lower lowest", "newer newest wider", "the lowest, the newest!"] * 20


def test_train_contains_specials_and_every_character():
    tok = Tokenizer.train(CORPUS, vocab_size=60)
    assert tok.ids_to_tokens[:5] == SPECIALS
    chars = {c for line in CORPUS for c in line if not c.isspace()}
    assert chars <= set(tok.vocab)
    assert tok.vocab_size <= 60
    # Every word of the corpus can now be covered without [UNK].
    assert "[UNK]" not in tok.tokenize(" ".join(CORPUS))


def test_train_frequency_merges_the_frequent_word_first():
    vocab = train_wordpiece({"low": 10, "lot": 4, "newer": 2}, vocab_size=100)
    learned = vocab[5 + 12:]  # after the specials and the alphabet (l o w t n e r ##o ##w ...)
    assert learned[:2] == ["lo", "low"]  # "l" "##o" (14 times), then "lo" "##w" (10 times)
    assert "lot" in vocab and "newer" in vocab


@pytest.mark.exercise("11.2")
def test_train_likelihood_prefers_parts_that_never_appear_apart():
    # "q" is always followed by "##u" (score 4 / (4*4)); "##a" "##b" are frequent but also
    # appear apart (score 10 / (20*20)).
    counts = {"qu": 4, "xab": 10, "xa": 10, "xb": 10}
    vocab = train_wordpiece(counts, vocab_size=100, criterion="likelihood")
    freq_vocab = train_wordpiece(counts, vocab_size=100, criterion="frequency")
    alphabet_end = 5 + 8  # specials, then q u x a b ##u ##a ##b
    assert vocab[alphabet_end] == "qu"
    assert freq_vocab[alphabet_end] != "qu"


def _likelihood_vocabulary_by_hand(counts: dict[str, int], vocab_size: int) -> list[str]:
    """The classic WordPiece trainer written the slow way: before every merge, count every
    pair and every piece again and take the best count(a b) / (count(a) count(b)); ties to the
    more frequent pair, then to the pair of older pieces (smaller ids)."""
    words = sorted(counts)
    alphabet = {c for w in words for c in w} | {"##" + c for w in words for c in w[1:]}
    pieces = SPECIALS + sorted(alphabet)
    spelled = [[pieces.index(w[0])] + [pieces.index("##" + c) for c in w[1:]] for w in words]
    while len(pieces) < vocab_size:
        piece_count, pair_count = Counter(), Counter()
        for symbols, w in zip(spelled, words, strict=True):
            for s in symbols:
                piece_count[s] += counts[w]
            for pair in zip(symbols, symbols[1:], strict=False):
                pair_count[pair] += counts[w]
        candidates = [(-n / (piece_count[a] * piece_count[b]), -n, (a, b))
                      for (a, b), n in pair_count.items() if n >= 2]
        if not candidates:
            break
        a, b = min(candidates)[2]
        merged = pieces[a] + pieces[b][2:]
        if merged not in pieces:
            pieces.append(merged)
        spelled = [merge_pair(symbols, a, b, pieces.index(merged)) for symbols in spelled]
    return pieces


@pytest.mark.exercise("11.2")
@pytest.mark.parametrize("vocab_size", [40, 60])
def test_train_likelihood_merges_as_the_criterion_says(vocab_size):
    """Every merge of the fast trainer (a heap, counts updated in place) is the one the
    criterion picks when everything is counted again from scratch."""
    counts = {"hugging": 10, "hug": 8, "pug": 6, "pun": 12, "bun": 4, "hugs": 5, "quiz": 3,
              "queue": 2, "gun": 7, "unhug": 2}
    assert train_wordpiece(counts, vocab_size, criterion="likelihood") == \
        _likelihood_vocabulary_by_hand(counts, vocab_size)


def test_train_min_frequency_and_too_small_vocab():
    vocab = train_wordpiece({"ab": 1, "cd": 1}, vocab_size=50, min_frequency=2)
    assert vocab == SPECIALS + ["##b", "##d", "a", "b", "c", "d"]  # nothing merged
    with pytest.raises(ValueError, match="too small"):
        train_wordpiece({"abc": 5}, vocab_size=6)
    with pytest.raises(ValueError, match="criterion"):
        train_wordpiece({"abc": 5}, vocab_size=60, criterion="bpe")


def test_merge_pair():
    assert merge_pair([1, 2, 1, 2, 3], 1, 2, 9) == [9, 9, 3]
    assert merge_pair([1, 1, 1], 1, 1, 9) == [9, 1]


def test_train_from_files_is_deterministic(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    from_lines = Tokenizer.train(CORPUS, vocab_size=50)
    from_file = Tokenizer.train(path, vocab_size=50)
    from_paths = Tokenizer.train([path], vocab_size=50)
    assert from_lines.ids_to_tokens == from_file.ids_to_tokens == from_paths.ids_to_tokens
    with pytest.raises(TypeError, match="Path"):
        Tokenizer.train([b"bytes line"], vocab_size=50)


# -- hard strings and properties -----------------------------------------------------------------


def test_hard_strings_never_crash(tok):
    strings = json.loads(HARD_STRINGS.read_text(encoding="utf-8"))
    assert len(strings) >= 200
    for s in strings:
        e = tok.encode(s, s[::-1], max_length=16)
        assert len(e) <= 16
        assert all(0 <= i < tok.vocab_size for i in e.input_ids)
        tok.decode(e.input_ids)


any_text = st.text(st.characters(exclude_categories=()), max_size=60)  # lone surrogates too


@settings(max_examples=300, deadline=None)
@given(any_text, st.one_of(st.none(), any_text))
def test_never_crashes_and_ids_are_in_range(text, pair):
    tok = Tokenizer(VOCAB)
    e = tok.encode(text, pair)
    assert all(0 <= i < tok.vocab_size for i in e.input_ids)
    assert len(e.input_ids) == len(e.tokens) == len(e.token_type_ids)
    assert e.tokens == tok.convert_ids_to_tokens(e.input_ids)
    tok.decode(e.input_ids)


whole_words = [w for w in VOCAB if not w.startswith("##") and w not in SPECIALS]
spaces = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", "\u3000", " \r\n "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(whole_words), spaces, st.booleans()), max_size=20))
def test_decode_inverts_encode_on_vocabulary_words(items):
    tok = Tokenizer(VOCAB)
    text = "".join((w.upper() if upper else w) + gap for w, gap, upper in items)
    normalized = " ".join(w for w, _, _ in items)
    assert tok.decode(tok.encode(text).input_ids) == normalized


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(whole_words), max_size=30),
    st.one_of(st.none(), st.lists(st.sampled_from(whole_words), max_size=30)),
    st.integers(3, 40),
)
def test_truncation_keeps_a_prefix_of_each_sequence(words_a, words_b, max_length):
    tok = Tokenizer(VOCAB)
    a = " ".join(words_a)
    b = None if words_b is None else " ".join(words_b)
    full = tok.encode(a, b, truncation=False)
    cut = tok.encode(a, b, max_length=max_length)
    assert len(cut) == min(len(full), max_length)
    assert cut.num_truncated == len(full) - len(cut)
    # The kept tokens of each segment are a prefix of that segment's tokens.
    for segment in (0, 1):
        kept = [t for t, s in zip(cut.tokens, cut.token_type_ids, strict=True) if s == segment]
        whole = [t for t, s in zip(full.tokens, full.token_type_ids, strict=True) if s == segment]
        assert kept[:-1] == whole[: len(kept) - 1] and kept[-1:] == whole[-1:]


def test_tokenizer_modules_import_only_stdlib_and_numpy():
    allowed = set(sys.stdlib_module_names) | {"numpy", "minibert"}
    package = Path(__file__).resolve().parents[1] / "minibert"
    for name in ("tokenizer.py", "wordpiece_trainer.py", "fileio.py"):
        tree = ast.parse((package / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                module = ("minibert." if node.level else "") + (node.module or "")
                roots = [module.split(".")[0]]
                if module.startswith("minibert"):
                    # fileio: atomic writes and the checked JSON reader, standard library only
                    assert module in ("minibert.wordpiece_trainer", "minibert.fileio"), \
                        (name, module)
            else:
                continue
            assert set(roots) <= allowed, (name, roots)


def test_special_token_with_an_invisible_character_stays_whole():
    """As the reference: clean the text first (a zero-width space, a control character, a
    private-use or unassigned code point, U+FFFD go), then keep a chunk equal to a special
    token whole. With split_special_tokens=True text never becomes a special token."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[", "]", "a", "b", "mask", "sep"]
    tok = Tokenizer(vocab)
    for text in ["a [MA\u200bSK] b", "a [MA\x01SK] b", "a [MASK\u200e] b", "a [MA\ue000SK] b",
                 "a [MA\u0378SK] b", "a [MA\ufffdSK] b", "a [MASK] b", "a[MASK]b"]:
        assert tok.tokenize(text) == ["a", "[MASK]", "b"], repr(text)
    assert tok.tokenize("a[MA\u200bSK]b") == ["a", "[", "mask", "]", "b"]  # one chunk: text
    split = Tokenizer(vocab, split_special_tokens=True)
    for text in ["a [MASK] b", "a[MASK]b", "a [MA\u200bSK] b"]:
        assert split.tokenize(text) == ["a", "[", "mask", "]", "b"], repr(text)
    assert split.encode("[SEP]").input_ids == [2, 5, 10, 6, 3]


def test_split_special_tokens_is_saved_and_tokenizer_config_is_checked(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]
    Tokenizer(vocab, split_special_tokens=True).save_pretrained(tmp_path)
    assert Tokenizer.from_pretrained(tmp_path).split_special_tokens is True
    config = tmp_path / "tokenizer_config.json"
    for text, match in [("[1, 2]", "expected a JSON object"), ("[" * 100_000, "RecursionError"),
                        ('{"do_lower_case": "yes"}', "do_lower_case must be true or false"),
                        ('{"strip_accents": 1}', "strip_accents must be"), ("{", "not valid")]:
        config.write_text(text)
        with pytest.raises(VocabError, match=match) as e:
            Tokenizer.from_pretrained(tmp_path)
        assert "tokenizer_config.json" in str(e.value)


# -- hostile files and long inputs (issue 23) -------------------------------------------------


def _tokenizer_json(vocab=None, added=None, **spec):
    """A minimal BERT tokenizer.json as transformers writes it, with parts replaced."""
    out = {"model": {"type": "WordPiece", "unk_token": "[UNK]",
                     "continuing_subword_prefix": "##",
                     "vocab": {t: i for i, t in enumerate(VOCAB)} if vocab is None else vocab},
           "added_tokens": [] if added is None else added,
           "normalizer": {"type": "BertNormalizer", "clean_text": True, "lowercase": True},
           "pre_tokenizer": {"type": "BertPreTokenizer"}}
    out.update(spec)
    return out


def test_well_formed_tokenizer_json_without_vocab_txt_loads(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps(_tokenizer_json()), encoding="utf-8")
    assert Tokenizer.from_pretrained(tmp_path).ids_to_tokens == VOCAB
    # the file itself may be given, as may a vocab.txt
    assert Tokenizer.from_pretrained(tmp_path / "tokenizer.json").ids_to_tokens == VOCAB


@pytest.mark.parametrize("spec, message", [
    (_tokenizer_json(added=[{"content": "[NEW]"}]), r"added_tokens\[0\]"),  # no "id"
    (_tokenizer_json(added=["[NEW]"]), r"added_tokens\[0\]"),  # a string, not an object
    (_tokenizer_json(added={"content": "x"}), r"added_tokens must be a list"),
    (_tokenizer_json(added=[{"content": "[NEW]", "id": "7"}]), r"added_tokens\[0\]"),
    (_tokenizer_json(vocab=VOCAB), r"model\.vocab must be an object"),  # a list
    (_tokenizer_json(vocab={"[PAD]": "0"}), r"model\.vocab must be an object"),
    (_tokenizer_json(normalizer=["BertNormalizer"]), r"normalizer"),
    (_tokenizer_json(normalizer={"type": "BertNormalizer", "lowercase": "yes"}),
     r"normalizer\.lowercase must be true or false"),
    (_tokenizer_json(pre_tokenizer="BertPreTokenizer"), r"pre-tokenizer"),
    ({"model": ["WordPiece"]}, r"not a tokenizers file"),
    ([1, 2], r"not a tokenizers file"),
])
def test_malformed_tokenizer_json_is_a_vocab_error(tmp_path, spec, message):
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(VocabError, match=message):
        Tokenizer.from_pretrained(tmp_path)


def test_deeply_nested_tokenizer_json_is_a_vocab_error(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                             encoding="utf-8")
    with pytest.raises(VocabError, match="nested too deeply"):
        Tokenizer.from_pretrained(tmp_path)


def test_vocab_with_a_byte_order_mark_is_read(tmp_path):
    """Editors on Windows put U+FEFF first: it is not part of the first token ([PAD])."""
    (tmp_path / "vocab.txt").write_text("\ufeff" + "\n".join(VOCAB) + "\n", encoding="utf-8")
    assert load_vocab(tmp_path / "vocab.txt") == VOCAB
    assert Tokenizer.from_pretrained(tmp_path).pad_token_id == 0


def test_from_pretrained_accepts_the_vocab_file_itself(tmp_path):
    Tokenizer(VOCAB, lowercase=False).save_pretrained(tmp_path)
    tok = Tokenizer.from_pretrained(tmp_path / "vocab.txt")
    assert tok.ids_to_tokens == VOCAB and not tok.lowercase  # settings from the same folder
    with pytest.raises(FileNotFoundError, match="or either file"):
        Tokenizer.from_pretrained(tmp_path / "nothing.txt")


@pytest.mark.parametrize("vocab_size", [len(VOCAB) - 10, len(VOCAB) + 10])
def test_vocabulary_that_does_not_fit_the_model_is_refused(tmp_path, vocab_size):
    Tokenizer(VOCAB).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": vocab_size}))
    what = "cut short" if vocab_size > len(VOCAB) else "too long"
    with pytest.raises(VocabError, match=f"has {len(VOCAB)} tokens.*vocab_size "
                                         f"{vocab_size}.*{what}"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(VocabError, match="does not belong to this model"):
        Tokenizer.from_pretrained(tmp_path / "vocab.txt")
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": len(VOCAB)}))
    assert Tokenizer.from_pretrained(tmp_path).vocab_size == len(VOCAB)


def test_tokenizer_files_are_replaced_atomically(tmp_path):
    """save_pretrained writes a new file and renames it over the old one: a reader that has
    the old file open keeps reading the old file whole (an in-place write truncates it)."""
    Tokenizer(VOCAB).save_pretrained(tmp_path)
    before = {n: (tmp_path / n).stat().st_ino for n in ("vocab.txt", "tokenizer_config.json")}
    with open(tmp_path / "vocab.txt", encoding="utf-8") as reader:
        Tokenizer(VOCAB[:-1]).save_pretrained(tmp_path)
        assert reader.read().split("\n")[:-1] == VOCAB
    after = {n: (tmp_path / n).stat().st_ino for n in before}
    assert all(after[n] != before[n] for n in before)
    assert load_vocab(tmp_path / "vocab.txt") == VOCAB[:-1]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@given(st.text(alphabet=st.sampled_from("ab,.!xé中 ?"), max_size=40))
def test_split_on_punctuation_cuts_runs_whole(word):
    """Same pieces as growing each run a character at a time (the old, quadratic way)."""
    expected, start_new = [], True
    for char in word:
        if is_punctuation(char):
            expected.append(char)
            start_new = True
        elif start_new:
            expected.append(char)
            start_new = False
        else:
            expected[-1] += char
    assert split_on_punctuation(word) == expected


def test_a_very_long_word_is_unk_without_searching_it():
    """WordPiece gives a word longer than 100 characters [UNK] before looking at it: the
    vocabulary is never asked about one of its substrings."""
    asked = []

    class Vocab(set):
        def __contains__(self, piece):
            asked.append(piece)
            return super().__contains__(piece)

    assert wordpiece("a" * 2_000_000, Vocab(VOCAB)) == ["[UNK]"] and asked == []
    assert Tokenizer(VOCAB).tokenize("x" + "a" * 100_000 + ",b") == ["[UNK]", ",", "b"]
