"""Small datasets shipped inside the minibert package.

Currently there is one: ``support_tickets``, a hand-written, 4-class set of
customer-support tickets for a fictional company (see
``support_tickets/README.md``). It is tiny on purpose, so that fine-tuning a
BERT on it finishes in a few minutes on a laptop CPU.

Files are plain UTF-8 TSV with a ``text\\tlabel`` header:

- ``train.tsv`` / ``test.tsv`` — a fixed, stratified 80/20 split;
- ``new_tickets.tsv`` — 12 extra tickets, in neither split, for demos.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["support_tickets_dir"]


def support_tickets_dir() -> Path:
    """Return the folder holding ``train.tsv``, ``test.tsv`` and ``new_tickets.tsv``."""
    return Path(__file__).resolve().parent / "support_tickets"
