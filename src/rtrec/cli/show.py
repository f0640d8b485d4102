"""``rtrec show SESSION``: a session's summary, transcript and latency table in the terminal.

It joins the two halves of rtrec, so it lives in the CLI layer: the figures come from the
SQL views (``session_summary``, ``turns``; docs/sql.md), the transcript from the replay
reducer folding the session's frames (``rtrec.replay.transcript``). A GPT-Live session
(no turns) gets its own: both speakers on the session timeline (``rtrec.replay.live``), its
delegations with their latency and calls, and the replies' latency (the ``live_*`` views).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import click
from rich.console import Console
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
from rtrec.replay.live import fold_live, live_transcript
from rtrec.schemas.columns import FrameColumns
from rtrec.store.reader import LogReader, open_log_reader, read_frame_columns

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


#: A GPT-Live session's facts: billed by the second, no tokens or turns of its own.
_LIVE_SUMMARY: Final = (
    ("started_at", "started", "{:%Y-%m-%d %H:%M:%S} UTC"),
    ("duration_s", "duration", "{:.1f} s"),
    ("model", "model", "{}"),
    ("protocol", "protocol", "{} (GPT-Live)"),
    ("status", "status", "{}"),
    ("close_reason", "closed", "{}"),
    ("user_speech_s", "user speech", "{:.1f} s"),
    ("assistant_speech_s", "assistant speech", "{:.1f} s"),
    ("billed_s", "billed", "{:.1f} s"),
    ("cost_usd", "cost", "${:.4f}"),
    ("errors", "errors", "{}"),
)

_DELEGATIONS: Final = """
SELECT delegation_id, target, offset_ms, created_ms, answered_ms, latency_ms, calls, status
FROM live_delegations WHERE session_id = ? ORDER BY seq
"""
_CALLS: Final = """
SELECT name, arguments, output, tool_ms FROM live_calls WHERE session_id = ? ORDER BY seq
"""
_REPLIES: Final = """
SELECT utterance, speech_end_ms, reply_start_ms, speech_end_to_first_audio_ms
FROM live_replies WHERE session_id = ? ORDER BY utterance
"""
_MUTES: Final = (
    "SELECT muted_ms, muted_for_ms FROM live_mutes WHERE session_id = ? ORDER BY muted_seq"
)

_DELEGATION_COLUMNS: Final = (
    Column("delegation", priority=3),
    Column("to"),
    Column("at (timeline)", justify="right"),
    Column("created", priority=2, justify="right"),
    Column("answered", priority=2, justify="right"),
    Column("latency", justify="right"),
    Column("calls", justify="right"),
    Column("status"),
)
_REPLY_COLUMNS: Final = (
    Column("utterance", justify="right"),
    Column("speech end", justify="right"),
    Column("reply start", justify="right"),
    Column("speech end → audio", justify="right"),
)


def _facts(
    summary: list[dict[str, Any]],
    spec: tuple[tuple[str, str, str], ...],
    extra: list[tuple[str, str]] | None = None,
) -> Table:
    """The summary's figures named in ``spec`` (column, label, format), then ``extra``."""
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    for key, label, fmt in spec:
        value = summary[0].get(key) if summary else None
        facts.add_row(label, "" if value is None else fmt.format(value))
    for label, text in extra or []:
        facts.add_row(label, text)
    return facts


def _table(
    out: Console,
    title: str,
    columns: tuple[Column, ...],
    rows: list[list[str]],
    wide: bool,
    width: int | None,
) -> list[str]:
    """Print a titled table of the columns that fit: priority 3 only with --wide, the rest
    as ``width`` allows. Returns the headers left out."""
    keep = [c.priority < 3 or wide for c in columns]
    table, dropped = fit_table(
        [c for c, k in zip(columns, keep, strict=True) if k],
        [[v for v, k in zip(r, keep, strict=True) if k] for r in rows],
        width=width,
    )
    out.print(title)
    print_unbounded(out, table)
    return dropped


def _live_rows(log: LogReader, sid: str) -> dict[str, list[dict[str, Any]]]:
    """What ``rtrec show`` prints of a GPT-Live session, from the ``live_*`` views."""
    return {
        name: log.rows(query, [sid])
        for name, query in (
            ("delegations", _DELEGATIONS),
            ("calls", _CALLS),
            ("replies", _REPLIES),
            ("mutes", _MUTES),
        )
    }


def _show_live(
    sid: str,
    summary: list[dict[str, Any]],
    frames: FrameColumns,
    live: dict[str, list[dict[str, Any]]],
    wide: bool,
) -> None:
    """``rtrec show`` for a GPT-Live session."""
    delegations, calls, replies, mutes = (
        live["delegations"],
        live["calls"],
        live["replies"],
        live["mutes"],
    )
    state = fold_live(frames)
    out = console()
    width = None if wide else output_width(out)
    out.print(f"[bold]session {sid}[/bold]")
    muted = sum(m["muted_for_ms"] or 0 for m in mutes) / 1000
    extra = [
        ("delegations", str(len(delegations))),
        ("muted", f"{len(mutes)} time(s), {muted:.1f} s" if mutes else "never"),
    ]
    out.print(_facts(summary, _LIVE_SUMMARY, extra))
    out.print()
    text = live_transcript(state).rstrip("\n")
    out.print(wrap_hanging(text, width), markup=False, soft_wrap=True)
    if delegations:
        out.print()
        rows = [
            [
                d["delegation_id"] or "",
                d["target"] or "",
                _ms(d["offset_ms"]),
                _ms(d["created_ms"]),
                _ms(d["answered_ms"]),
                _ms(d["latency_ms"]),
                str(d["calls"]),
                d["status"] or ("answered" if d["answered_ms"] is not None else "unanswered"),
            ]
            for d in delegations
        ]
        _table(out, "delegations (ms)", _DELEGATION_COLUMNS, rows, wide, width)
    for c in calls:
        took = "" if c["tool_ms"] is None else f" in {c['tool_ms']:,.0f} ms"
        output = "no output" if c["output"] is None else c["output"]
        line = f"call {c['name']}({c['arguments'] or ''}) → {output}{took}"
        out.print(wrap_hanging(line, width), markup=False, soft_wrap=True)
    if replies:
        out.print()
        rows = [
            [
                str(r["utterance"]),
                _ms(r["speech_end_ms"]),
                _ms(r["reply_start_ms"]),
                _ms(r["speech_end_to_first_audio_ms"]),
            ]
            for r in replies
        ]
        _table(out, "replies (ms on the session timeline)", _REPLY_COLUMNS, rows, wide, width)


@click.command("show")
@click.argument("session")
@db_option()
@click.option("--wide", is_flag=True, help="Every column of the turns table, whole ids.")
@lake_session
def show_command(session: str, db: Path, wide: bool) -> None:
    """Print SESSION's summary, transcript (with item ids) and per-turn latencies (ms).

    A GPT-Live session shows both speakers in time order, its delegations with their
    latency and calls, and how long each reply took after the user stopped speaking.
    SESSION is a session id, a unique prefix, or a bundle directory.
    """
    with session_log(session, db) as (log_path, sid), trouble():
        with open_log_reader(log_path) as log, log.held():
            summary = log.rows("SELECT * FROM session_summary WHERE session_id = ?", [sid])
            frames = read_frame_columns(log, sid)
            # .get: a log of schema 4 not yet migrated has no protocol column in the summary
            live = (
                _live_rows(log, sid) if summary and summary[0].get("protocol") == "live" else None
            )
            turns = log.rows(_TURNS, [sid]) if live is None else []
        if live is not None:
            _show_live(sid, summary, frames, live, wide)
            return
        state = rebuild(frames).state
    out = console()
    width = None if wide else output_width(out)
    out.print(f"[bold]session {sid}[/bold]")
    out.print(_facts(summary, _SUMMARY))
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
    dropped = _table(out, "turns (ms since the session started)", _TURN_COLUMNS, rows, wide, width)
    if dropped or not wide:
        out.print("(--wide adds " + ", ".join([*dropped, "the response ids"]) + ")")
