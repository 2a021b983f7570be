"""Where a learner stands: run the exercise tests of a learner copy and report per exercise.

    minibert exercises status [DIR]              one learner: a table, in course order
    minibert exercises grade DIR... [--csv FILE]  a teacher: one row per learner and exercise

Both run pytest on the exercise tests through the grader's own reporter (grade_plugin.py),
which sends, test by test, which test started and how it ended through a pipe, each line
signed with a per-run key. A watchdog reads those events while pytest runs; a test that runs
longer than the timeout (a learner's infinite loop, in Python or inside NumPy) gets its whole
pytest process stopped, is scored "timeout", and pytest starts again without the tests
already done. So one stuck test costs its timeout, never the whole report. Every pytest run
goes through a supervisor (sandbox.py) that leaves no process of it behind.

`status` runs the learner's own copy in place, as the learner. `grade` runs copies it must not
trust: each in a fresh grading folder (the teacher's tests, configuration and package, with
only the copy's exercise files), in the sandbox; see exercises/README.md ("Grading many
copies") for the design and what it does not protect against.

Each test is worth one point. The catalogue of exercises (id, lesson, title) is the table in
exercises/README.md; the tests say which exercise they check with @pytest.mark.exercise(id).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exercises import ExerciseError, course_order, project_root

DEFAULT_TIMEOUT = 60.0  # seconds per test: the slowest solved exercise test takes a few
COLLECT_TIMEOUT = 180.0  # seconds for pytest to start and collect (imports the copy's code)
LINGER = 10.0  # seconds pytest may take to exit after its last test (then it is stopped)

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
    required: bool = False  # graded: counts even when the copy's run skips it

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
        """The tests that count: a test skipped here (one for a GPU, say) does not, unless
        the grader requires it (the reference passed it)."""
        return sum(t.required or t.outcome != "skipped" for t in self.tests)

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


# -- running the tests: one supervisor per pytest run, results through a signed pipe ---------
#
# Every pytest run goes through sandbox.py (a supervisor that leaves no process behind) and
# reports through grade_plugin.py (the grader's own reporter, writing signed events to a pipe
# only the grader reads). `status` runs a learner's own copy in place, with the learner's
# rights and environment; `grade` builds a fresh grading folder per copy (the teacher's tests,
# configuration and package, with only the copy's exercise files) and runs it in the sandbox.

SANDBOX_SCRIPT = Path(__file__).with_name("sandbox.py")
PLUGIN_SCRIPT = Path(__file__).with_name("grade_plugin.py")
DEFAULT_COPY_TIMEOUT = 900.0  # seconds for a whole copy, every restart included
SANDBOX_UID_BASE = 64000  # as root, copy i runs as user and group 64000 + i % 1000
LIMITS = {"as": 4 << 30,  # bytes of address space per process
          "fsize": 256 << 20,  # bytes: the largest file a process may write
          "core": 0}  # no core dumps
EXTRA_PROCESSES = 256  # processes and threads a copy may add to its user's
MAX_SOURCE_BYTES = 1 << 20  # a learner's exercise file larger than this is refused
GRADING_PARTS = ("minibert", "tests", "exercises", "pyproject.toml")


class Tampered(ExerciseError):
    """The copy's code wrote into the grader's result channel or changed the grading folder:
    none of its results can be believed."""


class Stopped(Exception):
    """The grader was asked to stop (Ctrl-C or SIGTERM) while this copy ran."""


@dataclass
class _How:
    """How pytest runs for one project: in place (status) or in a grading folder (grade)."""

    cwd: Path
    python: list[str]  # the interpreter and its flags
    pytest_args: list[str]
    env: dict
    output: Path  # pytest's own stdout and stderr (read only for an error message)
    plugin: Path = PLUGIN_SCRIPT
    uid: int | None = None
    gid: int | None = None
    limits: dict = field(default_factory=dict)
    no_network: bool = False
    writable: list[str] | None = None  # all else read-only (where the kernel allows it)
    pids_max: int | None = None  # as root: a pids cgroup of this size (where one can be made)
    strict: bool = False  # the reporter refuses hooks and patches from outside pytest and tests/

    def supervise(self, argv: list[str], pass_fds: tuple = (), seconds: float = 1e9):
        """Start the supervisor (sandbox.py) running `argv` this way."""
        config = {"argv": argv, "cwd": str(self.cwd), "env": self.env,
                  "pass_fds": list(pass_fds), "output": str(self.output), "uid": self.uid,
                  "gid": self.gid, "limits": self.limits, "no_network": self.no_network,
                  "writable": self.writable, "pids_max": self.pids_max,
                  "reveal": _private_folders() if self.uid is not None else None,
                  "deadline": max(1.0, seconds)}
        return subprocess.Popen(
            [sys.executable, "-I", "-S", str(SANDBOX_SCRIPT), json.dumps(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=pass_fds, start_new_session=True)


def _in_place(project: Path, tmp: Path, exercise: str) -> _How:
    """status: the copy's own tests and configuration, the learner's own environment."""
    from .exercises import _env_first_on_path

    env = {**_env_first_on_path(project),
           "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    env.pop("MINIBERT_BACKEND", None)  # on the CPU: the same for every learner
    files = _exercise_test_files(project) or ["tests"]
    return _How(project, [sys.executable], [*files, "--exercise", exercise, "-q",
                                            "--tb=line", "-p", "no:cacheprovider",
                                            "-o", "addopts="], env, tmp / "pytest-output.txt")


def run_tests(project: Path, timeout: float = DEFAULT_TIMEOUT,
              collect_timeout: float = COLLECT_TIMEOUT, *, exercise: str = "all",
              how: _How | None = None, expected: dict | None = None,
              deadline: float | None = None, stop: threading.Event | None = None,
              guard: Callable[[], None] | None = None) -> list[TestResult]:
    """Run the exercise tests of `project` (its own minibert first on the path), each at most
    `timeout` seconds; returns one result per test, in collection order.

    With `expected` ({node id: exercises}), exactly those tests are scored, whatever the run
    collects: a test it hides is "not run". `deadline` (time.monotonic()) ends the whole run;
    `stop` (a threading.Event) ends it with Stopped; `guard()` is called after each pytest run
    and raises Tampered if the grading folder changed."""
    project = Path(project).resolve()
    if how is None and not (project / "tests" / "conftest.py").is_file():
        raise ExerciseError(f"{project} has no tests/conftest.py: give the folder written by "
                            "`minibert exercises build`")
    results = {n: TestResult(n, list(tags), required=True) for n, tags in (expected or {}).items()}
    with tempfile.TemporaryDirectory(prefix="minibert-progress-") as tmp:
        how = how or _in_place(project, Path(tmp), exercise)
        while True:
            finished = [n for n, r in results.items() if r.outcome != "not run"]
            end = _pytest_once(how, [f"--deselect={n}" for n in finished], results,
                               expected is not None, timeout, collect_timeout, deadline, stop)
            if guard:
                guard()
            if end["reason"] == "test timeout":
                results[end["running"]].outcome = "timeout"
                results[end["running"]].message = f"still running after {timeout:g} s (an " \
                                                  "endless loop?)"
                continue
            if end["reason"] == "exited" and end["running"] in results \
                    and results[end["running"]].outcome == "not run":
                r = results[end["running"]]  # the process ended inside this test: a crash,
                r.outcome = "error"  # os._exit(), or a resource limit; go on without it
                r.message = f"the test process ended during this test ({_exit(end)})"
                continue
            break
        if end["reason"] == "collect timeout":
            why = ("timeout", f"pytest did not finish collecting within {collect_timeout:g} s "
                              "(an endless loop at import?)")
        elif end["reason"] == "deadline":
            why = ("timeout", "the time limit for the whole copy ran out")
        elif not end["collected"]:
            why = ("error", "the tests could not start: " + _last_line(how.output))
        else:
            why = ("error", f"pytest stopped ({_exit(end)})")
        if not results:
            raise ExerciseError(f"{project}: no exercise test could be collected: {why[1]}")
        for r in results.values():
            if r.outcome == "not run" and (end["reason"] != "exited" or not end["collected"]
                                           or end["returncode"] not in (0, 1)):
                r.outcome, r.message = why
    return list(results.values())


def _exit(end: dict) -> str:
    code = end["returncode"]
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _last_line(output: Path) -> str:
    """The last non-empty line pytest printed, shortened and with control characters shown
    escaped (it can come from the learner's code)."""
    try:
        with open(output, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        lines = []
    line = lines[-1] if lines else "no output"
    return _cut("".join(c if c.isprintable() else repr(c)[1:-1] for c in line), 200)


def _pytest_once(how: _How, extra: list[str], results: dict, fixed: bool, timeout: float,
                 collect_timeout: float, deadline: float | None, stop) -> dict:
    """One pytest run under the supervisor, following its events until it ends or must be
    stopped. Returns {"reason": exited | test timeout | collect timeout | deadline,
    "running": node id or None, "collected": bool, "returncode": int or None}."""
    from .grade_plugin import sign

    key = secrets.token_bytes(32)
    events_r, events_w = os.pipe()
    key_r, key_w = os.pipe()
    os.write(key_w, key)  # 32 bytes fit in the pipe: the reporter reads them at its start
    os.close(key_w)
    argv = [*how.python, str(how.plugin), str(events_w), str(key_r),
            "strict" if how.strict else "loose", *how.pytest_args, *extra]
    try:
        supervisor = how.supervise(argv, (events_w, key_r),
                                   deadline - time.monotonic() if deadline else 1e9)
    finally:
        os.close(events_w)
        os.close(key_r)
    state: dict[str, Any] = {"seq": 0, "buffer": b"", "running": None, "collected": False,
                             "finished": None}
    started = None  # the supervisor's first line: {"started": pid, "cgroup": path or None}

    def take(chunk: bytes) -> None:
        state["buffer"] += chunk
        *lines, state["buffer"] = state["buffer"].split(b"\n")
        if len(state["buffer"]) > 1 << 16:
            raise Tampered("the result channel holds a line no reporter writes")
        for line in lines:
            mac, _, text = line.decode("ascii", "replace").partition(" ")
            if not hmac.compare_digest(mac, sign(key, state["seq"], text)):
                raise Tampered("a line in the grader's result channel was not written by its "
                               "reporter: the copy's code wrote into it")
            state["seq"] += 1
            _event(json.loads(text), results, fixed, state)

    try:
        with open(events_r, "rb", buffering=0, closefd=True) as events:
            os.set_blocking(events_r, False)
            line = supervisor.stdout.readline()
            if not line:
                err = supervisor.stderr.read().decode("utf-8", "replace").strip()
                raise ExerciseError("the sandbox could not start pytest: "
                                    + (err.splitlines()[-1] if err else "no message"))
            started = json.loads(line)
            began, eof = time.monotonic(), False
            while True:
                if not eof:
                    select.select([events], [], [], 0.05)
                    chunk = events.read(1 << 16)
                    if chunk:
                        take(chunk)
                    eof = chunk == b""
                else:
                    time.sleep(0.05)
                if supervisor.poll() is not None:
                    while chunk := events.read(1 << 16):  # everything written before it ended
                        take(chunk)
                    reason = "exited"
                    break
                now = time.monotonic()
                if stop is not None and stop.is_set():
                    _end(supervisor, started)
                    raise Stopped
                running = state["running"]
                if state["finished"] and now - state["finished"][0] > LINGER:
                    reason = "exited"  # every result is in; a thread or child keeps it alive
                elif not state["collected"] and now - began > collect_timeout:
                    reason = "collect timeout"
                elif deadline is not None and now > deadline:
                    reason = "deadline"
                elif running and now - running[1] > timeout and running[0] in results \
                        and results[running[0]].outcome == "not run":
                    reason = "test timeout"
                else:
                    continue
                _end(supervisor, started)
                break
    except BaseException:
        _end(supervisor, started)
        raise
    final = {}
    for line in supervisor.stdout.read().decode("utf-8", "replace").splitlines():
        final = json.loads(line)
    if started and started.get("cgroup"):  # the supervisor removes it; if it could not yet:
        from .sandbox import remove_cgroup

        remove_cgroup(started["cgroup"])
    if "returncode" not in final:  # the supervisor was killed: end what it could not
        _kill_leftovers(started["started"], started.get("cgroup"))
        raise Tampered("the sandbox's supervisor was killed before it could report (by the "
                       "copy's code?): its results are not trusted")
    running = state["running"][0] if state["running"] else None
    returncode = state["finished"][1] if state["finished"] else final.get("returncode")
    return {"reason": reason, "running": running, "collected": state["collected"],
            "returncode": returncode}


def _event(e: dict, results: dict, fixed: bool, state: dict) -> None:
    """Apply one event of the reporter to the results."""
    kind, nodeid = e.get("event"), e.get("nodeid")
    if kind == "collected" and not fixed:
        results.setdefault(nodeid, TestResult(str(nodeid), list(e["exercises"])))
    elif kind == "collection done":
        state["collected"] = True
    elif kind == "start":
        state["running"] = (nodeid, time.monotonic())
    elif kind == "result" and nodeid in results:
        r = results[nodeid]
        if state["running"] and state["running"][0] == nodeid and e["when"] == "teardown":
            state["running"] = None
        if not (e["outcome"] == "passed" and r.outcome in ("failed", "error")):
            r.outcome = "error" if e["when"] != "call" and e["outcome"] == "failed" \
                else e["outcome"]
            r.message = e["message"]
    elif kind == "tampered":
        raise Tampered("the copy's code changed how pytest reports: "
                       + "; ".join(map(str, e.get("what", []))))
    elif kind == "finished":
        state["running"], state["finished"] = None, (time.monotonic(), e.get("exitstatus"))


def _kill_leftovers(child: int, cgroup: str | None) -> None:
    from .sandbox import cgroup_members, remove_cgroup

    for _ in range(3):
        for pid in cgroup_members(cgroup):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.killpg(child, signal.SIGKILL)
        except OSError:
            pass
    remove_cgroup(cgroup)


def _end(supervisor: subprocess.Popen, started: dict | None) -> None:
    """Ask the supervisor to kill everything and wait for it; if it does not answer (a learner
    with the teacher's user id could stop it), kill it and the process group ourselves."""
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(15)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()
            if started:
                _kill_leftovers(started["started"], started.get("cgroup"))


def progress(project: Path, timeout: float = DEFAULT_TIMEOUT,
             reference: Path | None = None, exercise: str = "all") -> list[ExerciseProgress]:
    """Every exercise of the catalogue with its tests' results, in course order.

    The catalogue comes from `reference` (a teacher's project), or else from the copy's own
    exercises/README.md."""
    return _by_exercise(run_tests(project, timeout, exercise=exercise),
                        catalogue(reference or project))


# -- grading many copies: each in a fresh grading folder, in the sandbox ----------------------


_PROBE = """import json, os, sys
found = {"uid": os.getuid()}
for name, path in (("outside", sys.argv[1]), ("home", os.path.join(os.environ["HOME"], "p"))):
    try:
        open(path, "w").close()
        os.unlink(path)
        found[name] = True
    except OSError:
        found[name] = False
with open("/proc/net/dev") as f:
    found["network"] = any(line.split(":")[0].strip() != "lo" for line in f.readlines()[2:])
print(json.dumps(found))
"""


def sandbox_mode(reference: Path | None = None) -> dict:
    """What isolation grading gets on this machine, found by running a probe the way a copy
    runs: {"uid": the user id copies run as, "switched": whether that is a user of their own,
    "outside": whether a copy can write outside its grading folder, "network": whether it
    has a network interface}. As root, copies run as a user of their own when that user can
    start this Python (not when it lives in a private folder such as /root)."""
    reference = Path(reference or project_root()).resolve()
    tries = [True, False] if os.geteuid() == 0 else [False]
    for switch in tries:
        with _GradingFolder(reference, reference, 998, [], as_uid=switch) as folder:
            how = folder.how("all", 60)
            outside = Path(tempfile.gettempdir()) / f"minibert-probe-{secrets.token_hex(8)}"
            supervisor = how.supervise([sys.executable, "-I", "-B", "-c", _PROBE, str(outside)],
                                       seconds=60)
            supervisor.communicate()
            outside.unlink(missing_ok=True)
            lines = how.output.read_text(encoding="utf-8", errors="replace").splitlines()
            try:
                found = json.loads(lines[-1])
            except (IndexError, ValueError):
                continue  # this Python does not start as that user: try the next way
            return {**found, "switched": switch}
    raise ExerciseError("the sandbox cannot start Python (" + (lines[-1] if lines else
                        "no output") + "): grade in the container shown in exercises/README.md")


def sandbox_summary(mode: dict) -> str:
    """What isolation `grade` gives (see sandbox_mode()), in a few lines for the teacher."""
    lines = ["sandbox: each copy is graded in a fresh folder (the teacher's tests, pytest "
             "configuration and package, with only the copy's exercise files), in its own "
             "session, with a minimal environment and limits on CPU time, memory, file size "
             "and processes; every process it starts is killed when it ends."]
    if mode["switched"]:
        lines.append(f"  each copy runs as a user of its own ({SANDBOX_UID_BASE}+): it cannot "
                     "signal the grader or other copies, nor write their files.")
    elif os.geteuid() == 0:
        lines.append("  copies run as root without capabilities (a user of their own cannot "
                     f"start {sys.executable}, which is in a private folder): they could "
                     "still signal your other processes.")
    else:
        lines.append("  copies run with YOUR user id: they can signal your processes and "
                     "read what you can.")
    lines.append("  writing outside its grading folder: " +
                 ("blocked (every other mount is read-only)" if not mode["outside"] else
                  "NOT blocked (no mount namespace here)"))
    lines.append("  network: " + ("none" if not mode["network"] else "NOT blocked"))
    if mode["outside"] or not mode["switched"]:
        lines.append("  For untrusted copies, grade in a container (exercises/README.md).")
    return "\n".join(lines)


def display_names(copies: list[Path]) -> list[str]:
    """Each copy's name in the report: its folder name, or as many folders of its path as make
    it unique (class1/alice and class2/alice). A folder given twice is refused."""
    resolved = [Path(c).resolve() for c in copies]
    seen: dict[Path, Path] = {}
    for given, path in zip(copies, resolved, strict=True):
        if path in seen:
            raise ExerciseError(f"{given} is given twice (as {seen[path]} too): grade each "
                                "copy once")
        seen[path] = given
    names = []
    for path in resolved:
        others = [p.parts for p in resolved if p != path]
        k = 1
        while any(o[-k:] == path.parts[-k:] for o in others):
            k += 1
        names.append("/".join(path.parts[-k:]))
    return names


def _read_learner_file(copy: Path, rel: Path) -> bytes | None:
    """The copy's version of one exercise file, or None when it has none. A symbolic link on
    the way (to the teacher's solution, say), anything but a plain file, or a file over
    MAX_SOURCE_BYTES is refused."""
    path = Path(copy)
    for part in rel.parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            raise ExerciseError(f"{path} is a symbolic link; a copy's files must be its own "
                                "(nothing of this copy was run)")
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_SOURCE_BYTES:
        raise ExerciseError(f"{path} is not a plain file of at most {MAX_SOURCE_BYTES} bytes "
                            "(nothing of this copy was run)")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_SOURCE_BYTES)


def _fingerprint(*folders: Path) -> dict[str, str]:
    """{path: sha256 of its content} for every file under the folders (links by target)."""
    found = {}
    for folder in folders:
        for d, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = os.path.join(d, name)
                if os.path.islink(path):
                    found[path] = "link to " + os.readlink(path)
                elif name in files:
                    try:
                        with open(path, "rb") as f:
                            found[path] = hashlib.sha256(f.read()).hexdigest()
                    except OSError as e:
                        found[path] = f"unreadable: {e.strerror}"
    return found


def _remove(folder: Path) -> None:
    """Remove a grading folder, whatever permissions the copy's code left in it (links are
    never followed)."""
    for d, dirs, _ in os.walk(folder):
        for name in dirs:
            path = os.path.join(d, name)
            if not os.path.islink(path):
                try:
                    os.chmod(path, 0o700)
                except OSError:
                    pass
    shutil.rmtree(folder, ignore_errors=True)


def _tasks_of(uid: int) -> int:
    """How many processes and threads `uid` runs now (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                count += int(fields.get("Threads", "1"))
        except (OSError, KeyError, ValueError):
            continue
    return count


def _private_folders() -> dict[str, list[str]]:
    """{private folder: [folders to keep below it]}: the first folder on the way to this
    Python (its executable, prefixes and site-packages) that other users cannot enter, and the
    folder below it on that way. The sandbox covers the private one and puts back only those
    (sandbox.reveal()), so that a user of the copy's own can start Python."""
    import site

    wanted = {os.path.realpath(p) for p in (sys.executable, sys.prefix, sys.base_prefix,
                                            *site.getsitepackages())}
    found: dict[str, list[str]] = {}
    for path in sorted(wanted):
        parts = Path(path).parts
        for i in range(1, len(parts) - 1):
            folder = Path(*parts[: i + 1])
            try:
                private = not os.stat(folder).st_mode & stat.S_IXOTH
            except OSError:
                break
            if private:
                keep = found.setdefault(str(folder), [])
                if str(Path(*parts[: i + 2])) not in keep:
                    keep.append(str(Path(*parts[: i + 2])))
                break
    return found


def _exercise_test_files(project: Path) -> list[str]:
    """The test files that tag tests with an exercise (collecting only those is much faster
    than collecting the whole suite)."""
    return sorted(str(p.relative_to(project)) for p in (project / "tests").glob("test_*.py")
                  if "mark.exercise" in p.read_text(encoding="utf-8", errors="replace"))


class _GradingFolder:
    """A fresh folder for one copy: project/ (the teacher's minibert, tests/ and
    pyproject.toml, with the copy's exercise files in place of the teacher's; an exercise file
    the copy lacks stays stubbed), grader/ (the reporter) and home/ (the only place the copy's
    code may write: its HOME and TMPDIR). As root it belongs to root, readable by the copy's
    own group; home/ belongs to the copy's user."""

    def __init__(self, reference: Path, copy: Path, index: int, files: list[Path],
                 as_uid: bool):
        from .exercises import copy_project

        self.uid = self.gid = SANDBOX_UID_BASE + index % 1000 if as_uid else None
        self.top = Path(tempfile.mkdtemp(prefix="minibert-grade-"))
        try:
            self.project, self.grader = self.top / "project", self.top / "grader"
            self.home = self.top / "home"
            copy_project(reference, self.project, stub=None, parts=GRADING_PARTS)
            self.missing = []
            for rel in files:
                data = _read_learner_file(copy, rel)
                if data is None:
                    self.missing.append(str(rel))
                else:
                    (self.project / rel).write_bytes(data)
            self.grader.mkdir()
            shutil.copyfile(PLUGIN_SCRIPT, self.grader / PLUGIN_SCRIPT.name)
            (self.home / "tmp").mkdir(parents=True)
            # read-only for the copy's code (as root: another user; otherwise a tripwire
            # that guard() checks)
            dirs, files_mode = (0o755, 0o644) if as_uid else (0o555, 0o444)
            for folder in (self.project, self.grader):
                for d, _, names in os.walk(folder, topdown=False):
                    for name in names:
                        os.chmod(os.path.join(d, name), files_mode)
                    os.chmod(d, dirs)
            if self.uid is not None and self.gid is not None:
                os.chown(self.top, 0, self.gid)
                os.chmod(self.top, 0o750)
                for path in (self.home, self.home / "tmp"):
                    os.chown(path, self.uid, self.gid)
                    os.chmod(path, 0o700)
            self.fingerprint = _fingerprint(self.project, self.grader)
        except BaseException:
            _remove(self.top)
            raise

    def how(self, exercise: str, copy_timeout: float) -> _How:
        env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                        "/usr/bin", "/bin"]),
               "HOME": str(self.home), "TMPDIR": str(self.home / "tmp"), "LANG": "C.UTF-8",
               "LC_ALL": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        uid = self.uid if self.uid is not None else os.getuid()
        limits = {**LIMITS, "cpu": int(copy_timeout) + 5,
                  "nproc": EXTRA_PROCESSES + (0 if self.uid is not None else _tasks_of(uid))}
        config = self.project / "pyproject.toml"
        args = ["-c", str(config), "--rootdir", str(self.project), "--confcutdir",
                str(self.project), "-p", "no:cacheprovider", "-o", "addopts=",
                *_exercise_test_files(self.project), "--exercise", exercise, "-q", "--tb=line"]
        return _How(self.project, [sys.executable, "-I", "-B"], args, env,
                    self.top / "pytest-output.txt", plugin=self.grader / PLUGIN_SCRIPT.name,
                    uid=self.uid, gid=self.gid, limits=limits, no_network=True,
                    writable=[str(self.home)], pids_max=EXTRA_PROCESSES, strict=True)

    def guard(self) -> None:
        now = _fingerprint(self.project, self.grader)
        if now != self.fingerprint:
            changed = sorted(set(now) ^ set(self.fingerprint)
                             | {p for p in now if now[p] != self.fingerprint.get(p, now[p])})
            shown = ", ".join(os.path.relpath(p, self.top) for p in changed[:3])
            raise Tampered(f"the copy's code changed the grading folder ({shown}): its results "
                           "are not trusted")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _remove(self.top)


class GradingInterrupted(Exception):
    """Ctrl-C or SIGTERM during grade. `rows` holds the copies graded completely before it;
    every process of the others has been killed."""

    def __init__(self, rows: list[dict], graded: int, total: int):
        super().__init__(f"stopped: {graded} of {total} copies graded")
        self.rows, self.graded, self.total = rows, graded, total


def _by_exercise(results: list[TestResult], entries: dict) -> list[ExerciseProgress]:
    by_id = {i: ExerciseProgress(i, e.lesson, e.title) for i, e in entries.items()}
    for result in results:
        for i in result.exercises:
            by_id.setdefault(i, ExerciseProgress(i, "?", "(not in exercises/README.md)"))
            by_id[i].tests.append(result)
    return sorted(by_id.values(), key=lambda p: course_order(p.id))


def _grade_copy(reference: Path, copy: Path, index: int, files: list[Path], expected, *,
                timeout: float, copy_timeout: float, exercise: str, stop,
                as_uid: bool) -> list[TestResult]:
    deadline = time.monotonic() + copy_timeout
    with _GradingFolder(reference, copy, index, files, as_uid) as folder:
        return run_tests(folder.project, timeout, how=folder.how(exercise, copy_timeout),
                         expected=expected, deadline=deadline, stop=stop, guard=folder.guard)


def grade(copies: list[Path], timeout: float = DEFAULT_TIMEOUT, reference: Path | None = None,
          workers: int = 2, log: Callable[[str], object] = print, *,
          copy_timeout: float = DEFAULT_COPY_TIMEOUT,
          exercise: str = "all") -> list[dict]:
    """One row per learner and exercise (plus a "total" row per learner). `tests` lists each
    test with its points ("name=1;other=0"). A copy that cannot be graded gets one error row;
    the others are graded all the same.

    The tests graded are those the reference (the teacher's project) passes here, run the same
    way; each copy is graded in a _GradingFolder in the sandbox (see sandbox_summary()), for
    at most `copy_timeout` seconds in all. Ctrl-C raises GradingInterrupted with the rows of
    the copies graded so far."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from .exercises import find_exercises

    reference = Path(reference or project_root()).resolve()
    copies = [Path(c) for c in copies]
    for c in copies:  # check every argument before any work starts
        if not (c / "minibert").is_dir():
            raise ExerciseError(f"{c} is not a learner copy (no minibert/ folder); give the "
                                "folders written by `minibert exercises build`")
    names = display_names(copies)
    known = find_exercises(reference)
    files = sorted({e.path for e in known})
    if exercise != "all" and exercise not in {e.id for e in known}:
        raise ExerciseError(f"unknown exercise {exercise!r}; known: "
                            + ", ".join(e.id for e in known))
    if not files:
        raise ExerciseError(f"{reference} has no exercise regions: grade from the teacher's "
                            "project (the one `minibert exercises build` copies)")
    entries = catalogue(reference)
    mode = sandbox_mode(reference)
    log(sandbox_summary(mode))
    stop = threading.Event()
    ask = dict(timeout=timeout, copy_timeout=copy_timeout, exercise=exercise, stop=stop,
               as_uid=mode["switched"])

    done: dict[int, list[dict]] = {}  # copy index -> its rows, once graded

    def one(index: int) -> None:
        copy, name = copies[index], names[index]
        try:
            rows = _by_exercise(_grade_copy(reference, copy, index, files, expected, **ask),
                                entries)
        except Stopped:
            raise
        except Exception as e:  # one broken copy never spoils the others' grades
            done[index] = [dict(learner=name, exercise="total", title="", points=0,
                                max_points=len(expected), tests="",
                                first_failure=f"not graded: {e}")]
            log(f"{name}: not graded: {e}")
            return
        out = [dict(learner=name, exercise=p.id, title=p.title, points=p.passed,
                    max_points=p.total,
                    tests=";".join(f"{t.nodeid.split('::')[-1]}={t.points}" for t in p.tests),
                    first_failure=p.hint) for p in rows if p.tests]
        out.append(dict(learner=name, exercise="total", title="",
                        points=sum(p.passed for p in rows),
                        max_points=sum(p.total for p in rows), tests="",
                        first_failure=f"{sum(p.done for p in rows)} of "
                                      f"{sum(bool(p.tests) for p in rows)} exercises done"))
        done[index] = out  # before the log line: a Ctrl-C after it keeps this copy's rows
        log(f"{name}: {out[-1]['points']} / {out[-1]['max_points']} points")

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        # the tests to grade: those the teacher's own solutions pass here, run the same way
        solved = _grade_copy(reference, reference, 999, files, None, **ask)
        expected = {r.nodeid: r.exercises for r in solved if r.outcome == "passed"}
        if not expected:
            why = solved[0].message if solved else "no test was collected"
            raise ExerciseError(f"the reference project {reference} passes none of its "
                                f"exercise tests in the sandbox: {why}")
        if len(expected) < len(solved):
            log(f"note: {len(solved) - len(expected)} exercise tests are skipped or fail with "
                "the reference solutions here; they are not graded")
        futures = {pool.submit(one, i): i for i in range(len(copies))}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()  # raises what one() did not catch
    except KeyboardInterrupt:
        stop.set()
        while True:  # a second Ctrl-C does not stop the clean-up
            try:
                pool.shutdown(wait=True, cancel_futures=True)
                break
            except KeyboardInterrupt:
                continue
        rows = [row for i in sorted(done) for row in done[i]]
        raise GradingInterrupted(rows, len(done), len(copies)) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [row for i in sorted(done) for row in done[i]]


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
