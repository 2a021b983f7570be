"""The learner exercises are sound: each stub fails its tests, each solution passes them."""

import shlex
import subprocess
import sys

import pytest

from minibert.course import exercises as ex

ROOT = ex.project_root()


def test_regions_are_well_formed_and_numerous():
    found = ex.find_exercises(ROOT)
    assert len(found) >= 11
    assert len({e.id for e in found}) == len(found)
    assert all(e.hint for e in found)


def test_regions_end_before_the_return():
    """A `return` just above END EXERCISE would read as code after a return; it goes below."""
    for e in ex.find_exercises(ROOT):
        lines = (ROOT / e.path).read_text(encoding="utf-8").splitlines()
        last = next(line for line in reversed(lines[e.begin:e.end]) if line.strip())
        assert not last.strip().startswith("return"), f"{e.path}:{e.end}: exercise {e.id}"


def test_stub_replaces_the_region_with_the_hint():
    src = (
        "def f(x):\n"
        "    # BEGIN EXERCISE 9.9: double x\n"
        "    #   (multiply by two)\n"
        "    return 2 * x\n"
        "    # END EXERCISE\n"
    )
    out = ex.stub_text(src)
    assert "return 2 * x" not in out
    assert "raise NotImplementedError('Exercise 9.9: double x (multiply by two)')" in out
    namespace = {}
    exec(compile(out, "<stub>", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="Exercise 9.9"):
        namespace["f"](1)
    assert ex.stub_text(src, only={"1.1"}) == src


@pytest.mark.parametrize(
    "src,message",
    [
        ("# BEGIN EXERCISE 1.1: a\nx = 1\n", "no END"),
        ("x = 1\n# END EXERCISE\n", "without a BEGIN"),
        ("# BEGIN EXERCISE 1.1: a\n# BEGIN EXERCISE 1.2: b\n# END EXERCISE\n", "inside"),
    ],
)
def test_malformed_regions_are_reported_with_their_line(src, message):
    with pytest.raises(ex.ExerciseError, match=message):
        ex.stub_text(src, where="file.py")


def test_build_writes_an_importable_learner_copy(tmp_path):
    made = ex.build(tmp_path / "learner", ROOT)
    source = (tmp_path / "learner" / "minibert" / "autograd.py").read_text()
    assert "BEGIN EXERCISE" not in source and "NotImplementedError(\"Exercise 6.2" in source
    out = subprocess.run([sys.executable, "-c", "import minibert"], cwd=tmp_path / "learner",
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert len(made) == len(ex.find_exercises(ROOT))
    # what to type next names this Python (the one with pytest and minibert's dependencies)
    said = ex.build_instructions(tmp_path / "learner", made)
    assert f"{shlex.quote(sys.executable)} -m pytest --exercise {made[0].id}" in said
    assert ", ".join(e.id for e in made) in said
    with pytest.raises(ex.ExerciseError, match="not empty"):
        ex.build(tmp_path / "learner", ROOT)


def test_several_exercises_run_in_one_pytest_with_each_tests_outcome(tmp_path):
    """verify runs two exercises' tests in one pytest (--exercise 6.1,6.4) and reads every
    test's outcome, with its exercise, from the log of minibert/course/outcome_log.py."""
    outcomes = ex._tagged_outcomes(ROOT, ["6.1", "6.4"], tmp_path / "log")
    assert set(outcomes) == {"6.1", "6.4"}
    assert len(outcomes["6.1"]) >= 4 and len(outcomes["6.4"]) >= 10  # every tagged test ran
    assert all(o in ("passed", "skipped") for o, _ in outcomes["6.1"] + outcomes["6.4"])
    assert not (tmp_path / "log").exists()  # read, then removed


@pytest.mark.slow
def test_every_exercise_is_sound():
    """For each exercise: the solution passes its tagged tests, the stub fails them."""
    results = ex.verify(ROOT, log=lambda *_: None)
    assert set(results) == {e.id for e in ex.find_exercises(ROOT)}


def _tiny_project(root):
    for part in ("minibert/__init__.py", *ex.LOOP_PARTS):
        (root / part).parent.mkdir(parents=True, exist_ok=True)
        (root / part).write_text("")
    return root


def test_build_into_a_folder_inside_the_project_is_refused(tmp_path):
    """It copied itself into itself, 240 levels deep."""
    root = _tiny_project(tmp_path / "project")
    for dest in (root / "exercises" / "copy", root / "mine", root):
        with pytest.raises(ex.ExerciseError, match="inside the project"):
            ex.build(dest, root)
    assert not (root / "exercises" / "copy").exists() and not (root / "mine").exists()


def test_a_stopped_build_leaves_no_half_copy(tmp_path, monkeypatch):
    root = _tiny_project(tmp_path / "project")

    def copy_then_stop(src, dest, stub=None):
        (dest / "minibert").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "copy_project", copy_then_stop)
    with pytest.raises(KeyboardInterrupt):
        ex.build(tmp_path / "learner", root)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
