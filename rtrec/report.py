"""``rtrec report SESSION -o FILE.html``: one self-contained page to look at a session.

Both waveforms on a shared time axis (the stereo mix of ``rtrec audio``: the user's audio
where it was spoken, the assistant's where it could be heard), transcript bubbles from the
replay reducer, response and latency markers from the ``turns`` view, interruptions and
function calls from their views, and every event of the log: hover a marker or bubble for
its time, click it (or a row of the event list) for the event's JSON. No network, no
external files: the data is embedded as JSON and drawn by a few lines of script into SVG.
"""

from __future__ import annotations

import html
import itertools
from pathlib import Path
from typing import Final

import click
import duckdb
import numpy as np
import orjson

from rtrec.recorder.control import QueryRefused
from rtrec.recorder.extract import MIX_RATE, timeline_mix
from rtrec.recorder.options import db_option
from rtrec.recorder.reader import (
    LogAudio,
    open_log_reader,
    read_frame_columns,
    read_streams,
    resolve_session,
)
from rtrec.replay import rebuild
from rtrec.schemas.errors import RtrecError

__all__ = ["build_report", "report_command"]

#: Columns of the waveform envelope (min/max per column).
ENVELOPE: Final = 1200
#: Characters of each event's payload kept in the page (audio is already cut out).
PAYLOAD_CHARS: Final = 4000


def _envelope(channel: np.ndarray, columns: int) -> list[list[float]]:
    """Min and max of each of ``columns`` slices, scaled to -1..1."""
    if len(channel) == 0:
        return []
    edges = np.linspace(0, len(channel), columns + 1).astype(int)
    out = []
    for a, b in itertools.pairwise(edges):
        piece = channel[a:b] if b > a else channel[a : a + 1]
        out.append([round(float(piece.min()) / 32768, 3), round(float(piece.max()) / 32768, 3)])
    return out


def build_report(db: Path, session: str) -> str:
    """The HTML page for one session of a log (live or not).

    Raises:
        RtrecError: no such session, or the log cannot be read.
    """
    with open_log_reader(db) as log, log.held():
        sid = resolve_session(log, session)
        frames = read_frame_columns(log, sid)
        summary = log.rows("SELECT * FROM session_summary WHERE session_id = ?", [sid])
        turns = log.rows("SELECT * FROM turns WHERE session_id = ? ORDER BY turn", [sid])
        interruptions = log.rows(
            "SELECT * FROM interruptions WHERE session_id = ? ORDER BY seq", [sid]
        )
        calls = log.rows("SELECT * FROM function_calls WHERE session_id = ? ORDER BY seq", [sid])
        chunks = log.rows(
            "SELECT seq, t_ns, audio_stream, audio_offset, audio_samples, audio_rate FROM events "
            "WHERE session_id = ? AND audio_stream IS NOT NULL AND audio_samples > 0 "
            "ORDER BY seq",
            [sid],
        )
        with LogAudio(read_streams(log, sid)) as audio:
            mix = timeline_mix(audio, chunks)
    state = rebuild(frames).state
    last_ms = max([t_ns / 1e6 for t_ns in frames.t_ns] + [len(mix) * 1000 / MIX_RATE, 1.0])
    bubbles = []
    # every item, also those the log shows outside the conversation (out-of-band, cut off)
    for item in sorted(state.items.values(), key=lambda i: i.first_seq):
        text = " ".join(t for p in item.parts for t in (p.text.value, p.transcript.value) if t) or (
            f"{item.name}({item.arguments.value or ''})"
            if item.type == "function_call"
            else (item.output or "")
            if item.type == "function_call_output"
            else "[audio]"
        )
        bubbles.append(
            {
                "id": item.id,
                "role": item.role or ("tool" if item.type == "function_call_output" else "call"),
                "t_ms": item.first_t_ns / 1e6,
                "seq": item.first_seq,
                "text": text,
            }
        )
    data = {
        "session": sid,
        "duration_ms": last_ms,
        "summary": summary[0] if summary else {},
        "user": _envelope(mix[:, 0], ENVELOPE) if len(mix) else [],
        "assistant": _envelope(mix[:, 1], ENVELOPE) if len(mix) else [],
        "audio_ms": len(mix) * 1000 / MIX_RATE,
        "bubbles": bubbles,
        "turns": turns,
        "interruptions": interruptions,
        "calls": calls,
        "events": [
            {
                "seq": f.seq,
                "t_ms": f.t_ns / 1e6,
                "direction": f.direction.value,
                "type": f.type or f.kind.value,
                "payload": (f.payload or "")[:PAYLOAD_CHARS],
            }
            for f in frames
        ],
    }
    blob = orjson.dumps(data, default=str).decode().replace("</", "<\\/")
    return _PAGE.replace("__TITLE__", html.escape(f"rtrec session {sid}")).replace("__DATA__", blob)


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; }
#summary td { padding: 2px 10px 2px 0; }
#timeline { width: 100%; border: 1px solid #ccc; background: #fcfcfc; }
.wave.user { fill: #2b7bb9; } .wave.assistant { fill: #d9822b; }
.marker { cursor: pointer; }
.marker.response line { stroke: #555; stroke-dasharray: 3 3; }
.marker.latency rect { fill: #e33; opacity: .35; }
.marker.interruption path { fill: #c00; }
.marker.call circle { fill: #6a3; }
.bubble { cursor: pointer; }
.bubble.user rect { fill: #dbeafe; } .bubble.assistant rect { fill: #fde7d0; }
.bubble.call rect, .bubble.tool rect { fill: #e3f1d6; }
.bubble text { font-size: 11px; }
#detail { white-space: pre-wrap; font: 12px monospace; background: #f4f4f4; padding: 8px;
          min-height: 3em; max-height: 240px; overflow: auto; }
#events { font: 12px monospace; border-collapse: collapse; }
#events tr.event:hover { background: #eef; cursor: pointer; }
#events td { padding: 1px 8px; }
</style></head>
<body>
<h1>__TITLE__</h1>
<table id="summary"></table>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="detail">Click a marker, a bubble or an event to see its JSON.</div>
<h2>Events</h2>
<table id="events"></table>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const W = 1200, LABEL = 80, H_WAVE = 70, H_BUBBLES = 150;
const span = Math.max(D.duration_ms, D.audio_ms, 1);
const x = ms => LABEL + (W - LABEL - 10) * ms / span;
const svg = document.getElementById("timeline");
const H = 30 + 2 * H_WAVE + H_BUBBLES + 20;
svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
const el = (name, attrs, parent) => {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  (parent || svg).appendChild(e);
  return e;
};
const bySeq = new Map(D.events.map(e => [e.seq, e]));
const show = (seq, extra) => {
  const e = bySeq.get(seq);
  let text = extra ? extra + "\\n\\n" : "";
  if (e) {
    let body = e.payload;
    try { body = JSON.stringify(JSON.parse(e.payload), null, 2); } catch (err) {}
    text += `seq ${e.seq} · ${(e.t_ms / 1000).toFixed(3)} s · ${e.direction} · ${e.type}\\n` + body;
  }
  document.getElementById("detail").textContent = text;
};
const clickable = (node, seq, title, extra) => {
  const t = el("title", {}, node); t.textContent = title;
  node.addEventListener("click", () => show(seq, extra));
  node.dataset.seq = seq;
};
// time axis
const axis = el("g", {class: "axis"});
const step = [100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000].find(s => span / s <= 12) || 120000;
for (let t = 0; t <= span; t += step) {
  el("line", {x1: x(t), x2: x(t), y1: 20, y2: H - 10, stroke: "#eee"}, axis);
  el("text", {x: x(t), y: 14, "font-size": 10, "text-anchor": "middle"}, axis).textContent = (t / 1000) + " s";
}
// waveforms
const wave = (env, who, top) => {
  el("text", {x: 4, y: top + H_WAVE / 2, "font-size": 12}, svg).textContent = who;
  if (!env.length) return;
  const mid = top + H_WAVE / 2, half = H_WAVE / 2 - 2, dx = (x(D.audio_ms) - x(0)) / env.length;
  let d = `M ${x(0)} ${mid}`;
  env.forEach(([lo, hi], i) => { d += ` L ${x(0) + i * dx} ${mid - hi * half}`; });
  for (let i = env.length - 1; i >= 0; i--) d += ` L ${x(0) + i * dx} ${mid - env[i][0] * half}`;
  el("path", {d: d + " Z", class: `wave ${who}`, id: `wave-${who}`});
};
wave(D.user, "user", 24);
wave(D.assistant, "assistant", 24 + H_WAVE);
const bottom = 24 + 2 * H_WAVE;
// responses and latency
for (const t of D.turns) {
  if (t.response_created_ms != null) {
    const g = el("g", {class: "marker response"});
    el("line", {x1: x(t.response_created_ms), x2: x(t.response_created_ms), y1: 20, y2: bottom}, g);
    el("rect", {x: x(t.response_created_ms) - 3, y: 20, width: 6, height: bottom - 20, fill: "transparent"}, g);
    const ev = D.events.find(e => e.type === "response.created" && Math.abs(e.t_ms - t.response_created_ms) < 1e-6);
    clickable(g, ev ? ev.seq : -1, `response ${t.response_id} created at ${(t.response_created_ms / 1000).toFixed(3)} s`);
  }
  if (t.speech_end_ms != null && t.first_audio_ms != null) {
    const g = el("g", {class: "marker latency"});
    el("rect", {x: x(t.speech_end_ms), y: 24 + H_WAVE - 8, width: Math.max(2, x(t.first_audio_ms) - x(t.speech_end_ms)), height: 16}, g);
    const ev = D.events.find(e => e.type && e.type.endsWith("audio.delta") && Math.abs(e.t_ms - t.first_audio_ms) < 1e-6);
    clickable(g, ev ? ev.seq : -1, `turn ${t.turn}: end of speech to first audio ${t.speech_end_to_first_audio_ms.toFixed(0)} ms`,
      `latency ${t.speech_end_to_first_audio_ms.toFixed(0)} ms (speech end ${(t.speech_end_ms/1000).toFixed(3)} s, first audio ${(t.first_audio_ms/1000).toFixed(3)} s)`);
  }
}
for (const i of D.interruptions) {
  const g = el("g", {class: "marker interruption"});
  el("path", {d: `M ${x(i.t_ms) - 6} 20 L ${x(i.t_ms) + 6} 20 L ${x(i.t_ms)} 32 Z`}, g);
  clickable(g, i.seq, `${i.kind} at ${(i.t_ms / 1000).toFixed(3)} s`);
}
for (const c of D.calls) {
  const g = el("g", {class: "marker call"});
  el("circle", {cx: x(c.called_ms), cy: bottom - 6, r: 5}, g);
  clickable(g, c.seq, `${c.name}(${c.arguments}) → ${c.output ?? "no output"}`);
}
// transcript bubbles, in rows so they do not overlap
const rows = [];
for (const b of D.bubbles) {
  const left = x(b.t_ms), width = Math.min(260, 12 + 6 * b.text.length);
  let row = rows.findIndex(end => end < left);
  if (row < 0) { row = rows.length; rows.push(0); }
  rows[row] = left + width + 4;
  const g = el("g", {class: `bubble ${b.role}`});
  const y = bottom + 8 + row * 24;
  el("rect", {x: left, y: y, width: width, height: 20, rx: 8}, g);
  const label = b.text.length > 40 ? b.text.slice(0, 39) + "…" : b.text;
  el("text", {x: left + 6, y: y + 14}, g).textContent = label;
  clickable(g, b.seq, `${b.role} at ${(b.t_ms / 1000).toFixed(3)} s: ${b.text}`, `${b.role}: ${b.text}`);
}
// the bubbles take as many rows as they need
svg.setAttribute("viewBox", `0 0 ${W} ${Math.max(H, bottom + 16 + rows.length * 24)}`);
// summary and events
const sum = document.getElementById("summary");
for (const k of ["duration_s", "turns", "user_speech_s", "assistant_speech_s", "input_tokens",
                 "output_tokens", "cost_usd", "interruptions", "function_calls", "errors"]) {
  const v = D.summary[k];
  const tr = sum.insertRow(); tr.insertCell().textContent = k.replaceAll("_", " ");
  tr.insertCell().textContent = v == null ? "" : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(k === "cost_usd" ? 4 : 2) : v);
}
const table = document.getElementById("events");
for (const e of D.events) {
  const tr = table.insertRow(); tr.className = "event"; tr.dataset.seq = e.seq;
  for (const v of [e.seq, (e.t_ms / 1000).toFixed(3), e.direction, e.type]) tr.insertCell().textContent = v;
  tr.title = e.payload.slice(0, 300);
  tr.addEventListener("click", () => show(e.seq));
}
document.body.dataset.ready = "yes";
</script>
</body></html>
"""  # noqa: E501 (the page's script reads better unwrapped)


@click.command("report")
@click.argument("session")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write.",
)
@db_option()
def report_command(session: str, out: Path, db: Path) -> None:
    """Write SESSION as one self-contained HTML page: waveforms, transcript, latencies."""
    try:
        page = build_report(db, session)
    except (RtrecError, QueryRefused, duckdb.Error) as exc:
        raise click.ClickException(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out} ({len(page.encode()):,} bytes)")
