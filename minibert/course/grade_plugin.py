"""The grader's own pytest reporter: which tests exist, which one runs, how each ended.

`minibert exercises status/grade` start pytest through this file, as a script:

    python grade_plugin.py EVENT_FD KEY_FD pytest-arguments...

Before pytest loads any conftest or test module (so before any line of the learner's code
runs), it reads a random per-run key from KEY_FD (a pipe the grader filled) and closes it.
Each event then goes to EVENT_FD (a pipe only the grader reads) as one line,
``<hmac> <json>``, where the HMAC-SHA256 covers the event's sequence number and its text. A
line the learner's code writes into that pipe (it can find the descriptor) has no valid HMAC
and the grader marks the copy as tampered with instead of believing it. The key only lives
in this process's memory, where code running in the same process could still read it: see
"What the sandbox does not protect against" in exercises/README.md.

This file imports nothing from minibert (it runs before the copy's minibert is on the path).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys

MESSAGE_CHARS = 300  # one event stays far below PIPE_BUF (4096 bytes): each write is atomic


def sign(key: bytes, seq: int, text: str) -> str:
    return hmac.new(key, f"{seq}:{text}".encode(), hashlib.sha256).hexdigest()


class Reporter:
    def __init__(self, fd: int, key: bytes):
        self._fd, self._key, self._seq = fd, key, 0

    def _send(self, **event) -> None:
        if "nodeid" in event and len(event["nodeid"]) > 1000:
            return  # a node id too long to send atomically: the grader counts it as not run
        text = json.dumps(event, ensure_ascii=True)
        line = f"{sign(self._key, self._seq, text)} {text}\n".encode()
        self._seq += 1
        try:
            os.write(self._fd, line)
        except OSError:
            pass  # the grader stopped reading (or the pipe was closed): it sees that itself

    def pytest_collection_finish(self, session):
        for item in session.items:
            tags = sorted({m.args[0] for m in item.iter_markers("exercise") if m.args})
            self._send(event="collected", nodeid=item.nodeid, exercises=tags)
        self._send(event="collection done", count=len(session.items))

    def pytest_runtest_logstart(self, nodeid, location):
        self._send(event="start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.outcome != "passed":  # a failed setup counts too
            message = ""
            if report.outcome != "passed":
                crash = getattr(report.longrepr, "reprcrash", None)
                lines = (crash.message if crash else str(report.longrepr)).strip().splitlines()
                message = lines[0][:MESSAGE_CHARS] if lines else ""
            self._send(event="result", nodeid=report.nodeid, when=report.when,
                       outcome=report.outcome, message=message)

    def pytest_sessionfinish(self, session, exitstatus):
        self._send(event="finished", exitstatus=int(exitstatus))


def main(argv: list[str]) -> int:
    event_fd, key_fd = int(argv[0]), int(argv[1])
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

    return int(pytest.main(argv[2:], plugins=[Reporter(event_fd, key)]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
