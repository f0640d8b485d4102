"""Set-up every test shares, and session-wide hooks: the conformance suite's tally
(tests/clients/tally.py) lives in the process that prints the summary, which under xdist
loads this file but not tests/clients/.

tests/userproject is a user's project with its own pytest.ini; tests/test_userproject.py
runs it as a separate pytest, so it is never collected here.
"""

from __future__ import annotations

import pytest

from .clients.tally import Tally

collect_ignore = ["userproject"]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Tally(), "rtrec-conformance-tally")


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests do not inherit the width of the terminal they run from: rtrec's tables and
    transcripts fit ``COLUMNS`` when it is set (pytest-xdist's workers get COLUMNS=80), so
    a test that wants a width sets it (tests/test_terminal_width.py)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
