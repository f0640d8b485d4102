"""What every conformance client script shares: its command line and its report.

A client script runs ``python SCRIPT BASE_URL AUDIO_DIR RUNS [ARGS...]``: the conversation
RUNS times, one connection each, one after the other, and prints one JSON line per run
(``{"run": N, "ok": true, "seconds": S}`` or ``{"run": N, "ok": false, "error": "..."}``),
which tests/clients/harness.py reads. Standard library only: the Agents SDK's script runs in
an environment of its own without rtrec.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

#: How long one step of a conversation may wait for the server; a stalled playback fails the
#: run instead of hanging the suite.
STEP_TIMEOUT = 20.0
#: 20 ms of PCM16 at 24 kHz: the frame a microphone callback delivers.
FRAME = 24000 * 2 // 50

Conversation = Callable[[str, Path, list[str]], Awaitable[None]]


def main(conversation: Conversation) -> None:
    """Run ``conversation(base_url, audio_dir, extra_args)`` as often as the command line says."""
    url, audio, runs, extra = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

    async def all_runs() -> None:
        for run in range(runs):
            start = time.monotonic()
            try:
                await conversation(url, audio, extra)
            except Exception as exc:  # one run's failure is reported, and the next one runs
                line = {"run": run, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            else:
                line = {"run": run, "ok": True, "seconds": round(time.monotonic() - start, 3)}
            print(json.dumps(line), flush=True)

    asyncio.run(all_runs())
