"""Every public function and method of minibert has complete type hints.

mypy (run by `make test`, configured in pyproject.toml) checks that the hints agree with the
code and that no function is half annotated (disallow_incomplete_defs). This test adds what
mypy cannot be told: that every *public* function and method — a name without a leading
underscore, at module level or in a public class, dunder methods included — annotates every
parameter and its return (``__init__`` may leave out ``-> None``). Private helpers and the
closures inside functions (the ``_backward`` of each op) may stay bare, so the math reads as
math.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minibert"


def public_functions(tree: ast.Module):
    """(qualified name, node) of every public function and method, not those nested in one."""
    def walk(body, prefix, in_class):
        for node in body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                yield from walk(node.body, f"{prefix}{node.name}.", True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                dunder = node.name.startswith("__") and node.name.endswith("__")
                if dunder or not node.name.startswith("_"):
                    yield f"{prefix}{node.name}", node, in_class

    yield from walk(tree.body, "", False)


def missing_hints(node: ast.FunctionDef, in_class: bool) -> list[str]:
    a = node.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                    for d in node.decorator_list)
    if in_class and params and not is_static:
        params = params[1:]  # self / cls
    missing = [p.arg for p in params if p.annotation is None]
    missing += [f"*{v.arg}" for v in (a.vararg, a.kwarg) if v is not None and v.annotation is None]
    if node.returns is None and node.name != "__init__":
        missing.append("return")
    return missing


def test_every_public_function_and_method_has_complete_type_hints():
    incomplete = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, node, in_class in public_functions(tree):
            missing = missing_hints(node, in_class)
            if missing:
                rel = path.relative_to(PACKAGE.parent)
                incomplete.append(f"{rel}:{node.lineno} {name}: {', '.join(missing)}")
    assert not incomplete, (f"{len(incomplete)} public functions without complete type hints:\n"
                            + "\n".join(incomplete))


def test_the_check_sees_what_it_should():
    tree = ast.parse("def f(a, b: int) -> int: ...\n"
                     "def _private(a): ...\n"
                     "class C:\n"
                     "    def __init__(self, x: int): ...\n"
                     "    def m(self, y): ...\n"
                     "    @staticmethod\n"
                     "    def s(z: int): ...\n"
                     "    def __len__(self): ...\n")
    found = {name: missing_hints(node, in_class)
             for name, node, in_class in public_functions(tree)}
    assert found == {"f": ["a"], "C.__init__": [], "C.m": ["y", "return"], "C.s": ["return"],
                     "C.__len__": ["return"]}
