"""rtrec: record OpenAI Realtime API sessions and replay them.

The library API, in one namespace (docs/api.md)::

    async with rtrec.open_recorder("sim", db="rtrec.duckdb") as rec:
        ...  # point a client at rec.url
    for session in rtrec.read_sessions("rtrec.duckdb"):
        print(rtrec.transcript(rtrec.replay_session("rtrec.duckdb", session.session_id).state))

Each name is imported on first use, from the module that defines it: ``import rtrec`` loads
neither trio, DuckDB nor numpy, so ``rtrec --version`` and the pytest plugin start fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from rtrec._version import __version__

if TYPE_CHECKING:  # what the names below are, for type checkers and IDEs
    from rtrec.process import tune_process as tune_process
    from rtrec.recorder.open_recorder import RunningRecorder as RunningRecorder
    from rtrec.recorder.open_recorder import open_recorder as open_recorder
    from rtrec.recorder.proxy import ProxyOptions as ProxyOptions
    from rtrec.replay import Replay as Replay
    from rtrec.replay import canonical_json as canonical_json
    from rtrec.replay import check_golden as check_golden
    from rtrec.replay import diff_conversations as diff_conversations
    from rtrec.replay import rebuild as rebuild
    from rtrec.replay import transcript as transcript
    from rtrec.replay.index import index_session as index_session
    from rtrec.replay.playback import PlaybackOptions as PlaybackOptions
    from rtrec.replay.playback import load_recording as load_recording
    from rtrec.replay.playback import serve_playback as serve_playback
    from rtrec.replay.sessions import replay_session as replay_session
    from rtrec.replay.threaded import run_in_thread as run_in_thread
    from rtrec.schemas.errors import RtrecError as RtrecError
    from rtrec.simulator import load_scenario as load_scenario
    from rtrec.simulator import serve_simulator as serve_simulator
    from rtrec.store.bundle import export_session as export_session
    from rtrec.store.bundle import import_bundle as import_bundle
    from rtrec.store.reader import LogAudio as LogAudio
    from rtrec.store.reader import SessionInfo as SessionInfo
    from rtrec.store.reader import open_log_reader as open_log_reader
    from rtrec.store.reader import read_frame_columns as read_frame_columns
    from rtrec.store.reader import read_frames as read_frames
    from rtrec.store.reader import read_sessions as read_sessions
    from rtrec.store.reader import read_streams as read_streams
    from rtrec.store.reader import resolve_session as resolve_session

#: Each exported name and the module it is imported from on first use.
_EXPORTS: Final = {
    # record
    "open_recorder": "rtrec.recorder.open_recorder",
    "RunningRecorder": "rtrec.recorder.open_recorder",
    "ProxyOptions": "rtrec.recorder.proxy",
    "tune_process": "rtrec.process",
    "serve_simulator": "rtrec.simulator",
    "load_scenario": "rtrec.simulator",
    # read a log
    "open_log_reader": "rtrec.store.reader",
    "read_sessions": "rtrec.store.reader",
    "resolve_session": "rtrec.store.reader",
    "read_frames": "rtrec.store.reader",
    "read_frame_columns": "rtrec.store.reader",
    "read_streams": "rtrec.store.reader",
    "SessionInfo": "rtrec.store.reader",
    "LogAudio": "rtrec.store.reader",
    "export_session": "rtrec.store.bundle",
    "import_bundle": "rtrec.store.bundle",
    "index_session": "rtrec.replay.index",
    # replay
    "replay_session": "rtrec.replay.sessions",
    "rebuild": "rtrec.replay",
    "Replay": "rtrec.replay",
    "transcript": "rtrec.replay",
    "canonical_json": "rtrec.replay",
    "check_golden": "rtrec.replay",
    "diff_conversations": "rtrec.replay",
    # play back
    "serve_playback": "rtrec.replay.playback",
    "load_recording": "rtrec.replay.playback",
    "PlaybackOptions": "rtrec.replay.playback",
    # from asyncio code
    "run_in_thread": "rtrec.replay.threaded",
    "RtrecError": "rtrec.schemas.errors",
}

__all__ = [
    "LogAudio",
    "PlaybackOptions",
    "ProxyOptions",
    "Replay",
    "RtrecError",
    "RunningRecorder",
    "SessionInfo",
    "__version__",
    "canonical_json",
    "check_golden",
    "diff_conversations",
    "export_session",
    "import_bundle",
    "index_session",
    "load_recording",
    "load_scenario",
    "open_log_reader",
    "open_recorder",
    "read_frame_columns",
    "read_frames",
    "read_sessions",
    "read_streams",
    "rebuild",
    "replay_session",
    "resolve_session",
    "run_in_thread",
    "serve_playback",
    "serve_simulator",
    "transcript",
    "tune_process",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
