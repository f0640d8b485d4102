"""Two tests sharing one bundle (the marker names it), run by two xdist workers at once:
the ``barrier`` fixture holds each until both have started, so both ask for the missing
bundle together. One must record it and the other play it back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from agent import ask

SHARED = "bundles/shared-turn"


@pytest.fixture
def barrier():
    """Wait until both tests of this module have started (two workers), up to 30 s."""
    folder = Path(os.environ["USERPROJECT_BARRIER"])
    (folder / os.environ.get("PYTEST_XDIST_WORKER", "main")).touch()
    deadline = time.monotonic() + 30
    while len(list(folder.iterdir())) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other worker never started")
        time.sleep(0.01)


def note(rtrec_playback):
    """Say whether this test recorded (no recording served) or played back."""
    what = "recorded" if rtrec_playback.recording is None else "played"
    with open(os.environ["USERPROJECT_LOG"], "a") as log:
        log.write(what + "\n")


@pytest.mark.rtrec_playback(SHARED)
async def test_first(barrier, rtrec_playback, client):
    """The shared turn."""
    assert (await ask(client, ["What time is it?"]))[0].startswith("You said")
    note(rtrec_playback)


@pytest.mark.rtrec_playback(SHARED)
async def test_second(barrier, rtrec_playback, client):
    """The same turn."""
    assert (await ask(client, ["What time is it?"]))[0].startswith("You said")
    note(rtrec_playback)
