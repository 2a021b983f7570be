"""
Crash-safe file writing, shared by everything in minibert that saves to disk
(weights, training checkpoints, JSON histories, config.json).

The problem: `open(path, "wb")` truncates the file at once. If the program dies half-way
through writing (Ctrl-C, out of memory, power cut), the old file is gone and the new one
is half-written. For a checkpoint that took hours to train, that is a disaster.

The fix is the classic "write a temp file, then rename" recipe:
  1. write everything to a temporary file in the SAME directory as the target,
  2. flush Python's buffer and fsync, so the bytes are really on the disk,
  3. os.replace(temp, target): a rename within one file system is atomic, so any reader
     sees either the complete old file or the complete new file, never a mix.
If anything fails before step 3, we delete the temp file and the target is untouched.
(The temp file must be in the same directory: a rename across file systems is a copy,
and copies are not atomic.)

A symbolic link where a file is to be written is refused (SymlinkError), never written
through nor replaced: it may point anywhere (another run's checkpoint, a file of the user's),
and a link is nothing this code wrote.

It also has `parse_json`, the one JSON reader for files this code did not write itself
(config.json, a safetensors header, latest.json): hostile JSON must end in a clear error,
never in a RecursionError or a traceback.

Only the standard library is used.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from typing import IO, Any


class SymlinkError(OSError):
    """A write would go through (or replace) a symbolic link; nothing was written."""


def refuse_symlink(path: str | os.PathLike[str], what: str = "") -> None:
    """Raise SymlinkError if `path` itself is a symbolic link (dangling or not)."""
    if os.path.islink(path):
        raise SymlinkError(f"{path} is a symbolic link{what}; minibert never writes through a "
                           "link nor replaces one it did not write: remove it (or choose "
                           "another folder) and run again")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb",
                encoding: str | None = None) -> Iterator[IO[Any]]:
    """
    Open `path` for writing so that it is replaced all at once, or not at all.

    in:  path  - str or os.PathLike, the file to (re)write
         mode  - "wb" for bytes or "w" for text (nothing else: appending or reading
                 make no sense for a file that is replaced whole)
         encoding - text mode only; defaults to "utf-8" (not the locale's, so files
                 written on one machine read the same on another)
    A `path` that is a symbolic link is a SymlinkError, before anything is written.
    out: yields a file object; when the `with` block ends normally the target holds
         exactly what was written. If the block raises (any exception, even
         KeyboardInterrupt), the temp file is removed, the target is left as it
         was, and the exception propagates.

        with atomic_open("history.json", "w") as f:
            json.dump(history, f)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    path = os.fspath(path)
    refuse_symlink(path)
    directory, name = os.path.split(os.path.abspath(path))
    # A hidden, random name next to the target. O_EXCL makes creation fail rather than
    # reuse an existing file; 0o666 lets the umask give the usual permissions (tempfile's
    # mkstemp would create it 0o600, and the target would silently become private).
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()  # Python's buffer -> the OS
            os.fsync(f.fileno())  # the OS's cache -> the disk
        os.replace(tmp, path)  # the atomic step
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def atomic_write(path: str | os.PathLike[str], write_fn: Callable[[IO[Any]], object],
                 mode: str = "wb", encoding: str | None = None) -> None:
    """
    Call `write_fn(f)` on a file opened with atomic_open(path, mode, encoding).

    in:  write_fn - a function that writes the whole content to the file object it is given
    out: None; `path` holds the new content, or (if write_fn raised) its old content.

        atomic_write("weights.bin", lambda f: f.write(data))
        atomic_write("config.json", lambda f: json.dump(cfg, f, indent=2), mode="w")
    """
    with atomic_open(path, mode, encoding) as f:
        write_fn(f)


def _fsync_directory(directory):
    """Make the rename itself durable: on POSIX the directory entry lives in the directory."""
    if os.name != "posix":
        return  # Windows cannot open a directory; its rename is durable enough for us
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (network mounts, some containers) refuse; not fatal
    finally:
        os.close(fd)


def parse_json(data: str | bytes, where: object, error: type[Exception] = ValueError,
               unique_keys: bool = False) -> Any:
    """
    Parse JSON text from a file, turning every way it can fail into one clear error.

    in:  data  - the file's contents, str or UTF-8 bytes
         where - what to name in the message (the file's path)
         error - the exception class to raise (each caller has its own: SafetensorsError, ...)
         unique_keys - refuse an object with a key twice (json.loads keeps the last one)
    out: the parsed value (any JSON type: the caller checks it is what it expects)
    Raises `error` for invalid UTF-8, invalid JSON, nesting too deep for Python's recursion
    (json.loads raises RecursionError at a few thousand levels) and integers with more
    digits than Python converts (ValueError, over 4300 digits).
    """
    try:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        return json.loads(data, object_pairs_hook=_no_duplicate_keys if unique_keys else None)
    except UnicodeDecodeError as e:
        raise error(f"{where}: not valid UTF-8 (byte {e.start}: {e.reason})") from None
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e})") from None
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply; corrupt file?") from None
    except ValueError as e:  # e.g. an integer with thousands of digits, a duplicate key
        raise error(f"{where}: not valid JSON ({e})") from None


def short_repr(value: object, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: a value read from a hostile file (a header, a
    config, a data row) must not turn into a megabyte error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _no_duplicate_keys(pairs):
    """json hook: {"a": 1, "a": 2} is an error, not silently {"a": 2}."""
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d
