"""What a run writes for people to read: results on stdout; notes, warnings and progress on stderr.

    result(line)      a result (an epoch's metrics, a prediction): stdout, so `> file` keeps it
    note(line)        a remark on how the run goes ("note: 3 texts were truncated"): logged
    warn(line)        a remark that asks for attention ("resuming although the data differ")
    progress_bar(n)   a tqdm bar on stderr, only where a person watches it

Notes and warnings go through Python's `logging`, to the logger named "minibert" (as
transformers logs to "transformers"): its default handler prints each message on stderr, and
`set_verbosity` chooses how much is said:

    set_verbosity("info")      notes, warnings and progress bars (the default)
    set_verbosity("warning")   warnings only, no progress bars (the command line's -q/--quiet)
    set_verbosity("error")     nothing but errors (not even the results of `result`)

To send minibert's messages to your own handlers instead, remove the default one and let the
records propagate: `log = logging.getLogger("minibert"); log.handlers.clear();
log.propagate = True`.

A progress bar redraws itself with carriage returns, which is right in a terminal and noise in a
file: piped to a file or a CI log, bars are off. The rules, in order:

    enabled=False (the --no-progress switch, TrainConfig(progress=False))   off
    verbosity above "info" (set_verbosity("warning"), the CLI's -q)          off
    TQDM_DISABLE set to anything but "" / "0" / "false"                      off
    inside a Jupyter notebook                                                on
    stderr is a terminal                                                     on, else off

Lines written while a bar is showing go through tqdm.write, so they do not tear the bar.

Text that comes from a model folder or from the user (class names, tokens, texts, file names in
an error) is shown through ``printable``: a control character in it is written as an escape
(``\x1b``), so no such text can clear the screen, retitle the window, move the cursor or
reorder what follows (bidi overrides).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, Any

logger = logging.getLogger("minibert")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def _escapes(keep: str) -> dict[int, str]:
    """str.translate table: each terminal-controlling code point -> its Python escape."""
    controls = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0),  # C0, DEL, C1 (ESC, CSI, OSC, ...)
                0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),  # bidi
                0x2028, 0x2029]  # line and paragraph separators
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    return {cp: named.get(cp, f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}")
            for cp in controls if chr(cp) not in keep}


_ESCAPES = _escapes(keep="")
_ESCAPES_KEEP_LINES = _escapes(keep="\n")


def printable(text: object, keep_newlines: bool = False) -> str:
    """`text` (anything: str() of it) safe to show on a terminal: every control character
    (C0 and C1, DEL, bidi overrides and isolates, line separators) written as its escape,
    '\x1b[2J' -> '\\x1b[2J'. Other characters, accents and CJK included, are left alone.
    keep_newlines: a message of several lines keeps its line breaks (but not '\r')."""
    return str(text).translate(_ESCAPES_KEEP_LINES if keep_newlines else _ESCAPES)


# In JSON text a character may always be written as \uXXXX: the same string to a reader, and
# nothing a terminal obeys (json.dumps escapes C0 itself, but not C1, DEL or bidi controls).
_JSON_ESCAPES = {cp: f"\\u{cp:04x}" for cp in _ESCAPES}


def printable_json(text: str) -> str:
    """JSON text (json.dumps's output) with every terminal control written as a \\u escape:
    still the same JSON, and safe to print."""
    return text.translate(_JSON_ESCAPES)


class _StderrHandler(logging.Handler):
    """minibert's default handler: the bare message on stderr (looked up at each message, so
    that a redirected or captured stderr gets it), written without tearing a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write(printable(self.format(record), keep_newlines=True), sys.stderr)
        except Exception:  # logging's rule: a failing handler reports, never raises
            self.handleError(record)


logger.addHandler(_StderrHandler())
logger.setLevel(logging.INFO)
logger.propagate = False  # printed once, by the handler above, not again by the root logger's


def set_verbosity(level: int | str) -> None:
    """How much minibert says: "debug", "info" (default), "warning" or "error" (or a logging
    level such as logging.WARNING). Above "info", progress bars are off too."""
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            raise ValueError(f"unknown verbosity {level!r}; choose one of {list(LEVELS)}")
        level = LEVELS[level.lower()]
    logger.setLevel(level)


def get_verbosity() -> int:
    """The level minibert's logger passes on (logging.INFO by default)."""
    return logger.getEffectiveLevel()


def progress_wanted(enabled: bool = True, stream: IO[str] | None = None) -> bool:
    """Whether to draw a progress bar on `stream` (default: stderr); the rules above."""
    if not enabled or not logger.isEnabledFor(logging.INFO):
        return False
    if os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false"):
        return False
    if in_notebook():
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def in_notebook() -> bool:
    """True inside a Jupyter kernel (its output area renders a redrawn bar as one line)."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    return get_ipython is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell"


# Inference (evaluate, predict, encode) shows its bar only on long work: after this many
# seconds, so a quick call prints nothing at all.
LONG_WORK_S = 1.0


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "step",
                 delay: float = 0.0) -> Any:
    """A tqdm bar on stderr for `total` steps (counted in `unit`s), drawn once `delay`
    seconds have passed; a silent stand-in when `progress_wanted` is False (it accepts the
    same calls: update, set_postfix, close, and `with`)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not progress_wanted(enabled), leave=False,
                unit=unit, file=sys.stderr, delay=delay)


def result(line: str) -> None:
    """A result for the user, on stdout (without tearing a progress bar on stderr); control
    characters in it are shown escaped (``printable``). Only set_verbosity("error") silences it."""
    if logger.isEnabledFor(logging.WARNING):
        _write(printable(line, keep_newlines=True), sys.stdout)


def note(line: str) -> None:
    """A remark on the run: logged at level INFO (printed on stderr unless quiet, control
    characters escaped by the default handler)."""
    logger.info(line)


def warn(line: str) -> None:
    """A remark that asks for attention: logged at level WARNING (printed even when quiet)."""
    logger.warning(line)


def _write(line: str, stream: IO[str]) -> None:
    try:
        from tqdm import tqdm

        tqdm.write(line, file=stream)
    except ImportError:  # tqdm is a dependency, but a message must never crash a run
        print(line, file=stream)
