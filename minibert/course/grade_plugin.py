"""The grader's own pytest reporter: which tests exist, which one runs, how each ended.

`minibert exercises status/grade` start pytest through this file, as a script:

    python grade_plugin.py EVENT_FD KEY_FD strict|loose pytest-arguments...

Before pytest loads any conftest or test module (so before any line of the learner's code
runs), it reads a random per-run key from KEY_FD (a pipe the grader filled) and closes it.
Each event then goes to EVENT_FD (a pipe only the grader reads) as one line,
``<hmac> <json>``, where the HMAC-SHA256 covers the event's sequence number and its text. A
line the learner's code writes into that pipe (it can find the descriptor) has no valid HMAC
and the grader marks the copy as tampered with instead of believing it. In `strict` mode
(grade) it also reports pytest hooks that come from anywhere but pytest and the project's
tests (a conftest's hooks pasted into an exercise file) and pytest internals replaced by
monkeypatching. The key only lives in this process's memory, where code running in the same
process could still read it, and those checks can be fooled by code written to fool them: see
"What the sandbox does not protect against" in exercises/README.md.

This file imports nothing from minibert (it runs before the copy's minibert is on the path).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

MESSAGE_CHARS = 300  # one event stays far below PIPE_BUF (4096 bytes): each write is atomic


def sign(key: bytes, seq: int, text: str) -> str:
    return hmac.new(key, f"{seq}:{text}".encode(), hashlib.sha256).hexdigest()


def _guarded() -> dict:
    """pytest's functions that decide an outcome, as they are before any learner code runs."""
    import _pytest.python
    import _pytest.reports
    import _pytest.runner

    return {"call_and_report": (_pytest.runner, "call_and_report"),
            "runtestprotocol": (_pytest.runner, "runtestprotocol"),
            "CallInfo.from_call": (_pytest.runner.CallInfo, "from_call"),
            "TestReport.from_item_and_call": (_pytest.reports.TestReport, "from_item_and_call"),
            "Function.runtest": (_pytest.python.Function, "runtest"),
            "pytest_pyfunc_call": (_pytest.python, "pytest_pyfunc_call")}


class Reporter:
    """strict (grade): hooks may only come from pytest, pluggy, this file and the grading
    folder's tests/, and pytest's outcome functions must be the ones seen at start; anything
    else is reported as tampering. A copy's code that imitates pytest's files or restores what
    it patched goes unseen (see the module docstring)."""

    def __init__(self, fd: int, key: bytes, strict: bool = False):
        self._fd, self._key, self._seq, self._strict = fd, key, 0, strict
        if strict:
            import _pytest
            import pluggy

            self._allowed = tuple(os.path.dirname(str(m.__file__)) + os.sep
                                  for m in (_pytest, pluggy)) + (os.path.abspath(__file__),)
            self._original = {name: getattr(owner, attr).__code__
                              for name, (owner, attr) in _guarded().items()}

    def _check(self, config: pytest.Config) -> None:
        """Report hooks from outside pytest and the project's tests, and patched internals."""
        if not self._strict:
            return
        tests = os.path.join(str(config.rootpath), "tests") + os.sep  # the project's tests
        found = []
        for name in dir(config.hook):
            caller = getattr(config.hook, name)
            for impl in getattr(caller, "get_hookimpls", list)():
                code = getattr(impl.function, "__code__", None)
                where = code.co_filename if code else repr(impl.function)
                if not where.startswith((*self._allowed, tests)):
                    found.append(f"{name} from {where}")
        for name, (owner, attr) in _guarded().items():
            if getattr(getattr(owner, attr, None), "__code__", None) is not self._original[name]:
                found.append(f"{name} was replaced")
        if found:
            self._send(event="tampered", what=sorted(set(found))[:5])

    def _send(self, **event: object) -> None:
        if len(str(event.get("nodeid", ""))) > 1000:
            return  # a node id too long to send atomically: the grader counts it as not run
        text = json.dumps(event, ensure_ascii=True)
        line = f"{sign(self._key, self._seq, text)} {text}\n".encode()
        self._seq += 1
        try:
            os.write(self._fd, line)
        except OSError:
            pass  # the grader stopped reading (or the pipe was closed): it sees that itself

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self._check(session.config)
        for item in session.items:
            tags = sorted({m.args[0] for m in item.iter_markers("exercise") if m.args})
            self._send(event="collected", nodeid=item.nodeid, exercises=tags)
        self._send(event="collection done", count=len(session.items))

    def pytest_configure(self, config: pytest.Config) -> None:
        self._config = config

    def pytest_runtest_logstart(self, nodeid: str, location: tuple) -> None:
        self._check(self._config)
        self._send(event="start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":  # a failed setup counts too
            message = ""
            if report.outcome != "passed":
                crash = getattr(report.longrepr, "reprcrash", None)
                lines = (crash.message if crash else str(report.longrepr)).strip().splitlines()
                message = lines[0][:MESSAGE_CHARS] if lines else ""
            self._send(event="result", nodeid=report.nodeid, when=report.when,
                       outcome=report.outcome, message=message)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._check(session.config)
        self._send(event="finished", exitstatus=int(exitstatus))


def main(argv: list[str]) -> int:
    """argv: EVENT_FD KEY_FD strict|loose pytest-arguments..."""
    event_fd, key_fd, strict = int(argv[0]), int(argv[1]), argv[2] == "strict"
    key = b""
    while len(key) < 32:
        chunk = os.read(key_fd, 32 - len(key))
        if not chunk:
            break
        key += chunk
    os.close(key_fd)
    if len(key) < 32:
        print("grade_plugin: no key from the grader", file=sys.stderr)
        return 3
    import pytest

    return int(pytest.main(argv[3:], plugins=[Reporter(event_fd, key, strict)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
