"""Replay a session straight from a log: find it, read its rows, fold them."""

from __future__ import annotations

from pathlib import Path

from rtrec.replay._replay import Replay, rebuild
from rtrec.store.reader import LogReader, open_log_reader, read_frame_columns, resolve_session

__all__ = ["replay_session"]


def replay_session(log: LogReader | Path | str, session: str) -> Replay:
    """Fold one session of a log into a ``Replay`` (its state, time travel, transcript).

    Args:
        log: an open ``LogReader``, or a log's path (it may be being recorded).
        session: a session id, or a prefix that names one session.

    Raises:
        LogNotFound, NotAnRtrecLog, LogTooNew: the log cannot be read.
        SessionNotFound: no session, or more than one, matches ``session``.
    """
    if not isinstance(log, LogReader):
        with open_log_reader(log) as reader:  # one open for the lookup and the read
            return replay_session(reader, session)
    return rebuild(read_frame_columns(log, resolve_session(log, session)))
