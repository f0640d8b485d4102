"""``rtrec show SESSION``: a session's summary, transcript and latency table in the terminal.

It joins the two halves of rtrec, so it lives in the CLI layer: the figures come from the
SQL views (``session_summary``, ``turns``; docs/sql.md), the transcript from the replay
reducer folding the session's frames (``rtrec.replay.transcript``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import click
from rich.table import Table

from rtrec.cli.common import (
    Column,
    console,
    fit_table,
    output_width,
    print_unbounded,
    session_log,
    trouble,
    wrap_hanging,
)
from rtrec.cli.lake import lake_session
from rtrec.cli.options import db_option
from rtrec.replay import rebuild, transcript
from rtrec.store.reader import open_log_reader, read_frame_columns

__all__ = ["show_command"]

_SUMMARY: Final = (
    ("started_at", "started", "{:%Y-%m-%d %H:%M:%S} UTC"),
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


#: The turns table: what fits 80 columns first (priority 1), the measured steps next.
_TURN_COLUMNS: Final = (
    Column("turn", justify="right"),
    Column("response", priority=3),
    Column("speech end", priority=2, justify="right"),
    Column("created", priority=2, justify="right"),
    Column("first audio", justify="right"),
    Column("first text", priority=2, justify="right"),
    Column("done", justify="right"),
    Column("speech end → audio", justify="right"),
    Column("created → audio", justify="right"),
)


@click.command("show")
@click.argument("session")
@db_option()
@click.option("--wide", is_flag=True, help="Every column of the turns table, whole ids.")
@lake_session
def show_command(session: str, db: Path, wide: bool) -> None:
    """Print SESSION's summary, transcript (with item ids) and per-turn latencies (ms).

    SESSION is a session id, a unique prefix, or a bundle directory.
    """
    with session_log(session, db) as (log_path, sid), trouble():
        with open_log_reader(log_path) as log, log.held():
            summary = log.rows("SELECT * FROM session_summary WHERE session_id = ?", [sid])
            turns = log.rows(_TURNS, [sid])
            frames = read_frame_columns(log, sid)
        state = rebuild(frames).state
    out = console()
    width = None if wide else output_width(out)
    out.print(f"[bold]session {sid}[/bold]")
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    for key, label, fmt in _SUMMARY:
        value = summary[0][key] if summary else None
        facts.add_row(label, "" if value is None else fmt.format(value))
    out.print(facts)
    out.print()
    text = transcript(state, item_ids=True).rstrip("\n")
    out.print(wrap_hanging(text, width), markup=False, soft_wrap=True)
    out.print()
    rows = [
        [
            str(t["turn"]),
            t["response_id"] or "",
            _ms(t["speech_end_ms"]),
            _ms(t["response_created_ms"]),
            _ms(t["first_audio_ms"]),
            _ms(t["first_transcript_ms"]),
            _ms(t["response_done_ms"]),
            _ms(t["speech_end_to_first_audio_ms"]),
            _ms(t["created_to_first_audio_ms"]),
        ]
        for t in turns
    ]
    columns = _TURN_COLUMNS if wide else [c for c in _TURN_COLUMNS if c.priority < 3]
    table, dropped = fit_table(
        columns,
        [
            r if wide else [c for c, col in zip(r, _TURN_COLUMNS, strict=True) if col.priority < 3]
            for r in rows
        ],
        width=width,
    )
    out.print("turns (ms since the session started)")
    print_unbounded(out, table)
    if dropped or not wide:
        out.print("(--wide adds " + ", ".join([*dropped, "the response ids"]) + ")")
