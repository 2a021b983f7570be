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
import time
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
    assert not any(r.done for r in progress.progress(fresh, timeout=60))


def test_status_command_prints_the_table(copies, capsys):
    _, one, _ = copies
    assert main(["exercises", "status", str(one)]) == 0
    out = capsys.readouterr().out
    assert "✓ 1.1" in out and f"1 of {len(ALL)} exercises done" in out
    assert "next: exercise 2.1" in out


def test_a_test_stopped_by_an_earlier_exercise_says_so():
    """A test of 8.2 that stops in the stub of 6.5 (the backward pass) is not 8.2's fault:
    the hint and the 'next' line say to do 6.5 first."""
    stopped = progress.TestResult("tests/test_train.py::test_step", ["8.2"], "failed",
                                  "NotImplementedError: Exercise 6.5: put in `order` ...")
    rows = [progress.ExerciseProgress("8.2", "8 Fine-tuning", "the fine-tuning step",
                                      [stopped])]
    assert rows[0].hint == "test_step: needs exercise 6.5 first"
    assert "do 6.5 first" in progress.format_status(rows)


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


# -- grading untrusted copies: each attack below worked against the grader before the sandbox --
# (a copy's root conftest.py forged 178/178, learner code wrote outside its folder and left a
# process running, a non-daemon thread made `grade` hang, one bad line in the progress log
# spoiled the whole class's report, class1/alice and class2/alice were one row). The copies
# have every exercise stubbed and are graded on exercise 1.1 only, to stay quick; "honest"
# copies have 1.1 solved.

MARKER = "minibert-grader-test-lingering-process"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def _kill_all(marker: str) -> None:
    import signal

    for pid in _processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _at_import(copy: Path, code: str) -> Path:
    """Append `code` to the copy's exercise file of 1.1: it runs when the tests import it."""
    path = copy / "minibert" / "tokenizer.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + code, encoding="utf-8")
    return copy


FORGING_CONFTEST = '''
import pytest

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome, report.longrepr = "passed", None
'''

LINGER = f'''
import os as _os, sys as _sys
if _os.fork() == 0:  # a double fork that leaves the process group: outlives pytest
    _os.setsid()
    if _os.fork() == 0:
        _os.execv(_sys.executable, [_sys.executable, "-c", "import time; time.sleep(3600)",
                                    "{MARKER}"])
    _os._exit(0)
'''

THREAD = '''
import threading as _threading, time as _time
_threading.Thread(target=_time.sleep, args=(3600,)).start()  # not a daemon: exit waits for it
'''

BAD_LINES = '''
import os as _os
_log = _os.environ.get("MINIBERT_PROGRESS_LOG")
if _log:
    with open(_log, "a") as _f:
        _f.write("this is not an event\\n")
for _fd in _os.listdir("/proc/self/fd"):  # whatever pipe the grader reads
    try:
        if _os.readlink(f"/proc/self/fd/{_fd}").startswith("pipe:"):
            _os.write(int(_fd), b'{"event": "result", "outcome": "passed"}\\n')
    except OSError:
        pass
'''

REWRITE_TESTS = '''
import sys as _sys
from pathlib import Path as _Path
_conftest = _sys.modules.get("conftest")
if _conftest is not None:
    _tests = _Path(_conftest.__file__).parent / "test_tokenizer.py"
    try:
        _tests.write_text(_tests.read_text() + """
@pytest.mark.exercise("1.1")
def test_wordpiece_greedy_longest_match(): pass
@pytest.mark.exercise("1.1")
def test_wordpiece_unknown_and_too_long_words(): pass
""")
    except OSError:
        pass
'''


def _once_per_suite(config) -> None:
    """The grader runs every copy on the CPU whatever backend the suite uses (its sandbox
    starts from an empty environment): `make test`'s second, --cupy run would repeat the same
    minutes of grading, so these tests run in the first only."""
    if config.getoption("--cupy"):
        pytest.skip("grading is the same under --cupy (the sandbox grades on the CPU)")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, request):
    """Grade a class of hostile copies (and honest ones) once; the tests below read the rows."""
    _once_per_suite(request.config)
    base = tmp_path_factory.mktemp("class")
    outside = base / "written-from-a-copy.txt"
    stubbed = ALL
    copies = {
        "honest": learner_copy(base / "honest", ALL - {"1.1"}),
        "forger": learner_copy(base / "forger", stubbed),
        "writer": _at_import(learner_copy(base / "writer", stubbed),
                             f"open({str(outside)!r}, 'w').write('x')\n"
                             "open('../written-relative.txt', 'w').write('x')\n"),
        "lingerer": _at_import(learner_copy(base / "lingerer", stubbed), LINGER),
        "threader": _at_import(learner_copy(base / "threader", ALL - {"1.1"}), THREAD),
        "badline": _at_import(learner_copy(base / "badline", ALL - {"1.1"}), BAD_LINES),
        "rewriter": _at_import(learner_copy(base / "rewriter", stubbed), REWRITE_TESTS),
        "hooker": _at_import(learner_copy(base / "hooker", stubbed),  # the conftest, pasted
                             "import sys as _sys\n"
                             f"exec({FORGING_CONFTEST!r}, vars(_sys.modules['conftest']))\n"),
        "linker": learner_copy(base / "linker", stubbed),
        "class1/alice": learner_copy(base / "class1" / "alice", ALL - {"1.1"}),
        "class2/alice": learner_copy(base / "class2" / "alice", stubbed),
    }
    (copies["forger"] / "conftest.py").write_text(FORGING_CONFTEST, encoding="utf-8")
    linked = copies["linker"] / "minibert" / "tokenizer.py"
    linked.unlink()
    linked.symlink_to(ROOT / "minibert" / "tokenizer.py")  # the teacher's solution
    messages = []
    try:
        rows = progress.grade(list(copies.values()), timeout=60, reference=ROOT,
                              log=messages.append, copy_timeout=300, exercise="1.1")
        lingering = _processes_with(MARKER)
    finally:
        _kill_all(MARKER)
    totals = {r["learner"]: r for r in rows if r["exercise"] == "total"}
    return dict(rows=rows, totals=totals, messages=messages, base=base, outside=outside,
                lingering=lingering, mode=progress.sandbox_mode(ROOT))


def test_grade_reads_results_the_copy_cannot_forge(hostile):
    """A root conftest.py rewriting every report to 'passed', the same hook pasted into an
    exercise file, tests rewritten at import, a symlink to the teacher's solution: none earns
    a point."""
    totals = hostile["totals"]
    assert totals["honest"]["points"] == totals["honest"]["max_points"] == 2
    assert totals["forger"]["points"] == 0 and totals["forger"]["max_points"] == 2
    assert totals["rewriter"]["points"] == 0
    assert totals["linker"]["points"] == 0
    assert "symbolic link" in totals["linker"]["first_failure"]
    assert totals["hooker"]["points"] == 0
    assert "changed how pytest reports" in totals["hooker"]["first_failure"]


def test_grade_leaves_no_process_behind(hostile):
    """A process that double-forked and left the process group is killed with its copy."""
    assert hostile["lingering"] == []
    assert hostile["totals"]["lingerer"]["points"] == 0  # graded all the same


def test_grade_returns_although_a_thread_keeps_pytest_alive(hostile):
    """A non-daemon thread started at import kept pytest from exiting (and grade waited
    forever): the copy is graded on its results and its processes are ended."""
    assert hostile["totals"]["threader"]["points"] == 2


def test_one_broken_copy_does_not_spoil_the_others(hostile):
    """Lines written into the grader's result channel make that copy an error, with the
    reason; every other copy is graded."""
    bad = hostile["totals"]["badline"]
    assert bad["points"] == 0 and "result channel" in bad["first_failure"]
    assert hostile["totals"]["honest"]["points"] == 2
    assert any(m.startswith("badline: not graded") for m in hostile["messages"])


def test_copies_with_the_same_folder_name_are_told_apart_by_their_path(hostile):
    totals = hostile["totals"]
    assert totals["class1/alice"]["points"] == 2 and totals["class2/alice"]["points"] == 0
    assert "alice" not in totals


def test_import_time_writes_stay_in_the_grading_folder(hostile):
    """A relative path (from the folder the tests run in) lands in the grading folder, which is
    removed; an absolute path outside is blocked where the sandbox makes the world read-only
    (sandbox_mode() says whether it can here)."""
    assert not (hostile["base"] / "written-relative.txt").exists()
    assert hostile["totals"]["writer"]["points"] == 0
    if hostile["mode"]["outside"]:
        pytest.skip("this machine lets the sandbox write outside its folder (no mount "
                    "namespace): only a container blocks it")
    assert not hostile["outside"].exists()


def test_grade_says_what_the_sandbox_does_here(hostile):
    summary = "\n".join(hostile["messages"])
    assert "sandbox:" in summary and "killed when it ends" in summary


def test_copy_names_follow_their_paths_and_a_copy_given_twice_is_refused(tmp_path):
    paths = [tmp_path / "class1" / "alice", tmp_path / "class2" / "alice", tmp_path / "bob"]
    assert progress.display_names(paths) == ["class1/alice", "class2/alice", "bob"]
    with pytest.raises(ex.ExerciseError, match="given twice"):
        progress.display_names([paths[0], paths[1], paths[0] / ".." / "alice"])


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
@pytest.mark.parametrize("option", ["--timeout", "--copy-timeout"])
def test_grade_refuses_a_timeout_that_is_not_a_positive_number(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        main(["exercises", "grade", str(tmp_path), f"{option}={value}"])
    assert stop.value.code == 2
    assert f"argument {option}: must be a positive number, not {value}" in capsys.readouterr().err


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_grade_stopped_by_ctrl_c_reports_the_copies_graded_so_far(tmp_path, signum, request):
    """Ctrl-C (or SIGTERM) while a copy is stuck at import: the copies already graded are shown
    and written to the CSV, no process of the grading is left, exit status 130, no traceback."""
    import signal

    _once_per_suite(request.config)

    done = learner_copy(tmp_path / "done", ALL - {"1.1"})
    marker = f"{MARKER}-{signum}"
    stuck = _at_import(learner_copy(tmp_path / "stuck", ALL),
                       f"import subprocess, sys, time\n"
                       f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)',"
                       f" {marker!r}])\ntime.sleep(3600)\n")
    report = tmp_path / "grades.csv"
    env = {**_clean_env(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "minibert", "exercises", "grade", str(done),
                             str(stuck), "--exercise", "1.1", "--csv", str(report)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        err = []
        while not (err and err[-1].startswith("done: ")):  # the first copy is graded
            line = proc.stderr.readline()
            assert line, "".join(err)
            err.append(line)
        while not _processes_with(marker):  # the stuck copy has started
            assert proc.poll() is None
            time.sleep(0.1)
        proc.send_signal(getattr(signal, signum))
        out, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
        _kill_all(marker)
    err = "".join(err) + rest
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopped: 1 of 2 copies graded" in err
    assert "done" in out and "stuck" not in out
    with open(report, encoding="utf-8") as f:
        assert {r["learner"] for r in csv.DictReader(f)} == {"done"}
    assert _processes_with(marker) == []
