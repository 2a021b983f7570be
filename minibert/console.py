"""What a run writes for people to read: results on stdout; notes, warnings and progress on stderr.

    result(line)      a result (an epoch's metrics, a prediction): stdout, so `> file` keeps it
    note(line)        a remark on how the run goes ("note: 3 texts were truncated"): stderr
    progress_bar(n)   a tqdm bar on stderr, only where a person watches it

A progress bar redraws itself with carriage returns, which is right in a terminal and noise in a
file: piped to a file or a CI log, bars are off. The rules, in order:

    enabled=False (the --no-progress switch, TrainConfig(progress=False))   off
    TQDM_DISABLE set to anything but "" / "0" / "false"                      off
    inside a Jupyter notebook                                                on
    stderr is a terminal                                                     on, else off

Lines written while a bar is showing go through tqdm.write, so they do not tear the bar.
"""

from __future__ import annotations

import os
import sys


def progress_wanted(enabled: bool = True, stream=None) -> bool:
    """Whether to draw a progress bar on `stream` (default: stderr); the rules above."""
    if not enabled:
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


def progress_bar(total: int, desc: str, enabled: bool = True):
    """A tqdm bar on stderr for `total` steps; a silent stand-in when `progress_wanted` is
    False (it accepts the same calls: update, set_postfix, close)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not progress_wanted(enabled), leave=False,
                unit="step", file=sys.stderr)


def result(line: str) -> None:
    """A result for the user, on stdout (without tearing a progress bar on stderr)."""
    _write(line, sys.stdout)


def note(line: str) -> None:
    """A remark on the run, on stderr (without tearing a progress bar)."""
    _write(line, sys.stderr)


def _write(line: str, stream) -> None:
    try:
        from tqdm import tqdm

        tqdm.write(line, file=stream)
    except ImportError:  # tqdm is a dependency, but a message must never crash a run
        print(line, file=stream)
