"""Headless Chromium for the tests of `rtrec report` (Debian's ``chromium`` package)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.clients.chromium import CHROMIUM, HEADLESS

#: Mark a test module that needs the browser: skipped, saying why, where it is missing.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile (``profile``, a new directory), no GPU, and
    nothing that reaches the network (a proxy at a closed port catches any request)."""
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            *HEADLESS,
            f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",  # lets the audio elements load their metadata
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
