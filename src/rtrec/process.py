"""Process-wide settings, applied only by an explicit call.

A library function never changes the interpreter's state: rtrec's recorder, writer and
reducer run with whatever the embedding program chose. A program that runs rtrec's relay
(``rtrec record`` does, from its command line) calls ``tune_process`` once, at start-up.
"""

from __future__ import annotations

import os
import sys

from rtrec.store.writer import RELAY_SWITCH_INTERVAL

__all__ = ["set_file_mask", "tune_process"]


def tune_process() -> None:
    """Tune this interpreter for relaying while the log writer's thread works beside it.

    Sets ``sys.setswitchinterval`` to ``RELAY_SWITCH_INTERVAL`` (1 ms, Python's default is
    5 ms): the writer's thread releases and retakes the GIL around every encoder, file and
    DuckDB call, and a relay task waiting for the GIL would otherwise wait up to 5 ms. At 80
    voice sessions that took p99 added latency from 9-20 ms to 8-10 ms
    (docs/bench_recorder.md). It affects every thread of the process, which is why no
    library function does it; call it once, before ``trio.run``.
    """
    sys.setswitchinterval(RELAY_SWITCH_INTERVAL)


def set_file_mask(mask: int) -> int:
    """Set the umask of the files and folders this process creates; returns the previous.

    The command line runs with 077 (files 0600, folders 0700: they hold conversations),
    unless ``--group-readable`` or ``--umask`` says otherwise. DuckDB creates the log and
    its ``.wal``, libsndfile the FLAC files: the umask is what reaches all of them.
    """
    return os.umask(mask)
