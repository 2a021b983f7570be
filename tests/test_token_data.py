"""One label per word: reading token-labelled files, aligning labels with word pieces, and the
entity-level scores."""

import json

import pytest

from minibert.data import IGNORE_INDEX as IGNORE
from minibert.data import DataError
from minibert.datasets import ticket_entities_dir
from minibert.metrics import entity_scores, entity_spans
from minibert.token_data import (
    TokenLabelledData,
    align_labels,
    encode_tags,
    encode_words,
    read_token_labelled,
    split_words,
    tag_names,
    token_classification_batch,
    word_predictions,
)
from minibert.tokenizer import Tokenizer

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "my", "hub", "ks", "-", "20", "##48",
         "arrived", "on", "friday", "."]


@pytest.fixture
def tok():
    return Tokenizer(VOCAB)


# -- the shipped dataset --------------------------------------------------------------------------


def test_shipped_dataset_reads_and_has_the_four_types():
    train = read_token_labelled(ticket_entities_dir() / "train.conll")
    test = read_token_labelled(ticket_entities_dir() / "test.conll")
    assert len(train) >= 200 and len(test) >= 50
    assert tag_names(train.tags) == ["O", "B-AMOUNT", "I-AMOUNT", "B-DATE", "I-DATE",
                                     "B-ORDER", "I-ORDER", "B-PRODUCT", "I-PRODUCT"]
    seen = {" ".join(w).lower() for w in train.words}
    assert not seen & {" ".join(w).lower() for w in test.words}, "a sentence in both splits"
    for data in (train, test):  # every I- continues an entity of its own type
        for tags in data.tags:
            for prev, tag in zip(["O", *tags], tags, strict=False):
                if tag.startswith("I-"):
                    assert prev[2:] == tag[2:], tags


# -- reading files and bad input -----------------------------------------------------------------


def test_conll_and_jsonl_read_the_same(tmp_path):
    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART- O\n\nMy\tO\nhub\tB-PRODUCT\n\nFriday\tB-DATE\n.\tO\n",
                     encoding="utf-8")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"tokens": ["My", "hub"], "tags": ["O", "B-PRODUCT"]}) + "\n"
                     + json.dumps({"tokens": ["Friday", "."], "ner_tags": ["B-DATE", "O"]})
                     + "\n", encoding="utf-8")
    a, b = read_token_labelled(conll), read_token_labelled(jsonl)
    assert a.words == b.words == [["My", "hub"], ["Friday", "."]]
    assert a.tags == b.tags == [["O", "B-PRODUCT"], ["B-DATE", "O"]]


def test_mismatched_word_and_tag_counts_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["My", "hub", "broke"], "tags": ["O", "B-PRODUCT"]})
                   + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: sentence 1 has 3 words but 2 tags"):
        read_token_labelled(bad)
    conll = tmp_path / "bad.conll"
    conll.write_text("My\tO\nhub\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.conll, line 2: expected 'word<TAB>tag'"):
        read_token_labelled(conll)
    with pytest.raises(DataError, match="not BIO"):
        TokenLabelledData([["My", "hub"]], [["O", "PRODUCT"]], "x")


def test_unknown_tag_in_evaluation_data_is_a_clear_error():
    label2id = {t: i for i, t in enumerate(["O", "B-DATE", "I-DATE"])}
    with pytest.raises(DataError, match=r"test.conll: sentence 2 has the tag 'B-ORDER'"):
        encode_tags([["O"], ["B-ORDER"]], label2id, "test.conll")


def test_split_words_follows_the_dataset_rule():
    assert split_words('My hub (KS-2048), please!') == ["My", "hub", "(", "KS-2048", ")", ",",
                                                          "please", "!"]
    assert split_words("$49.99.") == ["$49.99", "."]


# -- word pieces and labels ----------------------------------------------------------------------


@pytest.mark.exercise("12.1")
def test_only_the_first_piece_of_a_word_is_labelled(tok):
    words = ["My", "hub", "KS-2048", "arrived", "Friday", "."]
    ids, word_ids = encode_words(tok, words, max_length=32)
    assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "my", "hub", "ks", "-", "20", "##48",
                                              "arrived", "friday", ".", "[SEP]"]
    assert word_ids == [None, 0, 1, 2, 2, 2, 2, 3, 4, 5, None]
    labels = align_labels(word_ids, [0, 1, 3, 0, 5, 0])
    assert labels == [IGNORE, 0, 1, 3, IGNORE, IGNORE, IGNORE, 0, 5, 0, IGNORE]
    # two words in a row that are each one piece: both labelled
    assert align_labels([None, 0, 1, None], [7, 8]) == [IGNORE, 7, 8, IGNORE]


def test_batch_pads_with_ignore_and_truncation_drops_whole_words(tok):
    data = TokenLabelledData([["My", "hub"], ["KS-2048", "arrived", "Friday"]],
                             [["O", "B-PRODUCT"], ["B-ORDER", "O", "B-DATE"]])
    label2id = {t: i for i, t in enumerate(tag_names(data.tags))}
    b = token_classification_batch(tok, data, [0, 1], label2id, max_length=7)
    assert b["input_ids"].shape == (2, 7)
    assert b["labels"][0].tolist() == [IGNORE, 0, label2id["B-PRODUCT"], IGNORE, IGNORE,
                                       IGNORE, IGNORE]
    # row 1: [CLS] ks - 20 ##48 arrived [SEP]: "Friday" did not fit
    assert b["num_truncated"] == 1 and b["word_ids"][1] == [None, 0, 0, 0, 0, 1, None]
    preds = word_predictions(b["word_ids"][1], [9, 4, 9, 9, 9, 0, 9], num_words=3, fill=-1)
    assert preds == [4, 0, -1]


# -- entity-level scores -------------------------------------------------------------------------


def test_entity_spans():
    assert entity_spans(["B-DATE", "I-DATE", "O", "B-ORDER"]) == {("DATE", 0, 2),
                                                                   ("ORDER", 3, 4)}
    # an I- that does not continue its type starts an entity; B- after B- is a new one
    assert entity_spans(["O", "I-DATE", "I-ORDER", "B-ORDER", "B-ORDER"]) == {
        ("DATE", 1, 2), ("ORDER", 2, 3), ("ORDER", 3, 4), ("ORDER", 4, 5)}


def test_entity_scores_count_whole_entities_only():
    true = [["B-PRODUCT", "I-PRODUCT", "O", "B-DATE"], ["B-AMOUNT", "O"]]
    pred = [["B-PRODUCT", "O", "O", "B-DATE"], ["B-AMOUNT", "B-DATE"]]
    s = entity_scores(true, pred)
    # true: PRODUCT 0-2, DATE 3, AMOUNT 0; predicted: PRODUCT 0-1 (wrong span), DATE 3, AMOUNT 0,
    # DATE 1 -> 2 correct of 4 predicted, of 3 true
    assert (s["num_true"], s["num_pred"]) == (3, 4)
    assert s["precision"] == pytest.approx(2 / 4) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["per_type"]["PRODUCT"]["f1"] == 0.0
    assert s["per_type"]["DATE"]["precision"] == 0.5 and s["per_type"]["DATE"]["recall"] == 1.0
    with pytest.raises(ValueError, match="sentence 1: 2 true tags but 1 predicted"):
        entity_scores(true, [pred[0], ["O"]])
