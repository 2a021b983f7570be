"""Sanity checks for the embedded support-tickets dataset."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from minibert.datasets import support_tickets_dir

LABELS = {"Billing Issue", "Technical Support", "Account Question", "Shipping & Delivery"}
FILES = ("train", "test", "new_tickets")


def _load(name: str) -> list[list[str]]:
    path = support_tickets_dir() / f"{name}.tsv"
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def data() -> dict[str, list[tuple[str, str]]]:
    out = {}
    for name in FILES:
        rows = _load(name)
        assert rows[0] == ["text", "label"], f"{name}.tsv header"
        assert all(len(r) == 2 for r in rows[1:]), f"{name}.tsv: every row has 2 fields"
        out[name] = [(r[0], r[1]) for r in rows[1:]]
    return out


def test_dir_exists():
    d = support_tickets_dir()
    assert d.is_dir()
    for name in FILES:
        assert (d / f"{name}.tsv").is_file()
    assert (d / "README.md").is_file()


def test_labels_are_the_four_classes(data):
    for name, rows in data.items():
        assert {label for _, label in rows} == LABELS, name


def test_at_least_170_per_class(data):
    counts = Counter(label for _, label in data["train"] + data["test"])
    for label in LABELS:
        assert counts[label] >= 170, (label, counts[label])


def test_split_is_80_20_per_class(data):
    train = Counter(label for _, label in data["train"])
    test = Counter(label for _, label in data["test"])
    for label in LABELS:
        total = train[label] + test[label]
        assert abs(test[label] - 0.2 * total) <= 1, (label, train[label], test[label])
        assert abs(train[label] - 0.8 * total) <= 1, (label, train[label], test[label])


def test_new_tickets_three_per_class(data):
    counts = Counter(label for _, label in data["new_tickets"])
    assert counts == {label: 3 for label in LABELS}


def test_no_duplicates_within_or_across_files(data):
    seen: dict[str, str] = {}
    for name, rows in data.items():
        for text, _ in rows:
            key = " ".join(text.lower().split())
            assert key not in seen, f"duplicate in {name} (first seen in {seen.get(key)}): {text!r}"
            seen[key] = name


def test_texts_are_clean_and_short(data):
    for name, rows in data.items():
        for text, _ in rows:
            assert text.strip(), f"empty text in {name}"
            assert not any(c in text for c in '\t\n\r"'), text
            assert len(text.split()) <= 80, text
