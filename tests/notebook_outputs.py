"""The course notebooks are committed with their outputs; this refreshes and checks them.

    .venv/bin/python tests/notebook_outputs.py            re-execute every notebook in place
    .venv/bin/python tests/notebook_outputs.py --check    re-execute into memory and compare
    .venv/bin/python tests/notebook_outputs.py --first-cell   only write the set-up cell

Every notebook's first code cell is notebooks/first_cell.py, word for word (it installs what a
bare Python lacks: Colab, a fresh Jupyter). The refresh writes it into each notebook before
executing it (into a new notebook too: there it is inserted before the first code cell);
`--first-cell` does only that. tests/test_notebooks.py checks that every notebook has it.

(`make notebooks-refresh` runs the first of these.) A learner opening a notebook on the
repository's web page sees its figures and numbers without running anything. The outputs must
stay true, so tests/test_notebooks.py re-executes each notebook and compares its *structure*
with the committed one: per code cell, the kinds of output (text, figure, ...) and the text
with every number masked (and the spaces that align it in a column). A change of numbers alone
(another BLAS, another CPU, a time one digit shorter) passes; a changed word,
a new or missing output or figure fails, and is reviewed like code: run the refresh, look at
`git diff notebooks/` (the text outputs are plain JSON lines), commit the new outputs with the
change that caused them.

Each notebook runs with its own folder as the working directory, as Jupyter runs it, so its
first cell finds the project (or a learner copy) one folder up.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
FIRST_CELL_FILE = NOTEBOOKS_DIR / "first_cell.py"
NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
# a number with the spaces that align it in a column: "   9 s" and "  12 s" are the same line
PADDED_NUMBER = re.compile(r"(?P<before> *)" + NUMBER.pattern + r"(?P<after> *)")


def mask_numbers(text: str) -> str:
    """Every number as '#', and the spaces around it as one: a time of 9 s instead of 12 s
    shifts a column by a space, which is not a change of the output."""
    return PADDED_NUMBER.sub(
        lambda m: (" " if m["before"] else "") + "#" + (" " if m["after"] else ""), text)


def first_cell_source() -> str:
    """The set-up cell every notebook opens with, as a cell holds it (no final newline)."""
    return FIRST_CELL_FILE.read_text(encoding="utf-8").rstrip("\n")


def set_first_cell(nb) -> bool:
    """Make `nb`'s first code cell the set-up cell: replace an older set-up cell (one that
    opens with the same comment line), else insert it before the first code cell.
    Returns whether the notebook changed."""
    import nbformat

    source = first_cell_source()
    marker = source.splitlines()[0]
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if code and nb.cells[code[0]].source == source:
        return False
    if code and nb.cells[code[0]].source.startswith(marker):
        nb.cells[code[0]].source = source
        nb.cells[code[0]].outputs = []
        nb.cells[code[0]].execution_count = None
    else:
        at = code[0] if code else len(nb.cells)
        nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return True


def execute(path: Path, timeout: int = 300, set_first_cell_too: bool = False):
    """Run a notebook top to bottom in its own folder; returns the executed notebook.
    set_first_cell_too: first make its first code cell notebooks/first_cell.py (the refresh).
    Raises nbclient's CellExecutionError (with the cell and traceback) on any error."""
    import nbclient
    import nbformat

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices; the kernel inherits it
    nb = nbformat.read(path, as_version=4)
    if set_first_cell_too:
        set_first_cell(nb)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                     record_timing=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    # No progress bars in the stored outputs: a bar shows only on long work, and how long
    # that is, and how often it redraws, depends on the machine (a learner sees them).
    client.execute(env={**os.environ, "TQDM_DISABLE": "1"})
    nb.metadata.pop("widgets", None)
    return nb


def structure(nb) -> list[list[tuple]]:
    """Per code cell, its outputs as (kind, text with numbers masked) — what a review of an
    output change looks at, without the noise of the last digits or of image bytes."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for o in cell.outputs:
            if o.output_type == "stream":
                # One print can reach the notebook as two stream messages (the kernel flushes on
                # a timer, and a busy machine splits "text" from its "\n"): consecutive pieces
                # of the same stream are one output.
                if outputs and outputs[-1][0] == f"stream:{o.name}":
                    outputs[-1] = (outputs[-1][0], outputs[-1][1] + o.text)
                else:
                    outputs.append((f"stream:{o.name}", o.text))
            elif o.output_type in ("display_data", "execute_result"):
                kinds = ",".join(sorted(o.data))
                outputs.append((f"{o.output_type}:{kinds}",
                                mask_numbers(str(o.data.get("text/plain", "")))))
            else:
                outputs.append((o.output_type, o.get("ename", "")))
        cells.append([(kind, mask_numbers(text)) if kind.startswith("stream:") else (kind, text)
                      for kind, text in outputs])
    return cells


def differences(committed, fresh) -> list[str]:
    """Readable differences between two notebooks' structures ([] when they agree)."""
    a, b = structure(committed), structure(fresh)
    if len(a) != len(b):
        return [f"{len(a)} code cells committed, {len(b)} now"]
    found = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y:
            found.append(f"code cell {i}: committed {x!r}\n  now {y!r}")
    return found


def write(nb, path: Path) -> None:
    import nbformat

    sys.path.insert(0, str(NOTEBOOKS_DIR.parent))
    from minibert.fileio import atomic_write

    text = nbformat.writes(nb) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--first-cell", action="store_true",
                        help="only write notebooks/first_cell.py as each notebook's first cell "
                             "(no execution)")
    parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
    args = parser.parse_args(argv)
    import nbformat

    paths = [NOTEBOOKS_DIR / n for n in args.names] or sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    status = 0
    for path in paths:
        if args.first_cell:
            nb = nbformat.read(path, as_version=4)
            changed = set_first_cell(nb)
            if changed:
                write(nb, path)
            print(f"{path.name}: " + ("set-up cell written (then: make notebooks-refresh)"
                                      if changed else "set-up cell as in first_cell.py"))
            continue
        fresh = execute(path, set_first_cell_too=not args.check)
        if args.check:
            diff = differences(nbformat.read(path, as_version=4), fresh)
            print(f"{path.name}: " + ("outputs as committed" if not diff else
                                       "outputs changed:\n" + "\n".join(diff)))
            status |= bool(diff)
        else:
            write(fresh, path)
            print(f"{path.name}: executed, outputs written (review: git diff {path})")
    return status


if __name__ == "__main__":
    sys.exit(main())
