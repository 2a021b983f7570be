"""Where a learner stands: run the exercise tests of a learner copy and report per exercise.

    minibert exercises status [DIR]              one learner: a table, in course order
    minibert exercises grade DIR... [--csv FILE]  a teacher: one row per learner and exercise

Both run ``pytest --exercise all`` inside the copy (so the copy's own minibert is tested) with
$MINIBERT_PROGRESS_LOG set: tests/conftest.py then writes, test by test, which test started and
how it ended. A watchdog reads that log while pytest runs; a test that runs longer than the
timeout (a learner's infinite loop, in Python or inside NumPy) gets its whole pytest process
stopped, is scored "timeout", and pytest starts again without the tests already done. So one
stuck test costs its timeout, never the whole report.

Each test is worth one point. The catalogue of exercises (id, lesson, title) is the table in
exercises/README.md; the tests say which exercise they check with @pytest.mark.exercise(id).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .exercises import ExerciseError, course_order, project_root

DEFAULT_TIMEOUT = 60.0  # seconds per test: the slowest solved exercise test takes a few
COLLECT_TIMEOUT = 180.0  # seconds for pytest to start and collect (imports the copy's code)

# a table row: | 6.2 | [6 Loss and gradients](../lessons/06_...md) | `minibert/autograd.py` | what |
_ROW = re.compile(r"^\|\s*(?P<id>\d+\.\d+)\s*\|\s*\[(?P<lesson>[^\]]+)\][^|]*\|\s*`(?P<file>[^`]+)`"
                  r"\s*\|\s*(?P<title>.+?)\s*\|\s*$")


@dataclass(frozen=True)
class CatalogueEntry:
    id: str
    lesson: str  # "6 Loss and gradients"
    file: str
    title: str  # what the learner writes, in a few words


def catalogue(root: Path) -> dict[str, CatalogueEntry]:
    """The exercises listed in root/exercises/README.md, by id."""
    readme = Path(root) / "exercises" / "README.md"
    if not readme.is_file():
        raise ExerciseError(f"{readme} not found: is {root} a minibert project or learner copy?")
    rows = (_ROW.match(line) for line in readme.read_text(encoding="utf-8").splitlines())
    return {m["id"]: CatalogueEntry(m["id"], m["lesson"], m["file"], m["title"])
            for m in rows if m}


@dataclass
class TestResult:
    nodeid: str
    exercises: list[str]
    outcome: str = "not run"  # passed, failed, skipped, timeout, error, not run
    message: str = ""

    @property
    def points(self) -> int:
        return int(self.outcome == "passed")


@dataclass
class ExerciseProgress:
    id: str
    lesson: str
    title: str
    tests: list[TestResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(t.points for t in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    @property
    def done(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def hint(self) -> str:
        """One line about the first test that did not pass ("" when all pass)."""
        for t in self.tests:
            if t.outcome != "passed":
                name = t.nodeid.split("::")[-1]
                other = re.search(r"NotImplementedError: Exercise (\d+\.\d+)", t.message)
                if other and other[1] != self.id:  # blocked by an exercise not done yet
                    return f"{name}: needs exercise {other[1]} first"
                message = t.message.removeprefix("NotImplementedError: ")
                return f"{name}: {t.outcome}" + (f": {message}" if message else "")
        return "" if self.tests else "no test is tagged with this exercise"


# -- running the tests, with a watchdog --------------------------------------------------------


def _stop(proc: subprocess.Popen) -> None:
    """Stop pytest and whatever it started (it runs in its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_tests(project: Path, timeout: float = DEFAULT_TIMEOUT,
              collect_timeout: float = COLLECT_TIMEOUT) -> list[TestResult]:
    """Run every exercise test of `project` (its own minibert first on the path), each at most
    `timeout` seconds; returns one result per test, in collection order."""
    from .exercises import _env_first_on_path

    project = Path(project).resolve()
    if not (project / "tests" / "conftest.py").is_file():
        raise ExerciseError(f"{project} has no tests/conftest.py: give the folder written by "
                            "`minibert exercises build`")
    results: dict[str, TestResult] = {}
    with tempfile.TemporaryDirectory(prefix="minibert-progress-") as tmp:
        log = Path(tmp) / "events.jsonl"
        env = {**_env_first_on_path(project), "MINIBERT_PROGRESS_LOG": str(log),
               "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
        env.pop("MINIBERT_BACKEND", None)  # grade on the CPU: the same for every learner
        while True:
            finished = [n for n, r in results.items() if r.outcome != "not run"]
            log.write_text("", encoding="utf-8")
            cmd = [sys.executable, "-m", "pytest", "tests", "--exercise", "all", "-q",
                   "--tb=line", "-p", "no:cacheprovider", "-o", "addopts=",
                   *[f"--deselect={n}" for n in finished]]
            proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
            stuck = _watch(proc, log, results, timeout, collect_timeout)
            stderr = proc.stderr.read() if proc.stderr else ""
            if stuck is None:
                break
            if stuck == "":  # collection never finished: nothing to deselect, so stop here
                for r in results.values():
                    if r.outcome == "not run":
                        r.outcome, r.message = "timeout", "pytest did not finish collecting"
                if not results:
                    raise ExerciseError(f"{project}: pytest did not collect the tests within "
                                        f"{collect_timeout:.0f} s (an endless loop at import?)")
                break
            results[stuck].outcome = "timeout"
            results[stuck].message = f"still running after {timeout:g} s (an endless loop?)"
        if not results:
            last = stderr.strip().splitlines()[-1:] or ["no output"]
            raise ExerciseError(f"{project}: no exercise test could be collected: {last[0]}")
        for r in results.values():
            if r.outcome == "not run" and proc.returncode not in (0, 1):
                r.outcome, r.message = "error", f"pytest stopped (exit code {proc.returncode})"
    return list(results.values())


def _watch(proc, log: Path, results: dict[str, TestResult], timeout: float,
           collect_timeout: float) -> str | None:
    """Follow pytest's event log until it exits (None) or a test overruns (its node id; ""
    when collection itself overran). Results are filled in as they arrive."""
    started, running, offset = time.monotonic(), None, 0
    collected = False
    while True:
        exited = proc.poll() is not None
        with open(log, encoding="utf-8") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]  # a line still being written waits
        offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            e = json.loads(line)
            if e["event"] == "collected":
                collected = True
                results.setdefault(e["nodeid"], TestResult(e["nodeid"], e["exercises"]))
            elif e["event"] == "start":
                running = (e["nodeid"], time.monotonic())
            elif e["event"] == "result" and e["nodeid"] in results:
                r = results[e["nodeid"]]
                if not (e["outcome"] == "passed" and r.outcome in ("failed", "error")):
                    r.outcome = "error" if e["when"] != "call" and e["outcome"] == "failed" \
                        else e["outcome"]
                    r.message = e["message"]
        if exited:
            return None
        now = time.monotonic()
        if not collected and now - started > collect_timeout:
            _stop(proc)
            return ""
        if running and now - running[1] > timeout and results.get(running[0]) is not None \
                and results[running[0]].outcome == "not run":
            _stop(proc)
            return running[0]
        time.sleep(0.05)


def progress(project: Path, timeout: float = DEFAULT_TIMEOUT,
             reference: Path | None = None) -> list[ExerciseProgress]:
    """Every exercise of the catalogue with its tests' results, in course order.

    The catalogue comes from `reference` (a teacher's project: the same for every learner), or
    else from the copy's own exercises/README.md."""
    entries = catalogue(reference or project)
    by_id = {i: ExerciseProgress(i, e.lesson, e.title) for i, e in entries.items()}
    for result in run_tests(project, timeout):
        for i in result.exercises:
            by_id.setdefault(i, ExerciseProgress(i, "?", "(not in exercises/README.md)"))
            by_id[i].tests.append(result)
    return sorted(by_id.values(), key=lambda p: course_order(p.id))


# -- reports -----------------------------------------------------------------------------------


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_status(rows: list[ExerciseProgress], width: int = 100) -> str:
    """The status table: id, lesson, title, tests passed / total, and the first failure."""
    lines = [f"{'':2}{'id':<5} {'lesson':<22} {'exercise':<44} {'tests':>7}",
             "-" * 82]
    for p in rows:
        mark = "✓" if p.done else "·"
        lines.append(f"{mark:2}{p.id:<5} {_cut(p.lesson, 22):<22} {_cut(p.title, 44):<44} "
                     f"{p.passed:>3}/{p.total:<3}")
        if not p.done:
            lines.append(f"{'':8}{_cut(p.hint, width - 8)}")
    done = sum(p.done for p in rows)
    points = sum(p.passed for p in rows), sum(p.total for p in rows)
    lines.append("-" * 82)
    lines.append(f"{done} of {len(rows)} exercises done, {points[0]} of {points[1]} tests pass")
    nxt = next((p for p in rows if not p.done), None)
    if nxt:
        lines.append(f"next: exercise {nxt.id} (lesson {nxt.lesson}) — minibert exercises "
                     f"check {nxt.id}")
        blocker = re.search(r"needs exercise (\S+) first", nxt.hint)
        if blocker:
            lines.append(f"      (its tests run through exercise {blocker[1]}, not done yet: do "
                         f"{blocker[1]} first, or read ahead to its lesson)")
    return "\n".join(lines)


GRADE_COLUMNS = ["learner", "exercise", "title", "points", "max_points", "tests",
                 "first_failure"]


def grade(copies: list[Path], timeout: float = DEFAULT_TIMEOUT, reference: Path | None = None,
          workers: int = 2, log: Callable[[str], object] = print) -> list[dict]:
    """One row per learner and exercise (plus a "total" row per learner). `tests` lists each
    test with its points ("name=1;other=0"). A copy that cannot be tested gets one error row."""
    from concurrent.futures import ThreadPoolExecutor

    reference = reference or project_root()
    copies = [Path(c) for c in copies]
    for c in copies:  # check every argument before any work starts
        if not (c / "tests" / "conftest.py").is_file():
            raise ExerciseError(f"{c} is not a learner copy (no tests/conftest.py); give the "
                                "folders written by `minibert exercises build`")

    def one(copy: Path) -> list[dict]:
        learner = copy.resolve().name
        try:
            rows = progress(copy, timeout, reference)
        except ExerciseError as e:
            log(f"{learner}: {e}")
            return [dict(learner=learner, exercise="total", title="", points=0, max_points=0,
                         tests="", first_failure=str(e))]
        out = [dict(learner=learner, exercise=p.id, title=p.title, points=p.passed,
                    max_points=p.total,
                    tests=";".join(f"{t.nodeid.split('::')[-1]}={t.points}" for t in p.tests),
                    first_failure=p.hint) for p in rows]
        out.append(dict(learner=learner, exercise="total", title="",
                        points=sum(p.passed for p in rows),
                        max_points=sum(p.total for p in rows), tests="",
                        first_failure=f"{sum(p.done for p in rows)} of {len(rows)} exercises "
                                      "done"))
        log(f"{learner}: {out[-1]['points']} / {out[-1]['max_points']} points")
        return out

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [row for rows in pool.map(one, copies) for row in rows]


def format_grades(rows: list[dict]) -> str:
    """The teacher's table: learners as rows, exercises as columns, points/max in each cell."""
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    exercises = [e for e in dict.fromkeys(r["exercise"] for r in rows) if e != "total"]
    cell = {(r["learner"], r["exercise"]): f"{r['points']}/{r['max_points']}" for r in rows}
    w = max([len(name) for name in learners] + [7])
    lines = [f"{'learner':<{w}} " + " ".join(f"{e:>5}" for e in exercises) + "    total"]
    for name in learners:
        lines.append(f"{name:<{w}} " + " ".join(f"{cell.get((name, e), '-'):>5}"
                                                for e in exercises)
                     + f"  {cell.get((name, 'total'), '-'):>7}")
    return "\n".join(lines)


def check_csv_target(path: Path) -> None:
    """Refuse a --csv path that holds something other than an earlier grade report."""
    path = Path(path)
    if path.is_dir():
        raise ExerciseError(f"--csv {path} is a folder; give a file name such as grades.csv")
    if path.exists():
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
        if first != ",".join(GRADE_COLUMNS):
            raise ExerciseError(f"--csv {path} exists and is not a grade report written by "
                                "minibert; choose another file name (nothing was written)")
    if not path.resolve().parent.is_dir():
        raise ExerciseError(f"--csv {path}: the folder {path.parent} does not exist")


def write_csv(rows: list[dict], path: Path) -> None:
    """Write the grade rows as CSV, atomically (a half-written report never replaces one)."""
    from ..fileio import atomic_open

    with atomic_open(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=GRADE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
