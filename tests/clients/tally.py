"""The conformance suite's tally: per client, runs completed out of runs tried, and the time
the suite took, printed at the end of the pytest session.

The tests record their counts with ``record_property("conformance", {...})``; pytest (and
xdist, from its workers) hands every report to ``pytest_runtest_logreport`` in the process
that prints the summary, where tests/conftest.py registers a ``Tally``.
"""

from __future__ import annotations

from typing import Any

import pytest

PREFIX = "tests/clients/"


class Tally:
    """A pytest plugin: counts from the conformance tests' reports, then a summary section."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], tuple[int, int]] = {}
        self.start: float | None = None
        self.stop: float | None = None
        self.busy = 0.0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(PREFIX):
            return
        self.busy += report.duration
        self.start = report.start if self.start is None else min(self.start, report.start)
        self.stop = report.stop if self.stop is None else max(self.stop, report.stop)
        if report.when != "call":  # every phase's report carries the item's properties
            return
        for name, value in report.user_properties:
            if name == "conformance":
                key = (value["client"], value["kind"])
                done, tried = self.counts.get(key, (0, 0))
                self.counts[key] = (done + value["completed"], tried + value["tried"])

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.start is None or self.stop is None:
            return
        terminalreporter.section("rtrec conformance: playback runs completed / tried")
        for (client, kind), (done, tried) in sorted(self.counts.items()):
            terminalreporter.write_line(f"{client:28} {kind:14} {done:3} / {tried}")
        terminalreporter.write_line(
            f"suite time: {self.stop - self.start:.1f} s from the first test's start to the "
            f"last one's end ({self.busy:.1f} s of test time)"
        )
