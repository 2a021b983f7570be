"""A pytest plugin for `exercises verify`: every selected test's exercise tags and outcome,
as JSON lines in the file named by $MINIBERT_OUTCOME_LOG.

    python -m pytest tests --exercise 6.1,6.2 -p minibert.course.outcome_log

One pytest run can then check several exercises: verify reads which tests belong to which
exercise and how each ended. (Grading learners' copies uses grade_plugin.py instead, which
also guards against tampering; verify runs the project's own code.)
"""

from __future__ import annotations

import json
import os
from typing import Any


def _write(**event: Any) -> None:
    path = os.environ.get("MINIBERT_OUTCOME_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")


def pytest_collection_finish(session: Any) -> None:
    for item in session.items:
        tags = sorted({m.args[0] for m in item.iter_markers("exercise") if m.args})
        _write(event="collected", nodeid=item.nodeid, exercises=tags)


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call" or report.outcome != "passed":  # a failed setup counts too
        crash = getattr(report.longrepr, "reprcrash", None)
        _write(event="result", nodeid=report.nodeid, outcome=report.outcome,
               message=crash.message.splitlines()[0] if crash and crash.message else "")
