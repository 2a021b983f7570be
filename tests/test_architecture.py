"""The import graph of the package runs one way: no module imports from a layer above its own,
and there is no cycle.

Every module of minibert/ is read with `ast` (not imported): each `import` and `from ... import`
counts, at module level and inside functions alike (an import inside a function is still a
dependency, only a later one). LAYERS below is the declared order, lowest first; a new module
must be given a layer here.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minibert"

# Lowest first. A module may import from its own layer (without a cycle) and from any below.
LAYERS = [
    # text, arrays and files: nothing of the package below them but each other
    {"tokenizer", "wordpiece_trainer", "backend", "parallel", "process_settings", "fileio",
     "safetensors_io", "datasets", "version", "console"},
    {"autograd"},  # Tensor and reverse-mode autodiff
    {"functional", "gradcheck"},  # neural-network ops; checking a backward numerically
    {"nn"},  # Module and layers
    {"config"},  # BertConfig: the fields of config.json
    # config.json + model.safetensors <-> a model; below model.py, whose from_pretrained and
    # save_pretrained call it (as transformers' modeling_utils sits below modeling_bert)
    {"checkpoint"},
    {"model"},  # BERT and its heads
    # training: data, optimizers, a training run's saved state, evaluation and its metrics
    {"data", "token_data", "optim", "metrics", "evaluation", "run_state", "train"},
    {"pipeline", "sentence"},  # using a trained model: inference, sentence embeddings
    # the course tools (minibert/course/): plots, the demo, quizzes, exercises, explain
    # (course.sandbox and course.grade_plugin run as scripts beside the grader, and
    # course.outcome_log as a pytest plugin for exercises verify: stdlib only)
    {"course", "course.viz", "course.sandbox", "course.grade_plugin", "course.outcome_log"},
    {"course.demo", "course.autograd_demo", "course.exercises", "course.progress", "course.quiz",
     "course.explain"},
    {"cli"},  # the command line: the framework's commands and the course's
    {"__init__", "__main__"},  # the package's public names; `python -m minibert`
]


def module_name(path: Path) -> str:
    """minibert/model.py -> "model"; minibert/datasets/__init__.py -> "datasets"."""
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """The package modules that `source` (the text of `module`) imports, anywhere in it.

    Relative imports are resolved against `module` (`is_package`: it is a package's
    __init__.py). `from . import functional` names the module functional, `from .autograd
    import Tensor` names autograd; absolute imports of `minibert.x` count too.
    """
    here = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":  # the package's own __init__.py: "." is minibert itself
        here = []
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.removeprefix("minibert.") for a in node.names
                      if a.name.startswith("minibert.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and (node.module or "").split(".")[0] != "minibert":
                continue  # numpy, the standard library, ...
            if node.level == 0:
                base = node.module.split(".")[1:]
            else:
                base = here[: len(here) - (node.level - 1)]
                base += node.module.split(".") if node.module else []
            if node.module and base:
                found.add(".".join(base))
            else:  # from . import a, b  /  from minibert import a, b
                found |= {".".join([*base, a.name]) for a in node.names}
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    """{module: the package modules it imports} for every module of minibert/.

    An import of a name inside a module (from .datasets.x import y) counts as one of the
    module (datasets.x, or datasets when that is where the file ends)."""
    files = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}

    def known(name):
        while name not in files and "." in name:
            name = name.rsplit(".", 1)[0]
        # `from . import no_grad` takes a name from the package itself: its __init__.py
        return name if name in files else "__init__"

    return {m: {known(d) for d in imports_of(p.read_text(encoding="utf-8"), m,
                                              p.name == "__init__.py")} - {m}
            for m, p in files.items()}


def layer_of(layers: list[set[str]]) -> dict[str, int]:
    return {m: i for i, layer in enumerate(layers) for m in layer}


def upward_imports(graph: dict[str, set[str]], layers: list[set[str]]) -> list[str]:
    """Every import from a higher layer, as "a (layer i) imports b (layer j)"."""
    level = layer_of(layers)
    return [f"{m} (layer {level[m]}) imports {dep} (layer {level[dep]})"
            for m, deps in sorted(graph.items()) for dep in sorted(deps)
            if dep in level and m in level and level[dep] > level[m]]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, str] = {}  # "visiting" while on the current path, then "done"

    def visit(m, path):
        state[m] = "visiting"
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == "visiting":
                return [*path[path.index(dep):], dep]
            if dep not in state:
                cycle = visit(dep, [*path, dep])
                if cycle:
                    return cycle
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m, [m])
            if cycle:
                return cycle
    return None


# ----------------------------------------------------------------------------------------------
# The package


def test_every_module_has_a_declared_layer():
    declared = set(layer_of(LAYERS))
    modules = set(import_graph())
    assert not modules - declared, f"give these modules a layer in LAYERS: {modules - declared}"
    assert not declared - modules, f"LAYERS names modules that do not exist: {declared - modules}"
    assert sum(len(layer) for layer in LAYERS) == len(declared), "a module is in two layers"


def test_no_module_imports_from_a_higher_layer():
    assert upward_imports(import_graph(), LAYERS) == []


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


def test_the_package_imports_itself_relatively():
    absolute = [f"{p.relative_to(PACKAGE)}:{node.lineno}"
                for p in sorted(PACKAGE.rglob("*.py"))
                for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.level == 0
                and (node.module or "").split(".")[0] == "minibert"
                or isinstance(node, ast.Import)
                and any(a.name.split(".")[0] == "minibert" for a in node.names)]
    assert absolute == [], "use relative imports (from .x import y) inside the package"


# ----------------------------------------------------------------------------------------------
# The checker itself: it must see what it is meant to catch


def test_imports_are_found_at_module_level_and_inside_functions():
    source = (
        "from __future__ import annotations\n"
        "import numpy as np\n"
        "from . import functional as F\n"
        "from .autograd import Tensor\n"
        "import minibert.backend\n"
        "def load():\n"
        "    from .checkpoint import load_pretrained\n"
        "    return load_pretrained\n"
        "class A:\n"
        "    def f(self):\n"
        "        from minibert import data\n"
    )
    assert imports_of(source, "nn") == {"functional", "autograd", "backend", "checkpoint", "data"}
    assert imports_of("from ..backend import xp\nfrom . import x\n", "datasets.sub") == {
        "backend", "datasets.x"}
    assert imports_of("from . import x\nfrom .y import z\n", "datasets", is_package=True) == {
        "datasets.x", "datasets.y"}


def test_an_upward_import_is_caught_even_inside_a_function():
    source = "from .autograd import Tensor\ndef f():\n    from .model import BertModel\n"
    graph = dict(import_graph(), nn=imports_of(source, "nn"))
    assert upward_imports(graph, LAYERS) == ["nn (layer 3) imports model (layer 6)"]


def test_a_cycle_is_caught_even_within_one_layer():
    graph = dict(import_graph())
    assert find_cycle(graph) is None
    graph["data"] = graph["data"] | {"train"}  # train imports data: now data imports train
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and {"data", "train"} <= set(cycle)
    assert upward_imports(graph, LAYERS) == []  # the same layer: only the cycle check sees it


@pytest.mark.parametrize("module", ["model", "functional", "train"])
def test_each_real_module_is_read(module):
    assert import_graph()[module], f"{module} imports nothing from the package?"
