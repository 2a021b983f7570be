"""Learner exercises cut out of the real source.

The pieces a learner should write themselves are marked in the package source:

    def _backward():
        # BEGIN EXERCISE 6.2: the backward of mul. d(a*b)/da = b ... (what to do, and a hint)
        accum_grad(self, unbroadcast(out.grad * other.data, self.shape))
        ...
        # END EXERCISE

and the tests that check each piece carry ``@pytest.mark.exercise("6.2")``.

- ``minibert exercises build DIR`` writes a learner copy of the project in which every region is
  replaced by ``raise NotImplementedError("Exercise 6.2: <what to do, and a hint>")``.
- ``minibert exercises check 6.2`` runs that exercise's tests (``pytest --exercise 6.2``).
- ``minibert exercises verify`` proves the exercises are sound and in order: for each one, its
  tests fail with its region stubbed and pass with the solution, while every later exercise is
  stubbed (so each exercise needs only earlier ones).
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN EXERCISE (?P<id>\d+\.\d+): (?P<hint>.+?)\s*$")
END = re.compile(r"^[ \t]*# END EXERCISE\s*$")

# What a learner copy contains (the rest of a checkout is tooling or build output).
PROJECT_PARTS = ("minibert", "tests", "lessons", "notebooks", "exercises", "pyproject.toml",
                 "README.md", "Makefile")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", "out")


class ExerciseError(ValueError):
    """A malformed exercise region, an unknown exercise id, or a failed soundness check."""


def course_order(exercise_id: str) -> tuple[int, ...]:
    """The sort key that puts exercise ids in course order: "2.1" before "10.1"."""
    return tuple(int(p) for p in exercise_id.split("."))


@dataclass(frozen=True)
class Exercise:
    id: str
    hint: str
    path: Path  # relative to the project root
    begin: int  # 0-based line numbers of the BEGIN and END markers
    end: int


def project_root(start: Path | None = None) -> Path:
    """The folder holding pyproject.toml and minibert/ (the current one, or above it)."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "minibert").is_dir():
            return d
    # Fall back to the checkout this module was imported from.
    return Path(__file__).resolve().parents[2]


HINT_MORE = re.compile(r"^[ \t]*#   (?P<more>.+?)\s*$")  # a hint continues on "#   ..." lines


@dataclass(frozen=True)
class _Region:
    id: str
    hint: str
    indent: str
    begin: int  # 0-based line of BEGIN
    end: int  # 0-based line of END


def _regions(text: str, where: str) -> list[_Region]:
    """The marked regions of one source file, checking that markers pair up."""
    lines = text.splitlines()
    regions, i = [], 0
    while i < len(lines):
        m = BEGIN.match(lines[i])
        if END.match(lines[i]):
            raise ExerciseError(f"{where}:{i + 1}: END EXERCISE without a BEGIN")
        if not m:
            i += 1
            continue
        hint, j = [m["hint"]], i + 1
        while j < len(lines) and (more := HINT_MORE.match(lines[j])):
            hint.append(more["more"])
            j += 1
        while j < len(lines) and not END.match(lines[j]):
            if BEGIN.match(lines[j]):
                raise ExerciseError(f"{where}:{j + 1}: BEGIN EXERCISE inside exercise {m['id']}")
            j += 1
        if j == len(lines):
            raise ExerciseError(f"{where}:{i + 1}: exercise {m['id']} has no END EXERCISE")
        regions.append(_Region(m["id"], " ".join(hint), m["indent"], i, j))
        i = j + 1
    return regions


def find_exercises(root: Path) -> list[Exercise]:
    """Every marked region under root/minibert, in teaching order (by id)."""
    found: dict[str, Exercise] = {}
    for path in sorted((root / "minibert").rglob("*.py")):
        rel = path.relative_to(root)
        if path.name == "exercises.py":  # this module's docstring shows the markers
            continue
        for r in _regions(path.read_text(encoding="utf-8"), str(rel)):
            if r.id in found:
                raise ExerciseError(f"exercise {r.id} is marked twice: {found[r.id].path} "
                                    f"and {rel}")
            found[r.id] = Exercise(r.id, r.hint, rel, r.begin, r.end)
    return sorted(found.values(), key=lambda e: course_order(e.id))


def stub_text(text: str, only: set[str] | None = None, where: str = "<source>") -> str:
    """Replace exercise regions (all, or those in `only`) by a NotImplementedError."""
    lines = text.splitlines(keepends=True)
    for r in reversed(_regions(text, where)):  # from the bottom, so line numbers stay valid
        if only is None or r.id in only:
            message = f"Exercise {r.id}: {r.hint}"
            lines[r.begin : r.end + 1] = [f"{r.indent}raise NotImplementedError({message!r})\n"]
    return "".join(lines)


def copy_project(root: Path, dest: Path, stub: set[str] | None | Literal[False] = None,
                 parts: tuple[str, ...] = PROJECT_PARTS) -> None:
    """Copy the project (or only `parts` of it) to dest; stub=None stubs every exercise, a set
    only those, False none."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        src = root / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=_IGNORE, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, dest / part)
    if stub is False:
        return
    for ex_file in {e.path for e in find_exercises(root)}:
        target = dest / ex_file
        source = target.read_text(encoding="utf-8")
        target.write_text(stub_text(source, stub, str(ex_file)), encoding="utf-8")


# What the learner's loop needs besides minibert/: the tests that check an exercise (and the
# conftest that runs them on the copy's own code), and the lessons that use it.
LOOP_PARTS = ("tests/conftest.py", "lessons/_common.py", "exercises/README.md")


def build(dest: Path, root: Path | None = None) -> list[Exercise]:
    """Write the learner copy of the project into `dest` (which must not exist or be empty)."""
    root = root or project_root()
    dest = Path(dest)
    missing = [part for part in LOOP_PARTS if not (root / part).is_file()]
    if missing:  # e.g. minibert installed from a wheel: only the package is there
        raise ExerciseError(
            f"cannot build a learner copy from {root}: it has minibert/ but not "
            f"{', '.join(missing)}, which the exercises need (the tests check your code, the "
            "lessons run it). This happens when minibert was installed as a package (a wheel): "
            "get the project's source (git clone the repository) and run `minibert exercises "
            "build DIR` inside it."
        )
    if dest.resolve().is_relative_to(root.resolve()):  # the copy would copy itself, 240 deep
        raise ExerciseError(f"{dest} is inside the project {root}, which is what gets copied; "
                            "choose a folder outside it, e.g. ../my-minibert")
    if dest.exists() and any(dest.iterdir()):
        raise ExerciseError(f"{dest} exists and is not empty; choose a new folder")
    exercises = find_exercises(root)
    # Built beside dest under a hidden name, then renamed: stopped half-way (Ctrl-C), it
    # leaves no half copy under dest's name, and what it wrote is removed.
    building = dest.absolute().parent / f".{dest.name}.building-{secrets.token_hex(6)}"
    building.parent.mkdir(parents=True, exist_ok=True)
    building.mkdir()  # the usual permissions (tempfile.mkdtemp's would be private)
    try:
        copy_project(root, building, stub=None)
        building.replace(dest)  # an empty dest is replaced in one step
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return exercises


def build_instructions(dest: Path, made: list[Exercise]) -> str:
    """What to type next in a fresh learner copy: the tests run with this Python (the one
    that has minibert's dependencies and pytest), in the order of the course."""
    import shlex

    python, where = shlex.quote(sys.executable), shlex.quote(str(dest))
    order = ", ".join(e.id for e in made)
    return "\n".join([
        f"The exercises, in the order to do them: {order}.",
        "Each one needs only the ones before it; a lesson needs only its own chapter's and",
        "earlier exercises (see exercises/README.md).",
        "Run an exercise's tests inside the copy, with this Python:",
        f"    cd {where} && {python} -m pytest --exercise {made[0].id}",
        f"Your progress: {python} -m minibert exercises status {where}",
    ])


def _pytest(project: Path, exercise_id: str, quiet: bool = True,
            extra: tuple = ()) -> subprocess.CompletedProcess:
    """Run the tests tagged with `exercise_id` inside `project` (its own copy of minibert)."""
    cmd = [sys.executable, "-m", "pytest", "tests", "--exercise", exercise_id, "-p",
           "no:cacheprovider", "--tb=line" if quiet else "--tb=short", "-q", *extra]
    return subprocess.run(cmd, cwd=project, capture_output=quiet, text=True,
                          env=_env_first_on_path(project))


def _env_first_on_path(project: Path) -> dict:
    """This environment, with `project` first on PYTHONPATH: the copy's minibert is imported,
    not the installed one (whatever else PYTHONPATH held stays, after it)."""
    import os

    paths = [str(project), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def check(exercise_id: str, root: Path | None = None) -> int:
    """Run one exercise's tests with readable output; returns pytest's exit code."""
    root = root or project_root()
    ids = {e.id for e in find_exercises(root)}
    # A learner copy has no markers left (they were replaced), so accept any tagged id there.
    if ids and exercise_id not in ids:
        raise ExerciseError(f"unknown exercise {exercise_id!r}; known: {', '.join(sorted(ids))}")
    return _pytest(root, exercise_id, quiet=False).returncode


def _tagged_outcomes(project: Path, exercise_ids: list[str], log: Path) -> dict[str, list]:
    """Run the tests of several exercises in `project` in one pytest; returns {id: [(outcome,
    message) of each of its tests]} (outcome "passed", "failed", "skipped", ...; the message
    of a failure's first line), read from the per-test log the outcome_log plugin writes."""
    import json
    import os

    env = {**_env_first_on_path(project), "MINIBERT_OUTCOME_LOG": str(log)}
    subprocess.run([sys.executable, "-m", "pytest", "tests", "--exercise",
                    ",".join(exercise_ids), "-p", "no:cacheprovider", "-p",
                    "minibert.course.outcome_log", "-q", "--tb=no"],
                   cwd=project, capture_output=True, text=True, env=env)
    tags: dict[str, set] = {}
    outcome: dict[str, tuple[str, str]] = {}
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["event"] == "collected":
                tags[event["nodeid"]] = set(event["exercises"])
            elif event["event"] == "result" and outcome.get(event["nodeid"], ("",))[0] != "failed":
                # (a failed setup stays failed, whatever its teardown reports)
                outcome[event["nodeid"]] = (event["outcome"], event["message"])
        os.remove(log)
    return {e: [outcome.get(n, ("not run", "")) for n, t in tags.items() if e in t]
            for e in exercise_ids}


def verify(root: Path | None = None, ids: list[str] | None = None,
           log: Callable[[str], object] = print,
           workers: int = 2) -> dict:
    """Prove each exercise sound and the path in order; returns {id: "ok"} or raises
    ExerciseError listing the failures.

    The solved project must pass every exercise's tagged tests (one run). Then, in the course
    order e₁ … eₙ, copy k has e_k and every later exercise stubbed (the earlier ones solved):
    there e_k's tests must fail (its stub is caught) and e_(k-1)'s must pass (it needs nothing
    a learner has not written yet). One pytest per copy runs both, so n + 1 runs check all n
    exercises; the runs go `workers` at a time. Finally a fully stubbed learner copy must
    still import.
    """
    from concurrent.futures import ThreadPoolExecutor

    root = root or project_root()
    everything = find_exercises(root)
    order = [e.id for e in everything]
    chosen = [e for e in everything if ids is None or e.id in ids]
    problems, results = [], {}
    with tempfile.TemporaryDirectory(prefix="minibert-exercises-") as tmp:
        solved = Path(tmp) / "solved"
        copy_project(root, solved, stub=False)
        ok = _pytest(solved, "all")
        if ok.returncode != 0:
            problems.append(f"the solutions fail their own tests:\n{ok.stdout[-1500:]}")
        # copy k stubs order[k:]; the last exercise's "passes" is the solved run above
        copies = sorted({k for e in chosen for k in (order.index(e.id), order.index(e.id) + 1)
                         if k < len(order)})

        def run_copy(k: int) -> dict[str, list]:
            copy = Path(tmp) / f"stub-from-{order[k]}"
            copy_project(root, copy, stub=set(order[k:]))
            outcomes = _tagged_outcomes(copy, order[max(k - 1, 0):k + 1], Path(tmp) / f"{k}.log")
            shutil.rmtree(copy)
            return outcomes

        with ThreadPoolExecutor(max_workers=workers) as pool:
            runs = dict(zip(copies, pool.map(run_copy, copies), strict=True))
        for ex in chosen:
            k = order.index(ex.id)
            stubbed = runs[k][ex.id]
            if not stubbed:
                problems.append(f"{ex.id}: no test is tagged @pytest.mark.exercise({ex.id!r})")
                continue
            found = []
            if all(o != "failed" for o, _ in stubbed):
                found.append(f"{ex.id}: its tests still pass with the region stubbed out")
            if k + 1 < len(order):
                bad = [m for o, m in runs[k + 1][ex.id] if o not in ("passed", "skipped")]
                if bad:
                    needs = sorted({n for m in bad for n in re.findall(r"Exercise (\d+\.\d+)", m)})
                    found.append(f"{ex.id}: its tests fail while only later exercises are stubbed"
                                 f" (needs {', '.join(needs) or 'a later exercise'} first): "
                                 f"{bad[0]}")
            if found:
                problems.extend(found)
            else:
                results[ex.id] = "ok"
                log(f"exercise {ex.id}: stub fails its tests, and they pass with only earlier "
                    f"exercises solved   ({ex.path})")
        learner = Path(tmp) / "learner"
        copy_project(root, learner, stub=None)
        modules = sorted({".".join(e.path.with_suffix("").parts) for e in find_exercises(root)})
        imp = subprocess.run([sys.executable, "-c", "; ".join(f"import {m}" for m in modules)],
                             cwd=learner, capture_output=True, text=True,
                             env=_env_first_on_path(learner))
        if imp.returncode != 0:
            problems.append(f"the learner copy does not import:\n{imp.stderr[-800:]}")
        else:
            log(f"solutions pass all exercise tests; learner copy imports ({len(modules)} "
                "modules with exercises)")
    if problems:
        raise ExerciseError("exercise soundness check failed:\n- " + "\n- ".join(problems))
    return results
