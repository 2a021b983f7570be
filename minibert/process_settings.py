"""Process-wide settings that `import minibert` makes: they change the whole Python process,
not just minibert, so they are all here, each with its way to turn it off.

- OPENBLAS_THREAD_TIMEOUT=1 (an environment variable, set unless you set it yourself; it must
  be set before NumPy is first imported, which is why minibert/__init__.py imports this module
  first). OpenBLAS's worker threads spin for ~0.1 s after each matmul, waiting for the next
  one, and so hold a core that minibert's elementwise blocks (parallel.py) want next; asked to
  sleep at once, MiniLM 32 x 128 on 2 cores ran ~10 % faster. Set OPENBLAS_THREAD_TIMEOUT to
  any value yourself to keep yours. If your script imports NumPy before minibert, OpenBLAS has
  read it already: set it yourself.
- glibc's malloc keeps freed memory for the next arrays (`keep_freed_memory`, below): ~10 % of
  a small model's training step. MINIBERT_KEEP_FREED_MEMORY=0 turns it off.

Importing this module sets OPENBLAS_THREAD_TIMEOUT (minibert/__init__.py imports it before
anything else, so before NumPy); `import minibert` then calls `keep_freed_memory()` at its end,
where a bad MINIBERT_KEEP_FREED_MEMORY is reported as one clear error. Nothing else in minibert
changes process-wide state (parallel.py's threads are a pool of its own).
"""

from __future__ import annotations

import ctypes
import os


def set_openblas_thread_timeout() -> bool:
    """OPENBLAS_THREAD_TIMEOUT=1 unless it is set already. Returns whether this set it."""
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return False
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "1"
    return True


def keep_freed_memory() -> bool:
    """Ask the C library's malloc to keep freed memory for the next arrays (Linux, glibc).

    NumPy takes each array's memory from malloc. glibc hands a freed block of more than
    ~128 KB straight back to the system, so the next large array is made of fresh pages, and
    the kernel stops the program at the first touch of every 4 KB page to give it a zeroed
    one: ~29,000 stops and ~10 % of the time in a training step of a 4-layer BERT (L4/H256,
    32 x 128). Told to keep freed blocks of up to 32 MB, malloc reuses them: the peak memory
    is the same (measured), but the process keeps what it has reached until it exits.
    `import minibert` calls this; MINIBERT_KEEP_FREED_MEMORY=0 turns it off.
    Returns whether the setting took (not on macOS or Windows, whose malloc has no such switch).
    """
    setting = os.environ.get("MINIBERT_KEEP_FREED_MEMORY", "").strip() or "1"
    if setting not in ("0", "1"):
        raise ValueError(f"MINIBERT_KEEP_FREED_MEMORY={setting!r}: use 1 (keep freed memory "
                         "for reuse, the default) or 0 (leave malloc as it is)")
    if setting == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this Python runs on
    except (OSError, AttributeError, TypeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)  # up to 32 MB: from the heap, reusable
                and mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1))  # never shrink the heap back


set_openblas_thread_timeout()  # on import: before NumPy is (see the module docstring)
