"""Headless Chromium kept off the network (Debian's ``chromium`` package), for every test
that runs it: `rtrec report`'s pages (tests/browser.py) and the conformance page
(browser_client.py). Standard library only: browser_client.py runs as a script beside it."""

from __future__ import annotations

import shutil
from typing import Final

__all__ = ["CHROMIUM", "HEADLESS"]

#: The browser, or None where it is not installed.
CHROMIUM: Final = shutil.which("chromium") or shutil.which("chromium-browser")

#: Headless, no GPU, and no request of Chromium's own (QUIC, first-run, background
#: networking, component updates, sync); each run adds ``--user-data-dir`` for a fresh profile.
HEADLESS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
