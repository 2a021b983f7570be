"""The learner's loop: a copy runs its own code; status and grade report on it.

A learner copy is the project with exercise regions replaced by NotImplementedError. These tests
build copies with some exercises stubbed and check that the lessons and the tests in the copy use
the copy's minibert, and that `minibert exercises status/grade` report what the copy's tests
say, with a timeout that stops a learner's endless loop.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minibert.cli import main
from minibert.course import exercises as ex
from minibert.course import progress

ROOT = ex.project_root()
ALL = {e.id for e in ex.find_exercises(ROOT)}


def learner_copy(dest: Path, stubbed: set[str]) -> Path:
    ex.copy_project(ROOT, dest, stub=stubbed)
    return dest


def _clean_env() -> dict:
    """No PYTHONPATH pointing at the project, no CuPy: as a learner's shell would be."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MINIBERT_BACKEND")}
    return {**env, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}


def test_a_lesson_in_a_learner_copy_runs_the_learners_code(tmp_path):
    """Lesson 6 uses the cross-entropy backward (exercise 6.6): stubbed in the copy, the lesson
    stops with the exercise's hint, although the installed minibert has the solution."""
    copy = learner_copy(tmp_path / "copy", {"6.6"})
    run = subprocess.run([sys.executable, str(copy / "lessons" / "06_loss_and_gradients.py")],
                         cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0
    hint = next(e.hint for e in ex.find_exercises(ROOT) if e.id == "6.6")
    assert f"NotImplementedError: Exercise 6.6: {hint}" in run.stderr
    assert str(copy / "minibert" / "functional.py") in run.stderr  # the copy's file, not ours
    # ... and the same lesson passes in the project (tests/test_lessons.py runs all of them)
    ok = subprocess.run([sys.executable, str(ROOT / "lessons" / "06_loss_and_gradients.py")],
                        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr


def test_plain_pytest_in_a_learner_copy_tests_the_learners_code(tmp_path):
    """`pytest` (not only `python -m pytest`) run in the copy imports the copy's minibert."""
    copy = learner_copy(tmp_path / "copy", {"6.2"})
    pytest_exe = Path(sys.executable).with_name("pytest")
    cmd = [str(pytest_exe)] if pytest_exe.is_file() else [sys.executable, "-m", "pytest"]
    run = subprocess.run([*cmd, "tests/test_autograd.py", "--exercise", "6.2", "-q", "-x",
                          "-p", "no:cacheprovider"], cwd=copy, env=_clean_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "Exercise 6.2" in run.stdout


def test_build_from_an_installed_package_says_what_it_cannot_do(tmp_path):
    """Installed from a wheel, minibert has no tests/ or lessons/: build says so and writes
    nothing."""
    site = tmp_path / "site-packages"
    ex.copy_project(ROOT, site, stub=False)
    for part in ("tests", "lessons", "exercises", "notebooks", "pyproject.toml"):
        target = site / part
        if target.is_dir():
            import shutil

            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    with pytest.raises(ex.ExerciseError, match="tests/conftest.py.*git clone"):
        ex.build(tmp_path / "learner", site)
    assert not (tmp_path / "learner").exists()


@pytest.mark.slow
def test_build_from_a_real_wheel_says_what_it_cannot_do(tmp_path, minibert_wheel):
    """The same with minibert built as a wheel and unpacked where Python imports it first."""
    import zipfile

    wheel, _ = minibert_wheel
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"
    work.mkdir()
    env = {**_clean_env(), "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", "import sys, minibert.cli as c; "
                          "print(c.__file__, file=sys.stderr); "
                          "sys.exit(c.main(['exercises', 'build', 'mine']))"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert str(site) in out.stderr  # the wheel's minibert ran, not the project's
    assert out.returncode == 2
    assert "tests/conftest.py" in out.stderr and "git clone" in out.stderr
    assert not (work / "mine").exists()


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Three learners: nothing done; only 1.1 done; 1.1 done but 7.1 loops forever."""
    base = tmp_path_factory.mktemp("learners")
    fresh = learner_copy(base / "ana", ALL)
    one = learner_copy(base / "ben", ALL - {"1.1"})
    stuck = learner_copy(base / "cai", ALL - {"1.1"})
    data = stuck / "minibert" / "data.py"
    source = data.read_text(encoding="utf-8")
    stub = next(line for line in source.splitlines() if "Exercise 7.1:" in line)
    indent = stub[: len(stub) - len(stub.lstrip())]
    data.write_text(source.replace(stub, f"{indent}while True:\n{indent}    pass"),
                          encoding="utf-8")
    return fresh, one, stuck


def test_status_counts_passing_tests_per_exercise_in_course_order(copies):
    fresh, one, _ = copies
    rows = progress.progress(one, timeout=60)
    assert [r.id for r in rows] == sorted(ALL, key=lambda i: tuple(map(int, i.split("."))))
    first = rows[0]
    assert first.id == "1.1" and first.done and first.passed == first.total >= 2
    assert not any(r.done for r in rows[1:])
    softmax = next(r for r in rows if r.id == "3.1")
    assert softmax.passed == 0 and "Exercise 3.1" in softmax.hint
    # a test of 2.1 first stops at the unsolved 6.5 (the backward pass): the hint says so
    assert any("needs exercise" in r.hint for r in rows)
    assert not any(r.done for r in progress.progress(fresh, timeout=60))


def test_status_command_prints_the_table(copies, capsys):
    _, one, _ = copies
    assert main(["exercises", "status", str(one)]) == 0
    out = capsys.readouterr().out
    assert "✓ 1.1" in out and f"1 of {len(ALL)} exercises done" in out
    assert "next: exercise 2.1" in out and "do 6.5 first" in out


def test_grade_survives_an_endless_loop_and_writes_csv(copies, tmp_path, capsys):
    report = tmp_path / "grades.csv"
    code = main(["exercises", "grade", *map(str, copies), "--csv", str(report),
                 "--timeout", "3"])
    assert code == 0
    with open(report, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by = {(r["learner"], r["exercise"]): r for r in rows}
    assert by[("ben", "1.1")]["points"] == by[("ben", "1.1")]["max_points"] != "0"
    assert by[("ana", "1.1")]["points"] == "0"
    stuck = by[("cai", "7.1")]
    assert "timeout" in stuck["first_failure"] and stuck["points"] == "0"
    assert by[("cai", "1.1")]["points"] == by[("ben", "1.1")]["points"]  # the rest still ran
    totals = {r["learner"]: int(r["points"]) for r in rows if r["exercise"] == "total"}
    assert totals["ana"] == 0 < totals["ben"] == totals["cai"]
    assert "=1" in by[("ben", "1.1")]["tests"]  # points per test
    # a second run may replace its own report, but never a file it did not write
    other = tmp_path / "notes.csv"
    other.write_text("my own notes\n", encoding="utf-8")
    assert main(["exercises", "grade", str(copies[0]), "--csv", str(other)]) == 2
    assert other.read_text(encoding="utf-8") == "my own notes\n"


def test_grade_rejects_a_folder_that_is_not_a_copy(tmp_path, capsys):
    assert main(["exercises", "grade", str(tmp_path)]) == 2
    assert "not a learner copy" in capsys.readouterr().err


def test_every_exercise_is_in_the_readme_catalogue():
    listed = progress.catalogue(ROOT)
    assert set(listed) == ALL
    for e in ex.find_exercises(ROOT):
        assert listed[e.id].file == str(e.path), f"exercises/README.md: {e.id} is in {e.path}"
