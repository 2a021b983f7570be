"""Shared test fixtures.

`backend_name` runs a test once per array backend: NumPy always, CuPy only where CuPy is
installed and sees a GPU (otherwise the case is skipped with a reason that says so).
"""

from pathlib import Path

import numpy as np
import pytest

import minibert
from minibert import backend

_HAS_CUPY = backend.cupy_available()
BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=pytest.mark.skipif(
            not _HAS_CUPY, reason="CuPy backend: CuPy is not installed or sees no GPU here"
        ),
    ),
]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    """Make the parametrised backend active for one test, then restore the previous one."""
    previous = backend.get_backend()
    backend.use_backend(request.param)
    minibert.manual_seed(0)
    yield request.param
    backend.use_backend(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repository (CI clones with shared/ beside it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


# -- learner exercises: `pytest --exercise 6.2` runs only the tests tagged with that exercise --


def pytest_addoption(parser):
    parser.addoption(
        "--exercise",
        default=None,
        metavar="ID",
        help="run only the tests of learner exercise ID (e.g. 6.2), or 'all' for every one",
    )


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--exercise")
    if not wanted:
        return
    selected, deselected = [], []
    for item in items:
        tags = {m.args[0] for m in item.iter_markers("exercise") if m.args}
        (selected if tags and (wanted == "all" or wanted in tags) else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected
