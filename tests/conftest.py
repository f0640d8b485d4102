"""Set-up every test shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_inherited_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests do not inherit the width of the terminal they run from: rtrec's tables and
    transcripts fit ``COLUMNS`` when it is set (pytest-xdist's workers get COLUMNS=80), so
    a test that wants a width sets it (tests/test_terminal_width.py)."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
