"""``rtrec show SESSION``: a session's summary, transcript and latency table in the terminal.

It joins the two halves of rtrec, so it lives in the CLI layer: the figures come from the
SQL views (``session_summary``, ``turns``; docs/sql.md), the transcript from the replay
reducer folding the session's frames (``rtrec.replay.transcript``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import click
import duckdb
from rich.console import Console
from rich.table import Table

from rtrec.recorder.control import QueryRefused
from rtrec.recorder.options import db_option
from rtrec.recorder.reader import open_log_reader, read_frame_columns, resolve_session
from rtrec.replay import rebuild, transcript
from rtrec.schemas.errors import RtrecError

__all__ = ["show_command"]

_SUMMARY: Final = (
    ("started_at", "started", "{}"),
    ("duration_s", "duration", "{:.1f} s"),
    ("model", "model", "{}"),
    ("status", "status", "{}"),
    ("turns", "turns", "{}"),
    ("user_speech_s", "user speech", "{:.1f} s"),
    ("assistant_speech_s", "assistant speech", "{:.1f} s"),
    ("input_tokens", "input tokens", "{:,}"),
    ("output_tokens", "output tokens", "{:,}"),
    ("cached_tokens", "cached tokens", "{:,}"),
    ("cost_usd", "cost", "${:.4f}"),
    ("interruptions", "interruptions", "{}"),
    ("function_calls", "function calls", "{}"),
    ("errors", "errors", "{}"),
)

_TURNS: Final = """
SELECT turn, response_id, speech_end_ms, response_created_ms, first_audio_ms,
       first_transcript_ms, response_done_ms, speech_end_to_first_audio_ms,
       created_to_first_audio_ms
FROM turns WHERE session_id = ? ORDER BY turn
"""


def _ms(value: Any) -> str:
    return "" if value is None else f"{value:,.0f}"


@click.command("show")
@click.argument("session")
@db_option()
def show_command(session: str, db: Path) -> None:
    """Print SESSION's summary, transcript and per-turn latencies (times in ms)."""
    try:
        with open_log_reader(db) as log, log.held():
            sid = resolve_session(log, session)
            summary = log.rows("SELECT * FROM session_summary WHERE session_id = ?", [sid])
            turns = log.rows(_TURNS, [sid])
            frames = read_frame_columns(log, sid)
        state = rebuild(frames).state
    except (RtrecError, QueryRefused, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from None
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    facts = Table(title=f"session {sid}", show_header=False)
    facts.add_column(style="bold")
    facts.add_column()
    for key, label, fmt in _SUMMARY:
        value = summary[0][key] if summary else None
        facts.add_row(label, "" if value is None else fmt.format(value))
    console.print(facts)
    console.print(transcript(state), highlight=False, markup=False)
    table = Table(title="turns (ms since the session started)")
    for name in ("turn", "response", "speech end", "created", "first audio", "first text"):
        table.add_column(name, justify="left" if name == "response" else "right")
    for name in ("done", "speech end -> audio", "created -> audio"):
        table.add_column(name, justify="right")
    for t in turns:
        table.add_row(
            str(t["turn"]),
            t["response_id"] or "",
            _ms(t["speech_end_ms"]),
            _ms(t["response_created_ms"]),
            _ms(t["first_audio_ms"]),
            _ms(t["first_transcript_ms"]),
            _ms(t["response_done_ms"]),
            _ms(t["speech_end_to_first_audio_ms"]),
            _ms(t["created_to_first_audio_ms"]),
        )
    console.print(table)
