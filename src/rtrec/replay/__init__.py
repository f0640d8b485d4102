"""Replay: rebuild a recorded session's conversation from its log, show it, check it.

    from rtrec.replay import rebuild, transcript, canonical_json, check_golden

    replay = rebuild(records)              # FrameRecords (or FrameColumns) of one session
    print(transcript(replay.state))        # the readable conversation
    replay.at("12.5s"), replay.state_at(120)   # time travel
    result = check_golden(canonical_json(replay.state, stable_ids=True, audio=source), path)

The reducer (``apply``/``fold``) is pure and imports neither trio, duckdb nor soundfile, and
neither does this package's ``__init__``: keep I/O-bound parts (playback server, driver) in
modules that callers import explicitly. ``rtrec.replay.testing`` builds log rows from event
dicts for tests. See docs/replay.md.
"""

from rtrec.replay._audio import AudioSource, MemoryAudio, audio_digest
from rtrec.replay._canonical import FORMAT, canonical_json, canonical_state
from rtrec.replay._diff import Change, ConversationDiff, diff_conversations
from rtrec.replay._golden import GoldenResult, GoldenStatus, check_golden
from rtrec.replay._reducer import INITIAL, apply, fold, order_items
from rtrec.replay._replay import Replay, rebuild
from rtrec.replay._rules import AnomalyKind
from rtrec.replay._state import (
    Anomaly,
    AudioRef,
    ClientEventRef,
    ConversationState,
    ErrorRecord,
    InputBuffer,
    InputRun,
    Item,
    Part,
    Placement,
    ResponseState,
    TextValue,
    Transcription,
)
from rtrec.replay._transcript import transcript

__all__ = [
    "FORMAT",
    "INITIAL",
    "Anomaly",
    "AnomalyKind",
    "AudioRef",
    "AudioSource",
    "Change",
    "ClientEventRef",
    "ConversationDiff",
    "ConversationState",
    "ErrorRecord",
    "GoldenResult",
    "GoldenStatus",
    "InputBuffer",
    "InputRun",
    "Item",
    "MemoryAudio",
    "Part",
    "Placement",
    "Replay",
    "ResponseState",
    "TextValue",
    "Transcription",
    "apply",
    "audio_digest",
    "canonical_json",
    "canonical_state",
    "check_golden",
    "diff_conversations",
    "fold",
    "order_items",
    "rebuild",
    "transcript",
]
