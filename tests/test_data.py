"""Data readers, label maps, splitting, batching, corpus chunking and the MLM collator."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert.data import (
    IGNORE_INDEX,
    DataError,
    LabelledData,
    MLMCollator,
    batch_indices,
    chunk_corpus,
    classification_batch,
    count_truncated,
    encode_labels,
    label_names,
    mask_tokens,
    pad_sequences,
    read_labelled,
    read_text_corpus,
    train_validation_split,
)
from minibert.tokenizer import Tokenizer

WORDS = "the cat sat on a mat while dogs ran over green hills and birds sang in tall trees".split()


@pytest.fixture(scope="module")
def tokenizer():
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(WORDS, size=12)) for _ in range(200)]
    return Tokenizer.train(lines, vocab_size=120)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- reading labelled files --------------------------------------------------------------------


def test_read_tsv_with_header_and_default_columns(tmp_path):
    path = write(tmp_path, "d.tsv", "text\tlabel\nhello there\tpos\nbad day\tneg\n\n")
    data = read_labelled(path)
    assert data.texts == ["hello there", "bad day"] and data.labels == ["pos", "neg"]
    assert data.text_pairs is None and len(data) == 2 and data.source == str(path)


def test_read_csv_with_chosen_columns_and_pairs(tmp_path):
    text = 'id,premise,hypothesis,gold\n1,"A, B",C,yes\n2,D,"E ""q""",no\n'
    path = write(tmp_path, "d.csv", text)
    data = read_labelled(path, "premise", "gold", text_pair_column="hypothesis")
    assert data.texts == ["A, B", "D"] and data.text_pairs == ["C", 'E "q"']
    assert data.labels == ["yes", "no"]


def test_read_jsonl(tmp_path):
    rows = [{"text": "one", "label": 1}, {"text": "two", "label": 0, "extra": True}]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = read_labelled(path)
    assert data.texts == ["one", "two"] and data.labels == ["1", "0"]


def test_headerless_mode_with_indexes_and_csv_quoting(tmp_path):
    # Like ag_news/train_subset.tsv: no header, a field with quotes is wrapped and doubled.
    text = 'first story\tWorld\n"He said ""hi"" today"\tSports\n'
    data = read_labelled(write(tmp_path, "ag.tsv", text), 0, 1, header=False)
    assert data.texts == ["first story", 'He said "hi" today']
    assert data.labels == ["World", "Sports"]


def test_headerless_mode_needs_indexes(tmp_path):
    with pytest.raises(DataError, match="0-based index"):
        read_labelled(write(tmp_path, "d.tsv", "a\tb\n"), "text", "label", header=False)


def test_unknown_column_lists_available_columns(tmp_path):
    path = write(tmp_path, "d.tsv", "sentence\tlabel\nhi\t1\n")
    with pytest.raises(DataError, match=r"no column named 'text'.*'sentence', 'label'"):
        read_labelled(path)
    jpath = write(tmp_path, "d.jsonl", '{"sentence": "hi", "y": 1}\n')
    with pytest.raises(DataError, match=r"'label'.*available columns: 'sentence', 'y'"):
        read_labelled(jpath, "sentence")


@pytest.mark.parametrize("name, content", [("e.tsv", ""), ("h.tsv", "text\tlabel\n"),
                                           ("e.jsonl", "\n\n"), ("e.csv", "text,label\n\n")])
def test_empty_files_are_an_error(tmp_path, name, content):
    with pytest.raises(DataError, match="empty"):
        read_labelled(write(tmp_path, name, content))


def test_missing_text_names_file_and_line(tmp_path):
    path = write(tmp_path, "d.tsv", "label\ttext\npos\tfine\n\nneg\n")
    with pytest.raises(DataError, match=r"d\.tsv, line 4: the text column 'text' is missing"):
        read_labelled(path)
    jpath = write(tmp_path, "d.jsonl", '{"text": "a", "label": 1}\n{"label": 0}\n')
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: the text column"):
        read_labelled(jpath)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_labelled(tmp_path / "nope.tsv")
    with pytest.raises(DataError, match="format="):
        read_labelled(write(tmp_path, "d.txt", "text\tlabel\n"))


# -- hostile or unusual files (issue 12): each a clear DataError naming file and line, or just works


def test_fields_longer_than_the_csv_module_limit(tmp_path):
    long = "word " * 60_000  # 300,000 characters: csv's default limit is 131,072
    for name, sep in (("d.tsv", "\t"), ("d.csv", ",")):
        data = read_labelled(write(tmp_path, name, f"text{sep}label\n{long}{sep}pos\n"))
        assert data.texts == [long] and data.labels == ["pos"]
    import csv

    assert csv.field_size_limit() == 131_072  # the module-wide limit is left as it was


@pytest.mark.parametrize("name, body", [("d.tsv", "text\tlabel\nhi\tpos\n"),
                                        ("d.csv", "text,label\nhi,pos\n"),
                                        ("d.jsonl", '{"text": "hi", "label": "pos"}\n')])
def test_byte_order_marks_just_work(tmp_path, name, body):
    path = tmp_path / name
    for encoded in (b"\xef\xbb\xbf" + body.encode(), body.encode("utf-16"),
                    b"\xfe\xff" + body.encode("utf-16-be")):
        path.write_bytes(encoded)
        data = read_labelled(path)
        assert data.texts == ["hi"] and data.labels == ["pos"]


def test_invalid_utf8_and_utf16_name_file_and_line(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_bytes(b"text\tlabel\nfine\tpos\nbad \xff\xfe byte\tneg\n")
    with pytest.raises(DataError, match=r"d\.tsv, line 3: not valid UTF-8.*save the file as UTF-8"):
        read_labelled(path)
    body = "text\tlabel\nfine\tpos\n".encode("utf-16")
    path.write_bytes(body + b"\x00\xd8\x41\x00")  # line 3: a lone surrogate, then "A"
    with pytest.raises(DataError, match=r"d\.tsv, line 3: not valid UTF-16"):
        read_labelled(path)
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"one\ntwo \xc3\n")
    with pytest.raises(DataError, match=r"c\.txt, line 2: not valid UTF-8"):
        read_text_corpus(corpus)


def test_unclosed_quote_is_reported_where_it_opens(tmp_path):
    rows = "".join(f"row {i}\tpos\n" for i in range(5))
    path = write(tmp_path, "d.tsv", "text\tlabel\n" + rows + '"never closed\tneg\n' + rows)
    with pytest.raises(DataError, match=r"d\.tsv, line 7: .*never closed.*quoting=False"):
        read_labelled(path)
    data = read_labelled(path, quoting=False)  # where " is just a character
    assert data.texts[5] == '"never closed' and len(data) == 11


def test_label_spaces_do_not_make_a_new_class(tmp_path):
    data = read_labelled(write(tmp_path, "d.tsv", "text\tlabel\na\t1 \nb\t1\nc\t 0\n"))
    assert data.labels == ["1", "1", "0"] and label_names(data.labels) == ["0", "1"]


@pytest.mark.parametrize("line, match", [
    ('{"text": ["a", "b"], "label": "pos"}', r"line 2: the text column 'text' holds list"),
    ('{"text": "a", "label": true}', r"line 2: the label column 'label' holds bool"),
    ('{"text": "a", "label": {"x": 1}}', r"line 2: the label column 'label' holds dict"),
    ('{"text": "a", "text": "b", "label": "pos"}', r"line 2: .*duplicate key 'text'"),
    ('[' * 50_000, r"line 2: JSON nested too deeply"),
    ('{"text": "a", "label": ' + "9" * 5000 + "}", r"line 2: not valid JSON"),
])
def test_jsonl_values_must_be_strings(tmp_path, line, match):
    path = write(tmp_path, "d.jsonl", '{"text": "ok", "label": 1}\n' + line + "\n")
    with pytest.raises(DataError, match=match) as e:
        read_labelled(path)
    assert str(path) in str(e.value)


def test_duplicate_header_names_are_an_error(tmp_path):
    path = write(tmp_path, "d.tsv", "text\ttext\tlabel\na\tb\tpos\n")
    with pytest.raises(DataError, match=r"d\.tsv: the header names 2 columns 'text'"):
        read_labelled(path)
    assert read_labelled(path, 1, "label").texts == ["b"]  # by index: no ambiguity


@pytest.mark.parametrize("column", ["abc", -1, True])
def test_headerless_columns_are_non_negative_indexes(tmp_path, column):
    path = write(tmp_path, "d.tsv", "a\tpos\n")
    with pytest.raises(DataError, match="0-based index"):
        read_labelled(path, column, 1, header=False)


def test_format_overrides_the_extension(tmp_path):
    path = write(tmp_path, "questions.label", "DESC\tHow did serfdom develop ?\n")
    with pytest.raises(DataError, match="format="):
        read_labelled(path, 1, 0, header=False)
    assert read_labelled(path, 1, 0, header=False, format="tsv").labels == ["DESC"]


def test_label_text_format_reads_trec_lines(tmp_path):
    path = write(tmp_path, "train.label", "DESC:manner How did serfdom develop ?\n\n"
                 "ENTY:cremat What films featured Popeye Doyle ?\n")
    data = read_labelled(path, format="label-text")
    assert data.labels == ["DESC:manner", "ENTY:cremat"]
    assert data.texts == ["How did serfdom develop ?", "What films featured Popeye Doyle ?"]
    bad = write(tmp_path, "bad.label", "DESC:manner How ?\nLONELY\n")
    with pytest.raises(DataError, match=r"line 2: expected a label, whitespace and a text"):
        read_labelled(bad, format="label-text")
    with pytest.raises(DataError, match="one text a line"):
        read_labelled(path, text_pair_column="other", format="label-text")
    with pytest.raises(DataError, match="unknown format 'xml'"):
        read_labelled(path, format="xml")


def test_label_text_format_reads_the_real_trec_file(shared_data):
    data = read_labelled(shared_data / "trec" / "train_5500.label", format="label-text")
    assert len(data) > 5000 and all(":" in label for label in data.labels)
    assert len({label.split(":")[0] for label in data.labels}) == 6  # TREC's coarse classes


def test_a_directory_is_not_a_data_file(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        read_labelled(tmp_path)
    with pytest.raises(DataError, match="not a file"):
        read_text_corpus(tmp_path)


# Property test: whatever bytes a data file holds, reading it gives data or a DataError naming
# the file, never another exception; memory stays within a small multiple of the file's size.
_pieces = st.sampled_from(["text", "label", "\t", ",", '"', '""', "\n", "\r\n", " ", "1 ", "a",
                           "{", "}", "[", "]", ":", '"text"', '"label"', "\ufeff", "é", "\x00"])
_files = st.one_of(
    st.binary(max_size=200),
    st.lists(_pieces, max_size=60).map(lambda p: "".join(p).encode("utf-8")),
    st.tuples(st.lists(_pieces, max_size=40), st.binary(max_size=4), st.integers(0, 200)).map(
        lambda t: ("".join(t[0]).encode()[:t[2]] + t[1] + "".join(t[0]).encode()[t[2]:])),
)


@settings(max_examples=300, deadline=None)
@given(content=_files, fmt=st.sampled_from(["tsv", "csv", "jsonl"]), header=st.booleans(),
       quoting=st.booleans())
def test_property_any_bytes_give_data_or_a_data_error(content, fmt, header, quoting):
    import tempfile
    import tracemalloc
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f.{fmt}"
        path.write_bytes(content)
        columns = ("text", "label") if header or fmt == "jsonl" else (0, 1)
        tracemalloc.start()
        try:
            data = read_labelled(path, *columns, header=header, quoting=quoting)
            assert len(data.texts) == len(data.labels) > 0
            assert all(label == label.strip() and label for label in data.labels)
        except DataError as e:
            assert str(path) in str(e)
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak < 50 * len(content) + 500_000


def test_ag_news_subset_reads_in_headerless_mode(shared_data):
    data = read_labelled(shared_data / "ag_news" / "train_subset.tsv", 0, 1, header=False)
    assert len(data) == 10_001
    assert label_names(data.labels) == ["Business", "Sci/Tech", "Sports", "World"]
    assert data.labels.count("Sci/Tech") == 2538


# -- labels ------------------------------------------------------------------------------------


def test_label_names_sorted_and_numeric_aware():
    assert label_names(["b", "a", "c", "a"]) == ["a", "b", "c"]
    assert label_names(["10", "2", "1"]) == ["1", "2", "10"]


def test_unseen_eval_labels_are_listed():
    label2id = {"neg": 0, "pos": 1}
    np.testing.assert_array_equal(encode_labels(["pos", "neg"], label2id), [1, 0])
    with pytest.raises(DataError, match=r"never saw: 'meh', 'zzz'"):
        encode_labels(["pos", "zzz", "meh", "zzz"], label2id, source="eval.tsv")


def test_train_validation_split_is_stratified_seeded_and_disjoint():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    data = LabelledData([f"t{i}" for i in range(100)], labels)
    train, val = train_validation_split(data, 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80
    assert sorted(set(train.texts) | set(val.texts)) == sorted(data.texts)
    assert not set(train.texts) & set(val.texts)
    assert [val.labels.count(c) for c in "abc"] == [10, 6, 4]  # 20% of each class
    assert train_validation_split(data, 0.2, seed=3)[1].texts == val.texts
    assert train_validation_split(data, 0.2, seed=4)[1].texts != val.texts


def test_split_keeps_rare_classes_on_both_sides():
    data = LabelledData([f"t{i}" for i in range(12)], ["a"] * 10 + ["b"] * 2)
    train, val = train_validation_split(data, 0.1, seed=0)
    assert "b" in train.labels and "b" in val.labels


# -- batching ----------------------------------------------------------------------------------


def test_batch_indices_cover_everything_and_shuffle_with_a_seed():
    plain = batch_indices(10, 4)
    assert [b.tolist() for b in plain] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = batch_indices(10, 4, np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(10))
    assert np.concatenate(shuffled).tolist() != list(range(10))
    again = batch_indices(10, 4, np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(shuffled, again, strict=True))


def _padding(batches, lengths):
    """Padded positions the model would compute on: each batch padded to its longest row."""
    return sum(int(lengths[b].max() * len(b) - lengths[b].sum()) for b in batches)


def test_inference_batches_are_sorted_longest_first():
    lengths = np.array([3, 9, 5, 9, 1, 4, 7])
    batches = batch_indices(7, 3, lengths=lengths)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(7))
    assert lengths[order].tolist() == [9, 9, 7, 5, 4, 3, 1]
    assert _padding(batches, lengths) < _padding(batch_indices(7, 3), lengths)


def test_length_grouped_training_batches_are_random_and_carry_little_padding():
    lengths = np.random.default_rng(1).integers(5, 100, size=1000)
    grouped = batch_indices(1000, 16, np.random.default_rng(0), lengths, group_batches=10)
    plain = batch_indices(1000, 16, np.random.default_rng(0))
    assert sorted(np.concatenate(grouped).tolist()) == list(range(1000))
    assert [len(b) for b in grouped].count(16) == 62 and len(grouped) == 63
    assert _padding(grouped, lengths) < _padding(plain, lengths) / 5
    # random: the same seed draws the same batches, another seed others, and the order of
    # the batches is not sorted by length
    again = batch_indices(1000, 16, np.random.default_rng(0), lengths, group_batches=10)
    assert all((a == b).all() for a, b in zip(grouped, again, strict=True))
    other = batch_indices(1000, 16, np.random.default_rng(2), lengths, group_batches=10)
    assert any((a != b).any() for a, b in zip(grouped, other, strict=True))
    longest = [int(lengths[b].max()) for b in grouped]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_lengths_must_fit_the_examples():
    with pytest.raises(ValueError, match="one length per example"):
        batch_indices(5, 2, lengths=[1, 2, 3])


def test_classification_batch_pads_to_the_longest_and_truncates(tokenizer):
    data = LabelledData(["the cat", "the cat sat on a mat", "dogs ran"], ["x", "y", "x"])
    b = classification_batch(tokenizer, data, [0, 1, 2], {"x": 0, "y": 1})
    lengths = b["attention_mask"].sum(axis=1)
    assert b["input_ids"].shape[1] == lengths.max() and b["input_ids"].dtype == np.int64
    assert (b["input_ids"][b["attention_mask"] == 0] == tokenizer.pad_token_id).all()
    np.testing.assert_array_equal(b["labels"], [0, 1, 0])
    short = classification_batch(tokenizer, data, [1], {"x": 0, "y": 1}, max_length=4)
    assert short["input_ids"].shape == (1, 4) and short["num_truncated"][0] > 0
    assert count_truncated(tokenizer, data, max_length=4) == 1


# -- pre-training corpus -----------------------------------------------------------------------


def test_read_text_corpus_skips_blank_lines(tmp_path):
    path = write(tmp_path, "c.txt", " \n = Title = \n\nsome text here\n \t \n")
    assert read_text_corpus(path) == ["= Title =", "some text here"]
    with pytest.raises(DataError, match="no text"):
        read_text_corpus(write(tmp_path, "blank.txt", "\n \n"))


def test_chunk_corpus_cuts_long_lines_without_losing_tokens(tokenizer):
    long_line = " ".join(WORDS * 3)
    chunks = chunk_corpus(tokenizer, [long_line, "the cat"], max_length=10)
    ids = tokenizer.encode(long_line, truncation=False).input_ids[1:-1]
    pieces = chunks[:-1]
    assert all(len(c) <= 10 for c in chunks)
    assert all(c[0] == tokenizer.cls_token_id and c[-1] == tokenizer.sep_token_id for c in chunks)
    assert [t for c in pieces for t in c[1:-1]] == ids
    assert len(pieces) == -(-len(ids) // 8)


def test_pad_sequences():
    ids, mask = pad_sequences([np.array([5, 6, 7]), np.array([8])], pad_token_id=0)
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1], [1, 0, 0]])


# -- MLM masking -------------------------------------------------------------------------------


@pytest.mark.exercise("7.1")
def test_mask_tokens_statistics():
    vocab, special, mask_id = 1000, [0, 1, 2, 3, 4], 4  # 0 = [PAD]
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab, size=(400, 128))
    ids[:, 0], ids[:, 100] = 2, 3  # [CLS] and [SEP]
    ids[:, 101:] = 0  # padding
    masked, labels = mask_tokens(ids, special, mask_id, vocab, np.random.default_rng(1))

    eligible = ~np.isin(ids, special)
    chosen = labels != IGNORE_INDEX
    assert not (chosen & ~eligible).any()  # never a special token or padding
    np.testing.assert_array_equal(labels[chosen], ids[chosen])  # label = the original token
    np.testing.assert_array_equal(masked[~chosen], ids[~chosen])  # the rest untouched
    share = chosen.sum() / eligible.sum()
    assert share == pytest.approx(0.15, abs=0.005)  # n ≈ 40,000 tokens: σ ≈ 0.0018

    n = chosen.sum()
    to_mask = (masked == mask_id) & chosen
    kept = (masked == ids) & chosen
    replaced = chosen & ~to_mask & ~kept
    assert to_mask.sum() / n == pytest.approx(0.8, abs=0.015)
    assert replaced.sum() / n == pytest.approx(0.1, abs=0.012)
    assert kept.sum() / n == pytest.approx(0.1, abs=0.012)  # (a random token equal to the
    # original counts as kept: 1 in 995, well inside the tolerance)
    assert not np.isin(masked[replaced], special).any()  # random tokens are ordinary ones


@pytest.mark.exercise("7.1")
def test_mask_tokens_is_seeded_and_leaves_its_input_alone():
    ids = np.random.default_rng(0).integers(5, 50, size=(4, 16))
    original = ids.copy()
    a = mask_tokens(ids, [0, 1, 2, 3, 4], 4, 50, np.random.default_rng(7))
    b = mask_tokens(ids, [0, 1, 2, 3, 4], 4, 50, np.random.default_rng(7))
    c = mask_tokens(ids, [0, 1, 2, 3, 4], 4, 50, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    np.testing.assert_array_equal(ids, original)


def test_mlm_collator_pads_and_never_masks_special_tokens(tokenizer):
    seqs = chunk_corpus(tokenizer, ["the cat sat on a mat", "dogs ran", "birds sang"] * 20, 16)
    batch = MLMCollator(tokenizer, rng=0)(seqs)
    ids, _ = pad_sequences(seqs, tokenizer.pad_token_id)
    chosen = batch["labels"] != IGNORE_INDEX
    assert chosen.any()
    assert not np.isin(ids[chosen], list(tokenizer.special_ids)).any()
    assert (batch["attention_mask"][chosen] == 1).all()
    assert batch["input_ids"].shape == ids.shape == batch["token_type_ids"].shape


# -- what a reader accepts as its input, and blank lines (issue 23) ---------------------------


def test_read_lines_keeps_blank_lines_in_place(tmp_path):
    from minibert.data import read_lines, split_lines

    path = tmp_path / "texts.txt"
    path.write_bytes("\ufeffone\r\n\n  \ntwo".encode())
    assert read_lines(path) == ["one", "", "  ", "two"]
    assert split_lines("a\n\nb\n") == ["a", "", "b"] and split_lines("") == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_readers_take_a_named_pipe_and_name_what_they_refuse(tmp_path):
    import threading

    from minibert.token_data import read_token_labelled

    pipe = tmp_path / "data.tsv"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_text("text\tlabel\nhi\tx\n"), daemon=True)
    writer.start()
    assert read_labelled(pipe).texts == ["hi"]
    writer.join()
    for read in (read_labelled, read_text_corpus, read_token_labelled):
        with pytest.raises(DataError, match="is a folder, not a file"):
            read(tmp_path)
        if os.path.exists("/dev/null"):
            with pytest.raises(DataError, match="neither a file nor a pipe"):
                read("/dev/null")
        with pytest.raises(FileNotFoundError, match="not found"):
            read(tmp_path / "missing.tsv")
