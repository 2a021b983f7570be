"""Shared test fixtures.

`backend_name` runs a test once per array backend:
- "numpy" always;
- "cupy" only where CuPy is installed and sees a GPU (otherwise skipped, with a reason);
- "cupy-sim" where there is no real GPU: the same code path on `tests/cupy_sim.py`, a strict
  stand-in for CuPy that fails on host/device mix-ups (see its docstring for what it cannot see).

`pytest --cupy` runs the whole suite with CuPy as the active backend (as MINIBERT_BACKEND=cupy
does): the real CuPy where there is a GPU, else the simulated one. `make test` runs the suite
twice, without and with `--cupy`.
"""

import contextlib
import os
import signal
import sys
from pathlib import Path

# The tests check the minibert of the project they belong to: in a learner copy (`minibert
# exercises build DIR`) that is the learner's own code, however pytest was started.
_PROJECT = str(Path(__file__).resolve().parents[1])
if _PROJECT not in sys.path[:1]:
    sys.path.insert(0, _PROJECT)

# A shell starts a background job (`make test &`, a CI runner without a terminal) with Ctrl-C
# ignored, and the processes the tests start would inherit that: Python then never raises
# KeyboardInterrupt, and the tests that stop a command with SIGINT hang. Catching it here (the
# default handler) means a started program gets SIGINT's default again, as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cupy_sim  # noqa: E402
import minibert  # noqa: E402
from minibert import backend  # noqa: E402

# A real CuPy on a real GPU (not the simulation, which processes started by `pytest --cupy`
# on a machine without a GPU find in place of cupy from their first line on)
_HAS_CUPY = not cupy_sim.is_installed() and backend.cupy_available()
BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param(
        "cupy",
        id="cupy",
        marks=pytest.mark.skipif(
            not _HAS_CUPY, reason="CuPy backend: CuPy is not installed or sees no GPU here"
        ),
    ),
    pytest.param(
        "cupy-sim",
        id="cupy-sim",
        marks=pytest.mark.skipif(_HAS_CUPY, reason="a real GPU is here: the 'cupy' case runs"),
    ),
]

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@contextlib.contextmanager
def _backend_case(case: str, active: str):
    """Run with `active` as the backend; the "cupy-sim" case first puts the simulated CuPy
    where `import cupy` looks. Afterwards the previous backend (and cupy) come back."""
    previous = backend.get_backend()
    simulated = case == "cupy-sim"
    if simulated:
        cupy_sim.install()
    try:
        backend.use_backend(active)
        yield
    finally:
        if simulated:
            cupy_sim.uninstall()
        backend.use_backend(previous)


@pytest.fixture(params=BACKENDS[1:])
def gpu(request):
    """For tests that move between devices themselves: they start on NumPy, and
    `use_backend("cupy")` / `model.to("gpu")` then give the real CuPy, or the simulated one
    where there is no GPU. The previous backend is restored afterwards."""
    with _backend_case(request.param, "numpy"):
        yield request.param


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    """Make the parametrised backend active for one test, then restore the previous one."""
    with _backend_case(request.param, "numpy" if request.param == "numpy" else "cupy"):
        minibert.manual_seed(0)
        yield request.param


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
        "--cupy",
        action="store_true",
        help="run the whole suite with CuPy as the active backend: the real CuPy where a GPU is, "
             "else the simulated one (tests/cupy_sim.py)",
    )
    parser.addoption(
        "--exercise",
        default=None,
        metavar="ID",
        help="run only the tests of learner exercise ID (e.g. 6.2), of several (6.1,6.2), or "
             "'all' for every one",
    )


def pytest_configure(config):
    if not config.getoption("--cupy"):
        return
    # The processes the tests start (lessons, notebook kernels, exercise checks) inherit both.
    os.environ["MINIBERT_BACKEND"] = "cupy"
    if not _HAS_CUPY:
        cupy_sim.install()
        site = str(Path(__file__).parent / "simulated_gpu")  # its sitecustomize installs the sim
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (site, os.environ.get("PYTHONPATH")) if p)
    backend.use_backend("cupy")


def pytest_report_header(config):
    if config.getoption("--cupy"):
        kind = "CuPy on the GPU" if _HAS_CUPY else "the simulated CuPy of tests/cupy_sim.py"
        return f"minibert: active backend for the whole suite: {kind}"


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--exercise")
    if not wanted:
        return
    wanted = set(wanted.split(","))
    selected, deselected = [], []
    for item in items:
        tags = {m.args[0] for m in item.iter_markers("exercise") if m.args}
        (selected if tags and ("all" in wanted or tags & wanted) else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected


@pytest.fixture(scope="session")
def minibert_wheel(tmp_path_factory):
    """(the wheel `pip wheel` builds from this checkout, pip's stderr), built once a session.

    Only what a source distribution holds is copied (pyproject.toml, README, LICENSE and the
    package), so the wheel is what `pip install minibert-numpy` users get."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "minibert", src / "minibert",
                    ignore=shutil.ignore_patterns("__pycache__"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    if run.returncode and "No matching distribution found for setuptools" in run.stderr:
        pytest.skip("building a wheel needs setuptools>=77 from the package index")
    assert run.returncode == 0, run.stderr
    [wheel] = (tmp / "dist").glob("minibert_numpy-*.whl")
    return wheel, run.stderr
