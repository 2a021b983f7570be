"""Data: from files on disk to the integer arrays a BERT model eats.

Two kinds of data are read here:

* **labelled text** for fine-tuning (``read_labelled``): TSV, CSV or JSONL with a text column,
  a label column and, for sentence-pair tasks, a second text column. Label *names* are mapped
  to ids 0..C-1 in sorted order (``label_names``), and that list travels with the model as
  ``config.id2label``.
* **raw text** for pre-training (``read_text_corpus``, ``chunk_corpus``): one document per line,
  cut into pieces that fit the model, then masked by the MLM collator (``mask_tokens``).

Everything random takes a NumPy ``Generator`` (or a seed), so that a run can be repeated
exactly. This module knows the tokenizer's outputs (arrays of ids), but nothing about models.

Shapes: B = batch size, T = tokens in the longest row of the batch.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .fileio import parse_json, short_repr
from .functional import IGNORE_INDEX  # the label of a position the loss skips (-100)
from .tokenizer import pad_sequences  # one padding helper, shared with Tokenizer.batch_encode

if TYPE_CHECKING:  # for type hints only (no import at run time)
    from .tokenizer import Tokenizer


class DataError(ValueError):
    """A data file or dataset that cannot be used as it is; the message says where and why."""


# ----------------------------------------------------------------------------------------------
# Labelled text


@dataclass
class LabelledData:
    """Texts with one label each (label names as strings, as read from the file).

    texts:      the first (or only) text of each example
    labels:     the label name of each example, e.g. "Sports" or "1"
    text_pairs: the second text of each example for sentence-pair tasks, else None
    source:     where the examples came from (used in error messages)
    """

    texts: list[str]
    labels: list[str]
    text_pairs: list[str] | None = None
    source: str = "<memory>"

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.labels)} "
                            "labels")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise DataError(f"{self.source}: {len(self.texts)} texts but "
                            f"{len(self.text_pairs)} text pairs")
        self.labels = [str(label) for label in self.labels]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelledData:
        """The examples at `indices`, in that order."""
        idx = [int(i) for i in indices]
        pairs = None if self.text_pairs is None else [self.text_pairs[i] for i in idx]
        return LabelledData([self.texts[i] for i in idx], [self.labels[i] for i in idx],
                            pairs, self.source)


def label_names(labels: Iterable[str]) -> list[str]:
    """The distinct label names in a fixed order: the position of a name is its id.

    Sorted, so the mapping never depends on the order of the file. Names that are all integers
    ("0", "1", "10") sort as numbers, so "2" comes before "10".
    """
    names = sorted(set(map(str, labels)))
    if names and all(_is_int(n) for n in names):
        names.sort(key=int)
    return names


def class_names(data: LabelledData) -> list[str]:
    """The classes a classifier trained on `data` learns (``label_names``): at least two.

    With a single class there is nothing to learn: the loss is 0 at once and the model always
    says that class, so it is an error, before any work.
    """
    names = label_names(data.labels)
    if len(names) < 2:
        found = f"every example has the label {names[0]!r}" if names else "there are no labels"
        raise DataError(f"{data.source}: {found}; a classifier needs examples of at least two "
                        "classes")
    return names


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def encode_labels(labels: Sequence[str], label2id: dict[str, int],
                  source: str = "data") -> np.ndarray:
    """Label names -> int64 ids (shape (N,)). Names that `label2id` lacks are an error that
    lists them: a classifier cannot predict a class it was never trained on."""
    unknown = sorted(set(map(str, labels)) - set(label2id))
    if unknown:
        raise DataError(
            f"{source} has {len(unknown)} label(s) that the training data never saw: "
            f"{', '.join(map(repr, unknown[:20]))}{' ...' if len(unknown) > 20 else ''}. "
            f"Known labels: {', '.join(map(repr, label2id))}"
        )
    return np.array([label2id[str(label)] for label in labels], dtype=np.int64)


# "label-text": one example a line, the label first, then whitespace, then the text (TREC's
# .label files, fastText's "__label__x text" lines).
FORMATS = ("tsv", "csv", "jsonl", "label-text")


def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower()
    else:
        fmt = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".json": "jsonl"}.get(path.suffix.lower(), "")
        if not fmt:
            raise DataError(f"{path}: cannot tell the format from the extension "
                            f"{path.suffix!r}; pass format='tsv', 'csv' or 'jsonl'")
    if fmt not in FORMATS:
        raise DataError(f"unknown format {format!r}; use one of {', '.join(map(repr, FORMATS))}")
    return fmt


def read_labelled(
    path: str | os.PathLike,
    text_column: str | int = "text",
    label_column: str | int = "label",
    text_pair_column: str | int | None = None,
    *,
    header: bool = True,
    format: str | None = None,
    quoting: bool = True,
) -> LabelledData:
    """Read labelled examples from a TSV, CSV or JSONL file.

    Columns are chosen by name (from the header line, or the keys of each JSON object) or, for
    a file without a header (``header=False``), by 0-based index. For example AG News:
    ``read_labelled("ag_news/train_subset.tsv", 0, 1, header=False)``.

    format: "tsv", "csv", "jsonl" or "label-text"; by default taken from the file extension.
        "label-text" is one example a line: the label, whitespace, then the text (TREC's
        ``DESC:manner How did ...``); it has no header and no columns to choose.
    quoting: TSV/CSV fields may be wrapped in double quotes, with "" for a quote inside (the
        CSV convention). Set False for files where a " is just a character.
    The file is UTF-8 (a byte-order mark is skipped) or UTF-16 with a byte-order mark. Blank
    lines are skipped; fields may be of any length; a label's surrounding spaces are dropped
    ("1 " is the label "1"). Raises DataError, naming the file and line, for: bytes that are
    not valid text, an empty file, an unknown or ambiguous (duplicated) column, a quote that
    is never closed (the line where it opens), a row without text or label, a JSON value
    that is not a string (a text that is a list, ...).
    """
    path = check_data_file(path, "data file", "a .tsv, .csv or .jsonl file")
    fmt = _format_of(path, format)
    columns = {"text": text_column, "label": label_column}
    if text_pair_column is not None:
        columns["text_pair"] = text_pair_column
    text = _read_text(path)
    if fmt == "jsonl":
        rows = _jsonl_rows(path, text, columns)
    elif fmt == "label-text":
        if text_pair_column is not None:
            raise DataError(f"{path}: the label-text format holds one text a line; a second "
                            "text (text_pair_column) needs a TSV, CSV or JSONL file")
        rows = _label_text_rows(path, text)
    else:
        rows = _delimited_rows(path, text, columns, "\t" if fmt == "tsv" else ",", header,
                               quoting)

    texts, labels, pairs = [], [], []
    for line, values in rows:
        for role in columns:
            value = values[role]
            if role == "label" and isinstance(value, int) and not isinstance(value, bool):
                value = values[role] = str(value)  # JSONL labels may be numbers: {"label": 1}
            if value is not None and not isinstance(value, str):
                raise DataError(f"{path}, line {line}: the {role} column {columns[role]!r} "
                                f"holds {type(value).__name__} {short_repr(value)}; expected a "
                                f"string{' (or an integer)' if role == 'label' else ''}")
            if value is None or value.strip() == "":
                raise DataError(f"{path}, line {line}: the {role} column "
                                f"{columns[role]!r} is missing or empty")
        texts.append(values["text"])
        labels.append(values["label"].strip())
        if text_pair_column is not None:
            pairs.append(values["text_pair"])
    if not texts:
        raise DataError(f"{path}: no examples (the file is empty"
                        f"{' apart from its header' if header and fmt != 'jsonl' else ''})")
    return LabelledData(texts, labels, pairs if text_pair_column is not None else None,
                        str(path))


def check_data_file(path: str | os.PathLike[str], what: str = "file",
                    expected: str = "a text file") -> Path:
    """`path` as a Path, if it is something a reader can read once from start to end: a file,
    or a named pipe (``--train <(zcat data.tsv.gz)``; every reader reads its input once).
    FileNotFoundError when it is missing; DataError, saying what it is, for a folder, a
    device or a socket."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file; give {expected}")
    if not (path.is_file() or path.is_fifo()):
        raise DataError(f"{path} is neither a file nor a pipe (a device or a socket?); give "
                        f"{expected}")
    return path


def read_lines(path: str | os.PathLike) -> list[str]:
    """Every line of a text file, in order, blank ones included (without their line ends):
    one text a line, where line n of the input must stay row n of the output. Encodings as
    ``read_labelled``."""
    return split_lines(_read_text(check_data_file(path)))


def split_lines(text: str) -> list[str]:
    """'a\r\n\nb\n' -> ['a', '', 'b']: the lines of a text, blank ones kept, line ends
    (\n or \r\n) dropped."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the line end of the last line
    return [line.removesuffix("\r") for line in lines]


def _read_text(path: Path) -> str:
    """The whole file as text: UTF-8 (with or without a byte-order mark), or UTF-16 with one.

    Bytes that are not valid in that encoding are a DataError naming the line, never a
    traceback nor (with errors="replace") a silently changed text.
    """
    data = path.read_bytes()
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[:e.start].decode(encoding, errors="replace").count("\n") + 1
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise DataError(f"{path}, line {line}: not valid {name} (bytes "
                        f"{data[e.start:e.end + 3]!r}: {e.reason}); save the file as UTF-8"
                        ) from None


@contextmanager
def _any_field_size():
    """Let the csv module read fields of any length (its default limit is 131,072 chars)."""
    old = csv.field_size_limit(2**31 - 1)  # the most a C long holds everywhere
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _delimited_rows(path: Path, text: str, columns: dict, delimiter: str, header: bool,
                    quoting: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, {role: value or None}) for each non-blank row of a TSV/CSV file.

    The line number is where the row starts (a quoted field may span lines)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True,
                        quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE)

    def rows():
        while True:
            start = reader.line_num + 1
            try:
                with _any_field_size():
                    row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise DataError(
                    f"{path}, line {start}: {e}; a field here opens a quote (\") that is "
                    "never closed, or text follows a closing quote. If \" is just a "
                    "character in this file, read it with quoting=False (--no-quoting)"
                ) from None
            yield start, row

    lines = rows()
    if header:
        first = next(lines, None)
        if first is None:
            raise DataError(f"{path}: the file is empty (expected a header line)")
        index = {role: _column_index(col, first[1], path) for role, col in columns.items()}
    else:
        for role, col in columns.items():
            if not isinstance(col, int) or isinstance(col, bool) or col < 0:
                raise DataError(f"{path}: with header=False, columns are chosen by 0-based "
                                f"index, but the {role} column is {col!r}")
        index = dict(columns)
    for line, row in lines:
        if not row or all(not field.strip() for field in row):
            continue
        yield line, {role: row[i] if i < len(row) else None for role, i in index.items()}


def _column_index(col: str | int, names: list[str], path: Path) -> int:
    if isinstance(col, int):
        if not 0 <= col < len(names):
            raise DataError(f"{path}: column index {col} is out of range; the header has "
                            f"{len(names)} columns: {names}")
        return col
    if col not in names:
        raise DataError(f"{path}: no column named {col!r}; available columns: "
                        f"{', '.join(map(repr, names))}")
    if names.count(col) > 1:
        raise DataError(f"{path}: the header names {names.count(col)} columns {col!r} "
                        f"(columns {[i for i, n in enumerate(names) if n == col]}); rename them, "
                        "or choose the column by index with header=False")
    return names.index(col)


def json_records(path: Path, text: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (line number, object) for each non-blank line of a JSON-lines file.

    text: the file's contents, if already read (see _read_text). A line that is not a JSON
    object (invalid, nested too deeply, a key twice, a list...) is a DataError naming the file
    and the line."""
    text = _read_text(path) if text is None else text
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        record = parse_json(line, f"{path}, line {line_no}", DataError, unique_keys=True)
        if not isinstance(record, dict):
            raise DataError(f"{path}, line {line_no}: expected a JSON object, "
                            f"got {type(record).__name__}")
        yield line_no, record


def _label_text_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, {"label", "text"}) for each non-blank "LABEL TEXT" line."""
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) < 2:
            raise DataError(f"{path}, line {line_no}: expected a label, whitespace and a text; "
                            f"found only {short_repr(parts[0])}")
        yield line_no, {"label": parts[0], "text": parts[1]}


def _jsonl_rows(path: Path, text: str, columns: dict
                ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, {role: value or None}) for each JSON object line of a JSONL file."""
    checked = False
    for line_no, record in json_records(path, text):
        if not checked:  # the first record defines the columns, like a header line
            for role, col in columns.items():
                if col not in record:
                    raise DataError(f"{path}: no column named {col!r} (the {role} column); "
                                    f"available columns: {', '.join(map(repr, record))}")
            checked = True
        yield line_no, {role: record.get(col) for role, col in columns.items()}


def train_validation_split(data: LabelledData, validation_fraction: float = 0.1, seed: int = 0,
                           stratify: bool = True) -> tuple[LabelledData, LabelledData]:
    """Split into (train, validation), seeded. Stratified: every label keeps (about) the same
    share in both parts, and every label with at least 2 examples appears in both. Each part
    keeps the file order."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.array(data.labels)
    groups = [np.flatnonzero(labels == name) for name in label_names(data.labels)] if stratify \
        else [np.arange(len(data))]
    val = []
    for idx in groups:
        n_val = int(round(validation_fraction * len(idx)))
        if stratify and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(rng.permutation(idx)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(data)), val_idx)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DataError(f"{data.source}: {len(data)} examples are too few to split "
                        f"with validation_fraction={validation_fraction}")
    return data.subset(train_idx), data.subset(val_idx)


# ----------------------------------------------------------------------------------------------
# Batching


def batch_indices(num_examples: int, batch_size: int, rng: np.random.Generator | None = None,
                  lengths: Sequence[int] | np.ndarray | None = None,
                  group_batches: int = 50) -> list[np.ndarray]:
    """Cut 0..num_examples-1 into batches of `batch_size` (the last one may be smaller).

    rng       shuffle first (a new order each call); without, the order is kept
    lengths   tokens per example: put examples of similar length together, so that a batch,
              padded to its longest row, carries little padding (padding is work for nothing):
              - with rng (training, as transformers' group_by_length): shuffle, cut the order
                into groups of `group_batches` batches, sort each group by length, cut it into
                batches, and shuffle the batches. Each batch is still a random draw, from
                examples of about the same length.
              - without rng (inference): sorted by length, longest first; the caller puts the
                results back in input order (``np.argsort`` of the concatenated batches).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(num_examples) if rng is not None else np.arange(num_examples)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (num_examples,):
            raise ValueError(f"lengths must give one length per example ({num_examples}), got "
                             f"shape {lengths.shape}")
        if rng is None:
            order = np.argsort(-lengths, kind="stable")
        else:
            group = batch_size * group_batches
            order = np.concatenate([
                part[np.argsort(-lengths[part], kind="stable")]
                for part in np.split(order, range(group, num_examples, group))
            ]) if num_examples else order
    batches = [order[i:i + batch_size] for i in range(0, num_examples, batch_size)]
    if lengths is not None and rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def token_lengths(tokenizer: Tokenizer, texts: Sequence[str],
                  text_pairs: Sequence[str] | None = None,
                  max_length: int | None = None) -> np.ndarray:
    """Tokens per text (or pair), [CLS] and [SEP] included, after truncation to `max_length`."""
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text_pairs")
    pairs = text_pairs if text_pairs is not None else [None] * len(texts)
    return np.array([len(tokenizer.encode(a, b, max_length, True))
                     for a, b in zip(texts, pairs, strict=True)], dtype=np.int64)


def _texts_at(data: LabelledData, idx: list[int]) -> tuple[list[str], list[str] | None]:
    texts = [data.texts[i] for i in idx]
    pairs = None if data.text_pairs is None else [data.text_pairs[i] for i in idx]
    return texts, pairs


def classification_batch(tokenizer: Tokenizer, data: LabelledData,
                         indices: Sequence[int] | np.ndarray, label2id: dict[str, int],
                         max_length: int | None = None) -> dict[str, np.ndarray]:
    """Tokenize the examples at `indices` into one padded batch.

    Returns int64 arrays input_ids, token_type_ids, attention_mask (B, T), padded to the
    longest row (T ≤ max_length); labels (B,); num_truncated (B,): tokens cut per row.
    """
    idx = [int(i) for i in indices]
    texts, pairs = _texts_at(data, idx)
    enc = tokenizer.batch_encode(texts, pairs, max_length=max_length, truncation=True,
                                 padding="longest")
    return {
        "input_ids": enc["input_ids"],
        "token_type_ids": enc["token_type_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": encode_labels([data.labels[i] for i in idx], label2id, data.source),
        "num_truncated": np.asarray(enc.num_truncated, dtype=np.int64),
    }


def count_truncated(tokenizer: Tokenizer, data: LabelledData, max_length: int,
                    chunk_size: int = 512) -> int:
    """How many examples have more than `max_length` tokens (and so will be truncated)."""
    n = 0
    for idx in batch_indices(len(data), chunk_size):
        texts, pairs = _texts_at(data, idx.tolist())
        enc = tokenizer.batch_encode(texts, pairs, max_length=max_length, truncation=True)
        n += int((np.asarray(enc.num_truncated) > 0).sum())
    return n


# ----------------------------------------------------------------------------------------------
# Raw text for pre-training


def read_text_corpus(path: str | os.PathLike) -> list[str]:
    """One document (or paragraph) per line; blank and whitespace-only lines are skipped.
    UTF-8 (a byte-order mark is skipped) or UTF-16 with a byte-order mark."""
    path = check_data_file(path, "corpus file")
    lines = [line.strip() for line in _read_text(path).split("\n") if line.strip()]
    if not lines:
        raise DataError(f"{path}: no text (the file is empty or blank)")
    return lines


def hold_out_lines(lines: Sequence[str], fraction: float, seed: int = 0, minimum: int = 1,
                   source: str = "the corpus") -> tuple[list[str], list[str]]:
    """Split a corpus into (training lines, held-out lines), seeded; each part keeps the file
    order. Whole lines (documents) are held out, so no sentence of the held-out text is ever
    trained on. At least `minimum` lines are held out (next-sentence pairs need 2 documents)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_held = max(int(round(fraction * len(lines))), minimum)
    if n_held >= len(lines):
        raise DataError(f"{source}: {len(lines)} lines are too few to hold out {n_held} for "
                        "evaluation and train on the rest; give more text, or a held-out file")
    held = set(np.random.default_rng(seed).permutation(len(lines))[:n_held].tolist())
    return ([line for i, line in enumerate(lines) if i not in held],
            [line for i, line in enumerate(lines) if i in held])


def chunk_corpus(tokenizer: Tokenizer, lines: Iterable[str], max_length: int) -> list[np.ndarray]:
    """Tokenize each line and cut it into pieces of at most `max_length` tokens, each wrapped
    as [CLS] piece [SEP]: a long paragraph becomes several training sequences instead of
    losing everything after the first max_length tokens. Returns int64 arrays of ids."""
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3 ([CLS] + a token + [SEP]), got {max_length}")
    room = max_length - 2
    chunks = []
    for line in lines:
        ids = tokenizer.encode(line, truncation=False).input_ids[1:-1]  # without [CLS]/[SEP]
        for start in range(0, len(ids), room):
            piece = ids[start:start + room]
            chunks.append(np.array([tokenizer.cls_token_id, *piece, tokenizer.sep_token_id],
                                   dtype=np.int64))
    return chunks


# ----------------------------------------------------------------------------------------------
# Masked language modelling


def mask_tokens(input_ids: np.ndarray, special_ids: Iterable[int], mask_token_id: int,
                vocab_size: int,
                rng: np.random.Generator, mlm_probability: float = 0.15
                ) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking for the masked-language-model task.

    input_ids: (B, T) int token ids, padding included. special_ids: the ids never to mask
    ([CLS], [SEP], [PAD], ... — padding is special, so it is never chosen).
    Each ordinary token is chosen with probability `mlm_probability` (15%). A chosen token is
      * replaced by [MASK]           with probability 0.8,
      * replaced by a random token   with probability 0.1 (an ordinary token, never special),
      * kept as it is                with probability 0.1.
    The model must predict the original token at every chosen position, so it cannot just
    copy its input, and it learns a useful vector for every token, not only for [MASK].

    Returns (masked_ids (B, T), labels (B, T)): labels hold the original id where a token was
    chosen and -100 (ignored by the loss) everywhere else. `input_ids` is not modified.
    """
    # BEGIN EXERCISE 7.1: MLM masking. chosen = rng.random(shape) < mlm_probability on non-special
    #   tokens; labels = the original id where chosen, IGNORE_INDEX elsewhere. Draw a second
    #   uniform number per token: < 0.8 -> mask_token_id, 0.8..0.9 -> a random ordinary
    #   (non-special) token, else keep. Set masked (the new ids) and labels, both int64; don't
    #   modify input_ids.
    input_ids = np.asarray(input_ids)
    special = np.isin(input_ids, list(special_ids))
    chosen = (rng.random(input_ids.shape) < mlm_probability) & ~special
    labels = np.where(chosen, input_ids, IGNORE_INDEX)

    action = rng.random(input_ids.shape)  # one draw decides what happens to a chosen token
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)  # the other 10% stay unchanged

    ordinary = np.setdiff1d(np.arange(vocab_size), list(special_ids))
    random_tokens = ordinary[rng.integers(0, len(ordinary), size=input_ids.shape)]
    masked = np.where(to_mask, mask_token_id, input_ids)
    masked = np.where(to_random, random_tokens, masked).astype(np.int64)
    labels = labels.astype(np.int64)
    # END EXERCISE
    return masked, labels


class MLMCollator:
    """Turns a list of token-id sequences into one masked batch for MLM pre-training.

    Owns a seeded generator, so the same seed gives the same masks; its state is part of a
    training checkpoint (``rng.bit_generator.state``).
    """

    def __init__(self, tokenizer: Tokenizer, mlm_probability: float = 0.15,
                 rng: np.random.Generator | int | None = 0):
        self.pad_token_id = tokenizer.pad_token_id
        self.mask_token_id = tokenizer.mask_token_id
        self.vocab_size = tokenizer.vocab_size
        self.special_ids = sorted(set(tokenizer.special_ids) | {tokenizer.pad_token_id})
        self.mlm_probability = mlm_probability
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def __call__(self, sequences: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """-> input_ids (masked), attention_mask, token_type_ids (all 0), labels; (B, T)."""
        input_ids, attention_mask = pad_sequences(sequences, self.pad_token_id)
        masked, labels = mask_tokens(input_ids, self.special_ids, self.mask_token_id,
                                     self.vocab_size, self.rng, self.mlm_probability)
        return {"input_ids": masked, "attention_mask": attention_mask,
                "token_type_ids": np.zeros_like(input_ids), "labels": labels}


# ----------------------------------------------------------------------------------------------
# Next-sentence prediction: sentence pairs cut from a corpus

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """A paragraph -> its sentences, cut after . ! or ? followed by a space (a simple rule: it
    also cuts after abbreviations such as "e.g. ", which is harmless for pre-training)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def next_sentence_pairs(lines: Sequence[str], rng: np.random.Generator | int = 0
                        ) -> list[tuple[str, str, int]]:
    """Sentence pairs for next-sentence prediction, as in BERT: (A, B, label).

    Every line is a document (a paragraph); each sentence A followed by another sentence in its
    document makes one pair. With probability 1/2, B is that next sentence (label 0, "B follows
    A"); otherwise B is a random sentence of another document (label 1, "B is random").
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    documents = [split_sentences(line) for line in lines]
    documents = [d for d in documents if d]
    if len(documents) < 2:
        raise DataError("next-sentence pairs need at least two documents (non-empty lines), "
                        "so that a random B can come from another one")
    pairs = []
    for i, doc in enumerate(documents):
        for a, b in zip(doc, doc[1:], strict=False):
            if rng.random() < 0.5:
                pairs.append((a, b, 0))
                continue
            j = int(rng.integers(len(documents) - 1))
            other = documents[j if j < i else j + 1]  # any document but this one
            pairs.append((a, other[int(rng.integers(len(other)))], 1))
    if not pairs:
        raise DataError("no line holds two sentences: next-sentence pairs need paragraphs")
    return pairs


class NSPCollator:
    """Sentence pairs -> one batch for BertForPreTraining: [CLS] A [SEP] B [SEP] (segments 0
    and 1), masked for MLM as MLMCollator does, and next_sentence_label (B,)."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, mlm_probability: float = 0.15,
                 rng: np.random.Generator | int | None = 0):
        self.tokenizer, self.max_length = tokenizer, max_length
        self.mlm = MLMCollator(tokenizer, mlm_probability, rng)

    def __call__(self, pairs: Sequence[tuple[str, str, int]]) -> dict[str, np.ndarray]:
        encoded = [self.tokenizer.encode(a, b, max_length=self.max_length) for a, b, _ in pairs]
        batch = self.mlm([np.asarray(e.input_ids, dtype=np.int64) for e in encoded])
        segments, _ = pad_sequences([np.asarray(e.token_type_ids, dtype=np.int64)
                                     for e in encoded], 0)
        batch["token_type_ids"] = segments
        batch["next_sentence_label"] = np.array([y for _, _, y in pairs], dtype=np.int64)
        return batch
