"""Small datasets shipped inside the minibert package.

Two hand-written sets about the same fictional company, tiny on purpose, so that fine-tuning a
BERT on them finishes in minutes on a laptop CPU:

- ``support_tickets`` (one label per text): 4-class customer-support tickets, plain UTF-8 TSV
  with a ``text\\tlabel`` header; ``train.tsv`` / ``test.tsv`` a fixed, stratified 80/20 split,
  ``new_tickets.tsv`` 12 extra tickets, in neither split, for demos. See its README.md.
- ``ticket_entities`` (one label per word): sentences of support messages with their product
  names, order numbers, dates and amounts tagged in BIO, CoNLL format; ``train.conll`` /
  ``test.conll``. See its README.md.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["support_tickets_dir", "ticket_entities_dir"]


def support_tickets_dir() -> Path:
    """Return the folder holding ``train.tsv``, ``test.tsv`` and ``new_tickets.tsv``."""
    return Path(__file__).resolve().parent / "support_tickets"


def ticket_entities_dir() -> Path:
    """Return the folder holding ``train.conll`` and ``test.conll`` (entities, BIO tags)."""
    return Path(__file__).resolve().parent / "ticket_entities"
