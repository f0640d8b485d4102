"""``rtrec report SESSION -o FILE.html``: one page to look at and listen to a session.

Everything is drawn on the session's own timeline (``rtrec.store.session_audio``: the wire
time, delayed wherever the recorded audio needed longer than the wire gave it, as when a
client sends a file at once or the simulator answers at ``--pace fast``), so each bubble
sits on its audio: both waveforms (the stereo mix of ``rtrec audio``), transcript bubbles
from the replay reducer, response and latency markers from the ``turns`` view,
interruptions and function calls from their views, a legend, and every event of the log.
Hover a marker or bubble for its time, click it (or a row of the event list) for the
event's JSON; click the timeline to hear the conversation from there.

The audio plays in the page: the mix on the timeline, each stream as archived, and each
item (its span of its stream). It is FLAC, made from the archive's samples, embedded as
``data:`` URIs by default so that the page is one file that works offline and can be
mailed or attached to a bug; FLAC is a third of WAV's size, and the base64 of a 15-minute
session is about 40 MB. Longer sessions (or ``--audio beside``) get the FLACs written
beside the page (``FILE.audio/``) and referenced by relative URLs; ``--audio none`` leaves
the players out. No network: nothing is fetched from anywhere.
"""

from __future__ import annotations

import base64
import enum
import html
import io
import itertools
from pathlib import Path
from typing import Any, Final

import click
import numpy as np
import numpy.typing as npt
import orjson
import soundfile as sf

from rtrec.cli.common import session_log, trouble
from rtrec.cli.lake import lake_session
from rtrec.cli.options import db_option
from rtrec.replay import rebuild
from rtrec.replay.live import LiveState, fold_live, segments
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.storage import Stream
from rtrec.store.reader import LogAudio, open_log_reader, read_frame_columns, read_streams
from rtrec.store.session_audio import (
    MIX_RATE,
    PlacedAudio,
    SessionTimeline,
    mix_placed,
    session_timeline,
)

__all__ = ["AudioMode", "build_report", "report_command"]

#: Columns of the waveform envelope (min/max per column).
ENVELOPE: Final = 1200
#: Characters of each event's payload kept in the page (audio is already cut out).
PAYLOAD_CHARS: Final = 4000
#: With ``--audio auto``, sessions whose mix is longer than this get their audio beside
#: the page rather than in it.
EMBED_AUDIO_S: Final = 15 * 60


class AudioMode(enum.StrEnum):
    """Where the report's audio goes."""

    AUTO = "auto"
    EMBED = "embed"
    BESIDE = "beside"
    NONE = "none"


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


def _flac(samples: npt.NDArray[np.int16], rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e6


def _vad_ms(frames: FrameColumns, n: int, key: str) -> int | None:
    """``audio_start_ms`` / ``audio_end_ms`` of a VAD event (row ``n``)."""
    payload = frames.payload[n]
    if not payload:
        return None
    try:
        value = orjson.loads(payload).get(key)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return int(value) if isinstance(value, int | float) else None


def _item_spans(frames: FrameColumns, timeline: SessionTimeline) -> dict[str, dict[str, Any]]:
    """Each item with audio: where it starts and ends on the timeline, and the span of its
    stream to play (seconds into the stream as archived)."""
    by_seq = {c.seq: c for c in timeline.chunks}
    output: dict[str, list[PlacedAudio]] = {}
    vad: dict[str, dict[str, int]] = {}
    for n, seq in enumerate(frames.seq):
        item = frames.item_id[n]
        if item is None:
            continue
        chunk = by_seq.get(seq)
        if chunk is not None and chunk.stream is Stream.OUTPUT:
            output.setdefault(item, []).append(chunk)
        kind = frames.type[n]
        if kind == "input_audio_buffer.speech_started":
            start = _vad_ms(frames, n, "audio_start_ms")
            if start is not None:
                vad.setdefault(item, {})["start"] = start
        elif kind == "input_audio_buffer.speech_stopped":
            end = _vad_ms(frames, n, "audio_end_ms")
            if end is not None:
                vad.setdefault(item, {})["end"] = end
    spans: dict[str, dict[str, Any]] = {}
    for item, chunks in output.items():
        first, last = chunks[0], chunks[-1]
        spans[item] = {
            "t_ms": first.start_ns / 1e6,
            "end_ms": max(c.end_ns for c in chunks) / 1e6,
            "stream": "output",
            "from_s": first.offset / first.rate,
            "to_s": (last.offset + last.samples) / last.rate,
        }
    for item, marks in vad.items():
        if item in spans or "start" not in marks:
            continue
        start = timeline.input_at(marks["start"])
        end = timeline.input_at(marks["end"]) if "end" in marks else None
        if start is None:
            continue
        spans[item] = {
            "t_ms": start / 1e6,
            "end_ms": None if end is None else end / 1e6,
            "stream": "input",
            "from_s": marks["start"] / 1000,
            "to_s": None if "end" not in marks else marks["end"] / 1000,
        }
    return spans


def _turn_marks(
    turns: list[dict[str, Any]], frames: FrameColumns, timeline: SessionTimeline
) -> list[dict[str, Any]]:
    """The ``turns`` rows with their response, speech end and first audio on the timeline
    (the rows' own times are wire times: the tooltips show those as measured)."""
    created: dict[str, int] = {}
    first_audio: dict[str, int] = {}
    stops: dict[int, int] = {}  # wire t_ns of each speech_stopped -> its row
    chunk_at = {c.seq: c for c in timeline.chunks}
    for n, seq in enumerate(frames.seq):
        kind, response = frames.type[n], frames.response_id[n]
        if kind == "response.created" and response and response not in created:
            created[response] = seq
        chunk = chunk_at.get(seq)
        if chunk is not None and chunk.stream is Stream.OUTPUT and response:
            first_audio.setdefault(response, chunk.start_ns)
        if kind == "input_audio_buffer.speech_stopped":
            stops[frames.t_ns[n]] = n
    marks = []
    for t in turns:
        mark = dict(t)
        response = t.get("response_id")
        created_seq = created.get(response or "")
        mark["created_seq"] = created_seq
        mark["created_tl_ms"] = None if created_seq is None else _ms(timeline.times_ns[created_seq])
        mark["first_audio_tl_ms"] = _ms(first_audio.get(response or ""))
        end_tl: int | None = None
        if t.get("speech_end_ms") is not None:
            row = stops.get(round(t["speech_end_ms"] * 1e6))
            if row is not None:
                end_ms = _vad_ms(frames, row, "audio_end_ms")
                end_tl = timeline.input_at(end_ms) if end_ms is not None else None
                if end_tl is None:
                    end_tl = timeline.times_ns[frames.seq[row]]
        mark["speech_end_tl_ms"] = _ms(end_tl)
        marks.append(mark)
    return marks


def _item_bubbles(frames: FrameColumns, timeline: SessionTimeline) -> list[dict[str, Any]]:
    """A Realtime session's transcript bubbles: every item, also those the log shows outside
    the conversation (out-of-band, cut off)."""
    state = rebuild(frames).state
    spans = _item_spans(frames, timeline)
    bubbles = []
    for item in sorted(state.items.values(), key=lambda i: i.first_seq):
        text = " ".join(t for p in item.parts for t in (p.text.value, p.transcript.value) if t) or (
            f"{item.name}({item.arguments.value or ''})"
            if item.type == "function_call"
            else (item.output or "")
            if item.type == "function_call_output"
            else "[audio]"
        )
        span = spans.get(item.id)
        bubbles.append(
            {
                "id": item.id,
                "role": item.role or ("tool" if item.type == "function_call_output" else "call"),
                "t_ms": span["t_ms"] if span else timeline.times_ns[item.first_seq] / 1e6,
                "end_ms": span["end_ms"] if span else None,
                "audio": span,
                "seq": item.first_seq,
                "text": text,
            }
        )
    return bubbles


#: A GPT-Live session's markers: the backend's function calls, and each delegation (its
#: target as the "arguments", how it was answered as the "output").
_LIVE_CALLS: Final = """
SELECT name, arguments, output, seq FROM live_calls WHERE session_id = ?
UNION ALL
SELECT 'delegation', target,
    coalesce(status, CASE WHEN answered_ms IS NULL THEN 'unanswered' ELSE 'answered' END)
        || coalesce(' in ' || round(latency_ms)::BIGINT || ' ms', ''),
    seq
FROM live_delegations WHERE session_id = ?
ORDER BY seq
"""


def _at(timeline: SessionTimeline, ms: float) -> float:
    """A GPT-Live session-timeline time on the report's timeline (ms). The session timeline
    runs with the input audio (LIVE.md §5.3), so the input chunk holding ``ms`` places it;
    without input audio it is taken as is."""
    placed = timeline.input_at(ms)
    return ms if placed is None else placed / 1e6


def _live_bubbles(state: LiveState, timeline: SessionTimeline) -> list[dict[str, Any]]:
    """A GPT-Live session's bubbles: each speaker's transcript segments where the session
    timeline puts them (with the span of their stream to play: the streams run with the
    timeline, output audio continuous, silence included), and the placed context appends."""
    bubbles: list[dict[str, Any]] = []
    for n, (speaker, start, end, text) in enumerate(segments(state), start=1):
        seq = min(
            (f.seq for f in state.fragments if f.speaker == speaker and start <= f.start_ms <= end),
            default=-1,
        )
        span = {
            "t_ms": _at(timeline, start),
            "end_ms": _at(timeline, end),
            "stream": "input" if speaker == "user" else "output",
            "from_s": start / 1000,
            "to_s": end / 1000,
        }
        bubbles.append(
            {
                "id": f"{speaker}#{n}",
                "role": speaker,
                "t_ms": span["t_ms"],
                "end_ms": span["end_ms"],
                "audio": span,
                "seq": seq,
                "text": text.strip(),
            }
        )
    for n, a in enumerate(state.appends, start=1):
        if a.start_ms is not None:
            bubbles.append(
                {
                    "id": f"{a.kind}#{n}",
                    "role": "system",
                    "t_ms": _at(timeline, a.start_ms),
                    "end_ms": None,
                    "audio": None,
                    "seq": a.seq,
                    "text": f"{a.kind}: {a.content}",
                }
            )
    return sorted(bubbles, key=lambda b: b["t_ms"])


def _reply_marks(replies: list[dict[str, Any]], timeline: SessionTimeline) -> list[dict[str, Any]]:
    """``live_replies`` as the page's latency markers: end of the user's speech to the
    start of the reply, both on the session timeline."""
    return [
        {
            "turn": r["utterance"],
            "created_seq": r["reply_seq"],
            "created_tl_ms": None,
            "speech_end_tl_ms": _at(timeline, r["speech_end_ms"]),
            "first_audio_tl_ms": None
            if r["reply_start_ms"] is None
            else _at(timeline, r["reply_start_ms"]),
            "speech_end_to_first_audio_ms": r["speech_end_to_first_audio_ms"],
        }
        for r in replies
    ]


def build_report(
    db: Path, session_id: str, *, audio: AudioMode = AudioMode.EMBED, beside: Path | None = None
) -> tuple[str, dict[str, bytes]]:
    """The HTML page for one session of a log (live or not), and the audio files to write
    beside it (``beside``, a directory name relative to the page) when ``audio`` says so.

    Raises:
        RtrecError: the log cannot be read.
    """
    with open_log_reader(db) as log, log.held():
        frames = read_frame_columns(log, session_id)
        summary = log.rows("SELECT * FROM session_summary WHERE session_id = ?", [session_id])
        live = bool(summary) and summary[0].get("protocol") == "live"
        turns = log.rows("SELECT * FROM turns WHERE session_id = ? ORDER BY turn", [session_id])
        interruptions = log.rows(
            "SELECT * FROM interruptions WHERE session_id = ? ORDER BY seq", [session_id]
        )
        if live:
            calls = log.rows(_LIVE_CALLS, [session_id, session_id])
            replies = log.rows(
                "SELECT * FROM live_replies WHERE session_id = ? ORDER BY utterance", [session_id]
            )
        else:
            calls = log.rows(
                "SELECT * FROM function_calls WHERE session_id = ? ORDER BY seq", [session_id]
            )
            replies = []
        streams = read_streams(log, session_id)
    timeline = session_timeline(
        zip(
            frames.seq,
            frames.t_ns,
            frames.audio_stream,
            frames.audio_offset,
            frames.audio_samples,
            frames.audio_rate,
            strict=True,
        )
    )
    stream_audio: dict[str, tuple[npt.NDArray[np.int16], int]] = {}
    with LogAudio(streams) as archive:
        mix = mix_placed(archive, timeline.chunks)
        for info in streams:
            if info.frames and info.stream.value not in stream_audio:
                pcm = archive.samples(info.stream, info.sample_rate, 0, info.frames)
                stream_audio[info.stream.value] = (
                    np.frombuffer(pcm, dtype="<i2").astype(np.int16),
                    info.sample_rate,
                )
    if live:
        bubbles = _live_bubbles(fold_live(frames), timeline)
        turns = _reply_marks(replies, timeline)
    else:
        bubbles = _item_bubbles(frames, timeline)
    mix_ms = len(mix) * 1000 / MIX_RATE
    wire_ms = max(frames.t_ns, default=0) / 1e6
    sources: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if audio is not AudioMode.NONE:
        encoded = {"mix": _flac(mix, MIX_RATE)} if len(mix) else {}
        encoded |= {name: _flac(samples, rate) for name, (samples, rate) in stream_audio.items()}
        for name, flac in encoded.items():
            if audio is AudioMode.BESIDE and beside is not None:
                files[f"{name}.flac"] = flac
                sources[name] = f"{beside.name}/{name}.flac"
            else:
                sources[name] = "data:audio/flac;base64," + base64.b64encode(flac).decode()
    data: dict[str, Any] = {
        "session": session_id,
        "duration_ms": timeline.end_ns / 1e6,
        "wire_ms": wire_ms,
        "lag_ms": timeline.lag_ns / 1e6,
        "summary": summary[0] if summary else {},
        "user": _envelope(mix[:, 0], ENVELOPE) if len(mix) else [],
        "assistant": _envelope(mix[:, 1], ENVELOPE) if len(mix) else [],
        "audio_ms": mix_ms,
        "sources": sources,
        "bubbles": bubbles,
        "turns": turns if live else _turn_marks(turns, frames, timeline),
        "interruptions": [
            i | {"tl_ms": timeline.times_ns[i["seq"]] / 1e6}
            for i in interruptions
            if i["seq"] in timeline.times_ns
        ],
        "calls": [
            c | {"tl_ms": timeline.times_ns[c["seq"]] / 1e6}
            for c in calls
            if c["seq"] in timeline.times_ns
        ],
        "events": [
            {
                "seq": f.seq,
                "t_ms": f.t_ns / 1e6,
                "tl_ms": timeline.times_ns[f.seq] / 1e6,
                "direction": f.direction.value,
                "type": f.type or f.kind.value,
                "item": f.item_id,
                "payload": (f.payload or "")[:PAYLOAD_CHARS],
            }
            for f in frames
        ],
    }
    # Inside <script> the HTML parser looks for "</script" and "<!--" before JSON.parse
    # sees anything: a transcript saying "<!--<script>" swallowed the page's own script.
    # "<" only occurs inside JSON strings, where \u003c means the same character.
    blob = orjson.dumps(data, default=str).decode().replace("<", "\\u003c")
    title = html.escape(f"rtrec session {session_id}")
    return _PAGE.replace("__TITLE__", title).replace("__DATA__", blob), files


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 18px; } h2 { font-size: 15px; margin-top: 20px; }
#summary td { padding: 2px 10px 2px 0; }
#timebase { color: #555; max-width: 1100px; }
#legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 8px 0; font-size: 12px; }
#legend span.entry { display: inline-flex; align-items: center; gap: 5px; }
#legend svg { width: 22px; height: 14px; }
#players { display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: center; margin: 8px 0; }
#players label { font-size: 12px; color: #444; display: block; }
#players audio { height: 32px; }
#timeline { width: 100%; border: 1px solid #ccc; background: #fcfcfc; cursor: crosshair; }
.wave.user { fill: #2b7bb9; } .wave.assistant { fill: #d9822b; }
.marker { cursor: pointer; }
.marker.response line { stroke: #555; stroke-dasharray: 3 3; }
.marker.latency rect { fill: #e33; opacity: .35; }
.marker.interruption path { fill: #c00; }
.marker.call circle { fill: #6a3; }
#playhead { stroke: #000; stroke-width: 1.5; }
.bubble { cursor: pointer; }
.bubble.user rect { fill: #dbeafe; } .bubble.assistant rect { fill: #fde7d0; }
.bubble.call rect, .bubble.tool rect, .bubble.system rect { fill: #e3f1d6; }
.bubble text { font-size: 11px; }
#detail { white-space: pre-wrap; font: 12px monospace; background: #f4f4f4; padding: 8px;
          min-height: 3em; max-height: 240px; overflow: auto; }
#items, #events { font: 12px monospace; border-collapse: collapse; }
#items td, #events td, #items th, #events th { padding: 1px 8px; vertical-align: top; text-align: left; }
#items button { font-size: 11px; padding: 0 6px; }
#events tr.event:hover, #items tr:hover { background: #eef; cursor: pointer; }
</style></head>
<body>
<h1>__TITLE__</h1>
<table id="summary"></table>
<p id="timebase"></p>
<div id="legend"></div>
<div id="players"></div>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="detail">Click a marker, a bubble or an event to see its JSON; click the timeline to listen from there.</div>
<h2>Items</h2>
<table id="items"></table>
<h2>Events</h2>
<table id="events"></table>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const W = 1200, LABEL = 80, H_WAVE = 70;
const span = Math.max(D.duration_ms, D.audio_ms, 1);
const x = ms => LABEL + (W - LABEL - 10) * ms / span;
const ms = px => (px - LABEL) * span / (W - LABEL - 10);
const secs = v => (v / 1000).toFixed(3) + " s";
const svg = document.getElementById("timeline");
svg.dataset.span = span; svg.dataset.left = LABEL; svg.dataset.right = W - 10;
const H = 30 + 2 * H_WAVE + 170;
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
    text += `seq ${e.seq} · ${secs(e.tl_ms)} on the timeline (wire ${secs(e.t_ms)}) · ${e.direction} · ${e.type}` +
      (e.item ? ` · ${e.item}` : "") + "\\n" + body;
  }
  document.getElementById("detail").textContent = text;
};
const clickable = (node, seq, title, extra, onclick) => {
  const t = el("title", {}, node); t.textContent = title;
  node.addEventListener("click", ev => { ev.stopPropagation(); show(seq, extra); if (onclick) onclick(); });
  node.dataset.seq = seq;
};
// the time base, said plainly
const base = document.getElementById("timebase");
base.textContent = "Time axis: the session's timeline, seconds since it started. " + (D.lag_ms > 1 ?
  `The recorded audio needed ${secs(D.lag_ms)} more than the wire time gave it (audio sent faster than real time), ` +
  `so events are drawn where their audio puts them: the session lasted ${secs(D.wire_ms)} on the wire and ${secs(span)} here.` :
  "It is the wire time: the audio fit in it.") +
  " Assistant audio plays from its arrival, queued as a client's player would.";
// players: the mix on the timeline, each stream as archived
const players = document.getElementById("players");
const player = (name, label) => {
  if (!D.sources[name]) return null;
  const box = document.createElement("div");
  const l = document.createElement("label"); l.textContent = label; box.appendChild(l);
  const a = document.createElement("audio");
  a.id = `audio-${name}`; a.controls = true; a.preload = "auto"; a.src = D.sources[name];
  a.addEventListener("loadedmetadata", () => { a.dataset.duration = a.duration; });
  a.addEventListener("error", () => { a.dataset.error = a.error ? a.error.code : "?"; });
  box.appendChild(a); players.appendChild(box);
  return a;
};
const mix = player("mix", "conversation on the timeline (user left, assistant right)");
const streams = {input: player("input", "input stream (what the client sent)"),
                 output: player("output", "output stream (what the server sent)")};
let stopAt = null, stopOn = null;
const playSpan = (stream, from, to) => {
  const a = streams[stream]; if (!a) return;
  for (const other of [mix, streams.input, streams.output]) if (other && other !== a) other.pause();
  a.currentTime = from; stopAt = to; stopOn = a; a.play().catch(() => {});
};
for (const a of Object.values(streams)) if (a) a.addEventListener("timeupdate", () => {
  if (stopOn === a && stopAt != null && a.currentTime >= stopAt) { a.pause(); stopAt = null; }
});
// legend
const legend = document.getElementById("legend");
const entry = (label, draw) => {
  const s = document.createElement("span"); s.className = "entry";
  const icon = document.createElementNS(NS, "svg"); icon.setAttribute("viewBox", "0 0 22 14");
  draw(icon); s.appendChild(icon); s.append(label); legend.appendChild(s);
};
entry("user audio", g => el("rect", {x: 1, y: 3, width: 20, height: 8, fill: "#2b7bb9"}, g));
entry("assistant audio", g => el("rect", {x: 1, y: 3, width: 20, height: 8, fill: "#d9822b"}, g));
entry("response created", g => el("line", {x1: 11, x2: 11, y1: 0, y2: 14, stroke: "#555", "stroke-dasharray": "3 3"}, g));
entry("end of speech → first audio", g => el("rect", {x: 1, y: 3, width: 20, height: 8, fill: "#e33", opacity: .35}, g));
entry("interruption", g => el("path", {d: "M 5 1 L 17 1 L 11 13 Z", fill: "#c00"}, g));
entry("function call", g => el("circle", {cx: 11, cy: 7, r: 5, fill: "#6a3"}, g));
for (const [role, fill] of [["user", "#dbeafe"], ["assistant", "#fde7d0"], ["tool / call", "#e3f1d6"]])
  entry(role, g => el("rect", {x: 1, y: 2, width: 20, height: 10, rx: 4, fill: fill}, g));
entry("playhead", g => el("line", {x1: 11, x2: 11, y1: 0, y2: 14, stroke: "#000", "stroke-width": 1.5}, g));
// time axis
const axis = el("g", {class: "axis"});
const step = [100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000].find(s => span / s <= 12) || 120000;
for (let t = 0; t <= span; t += step) {
  el("line", {x1: x(t), x2: x(t), y1: 20, y2: H - 10, stroke: "#eee"}, axis);
  el("text", {x: x(t), y: 14, "font-size": 10, "text-anchor": "middle"}, axis).textContent = (t / 1000) + " s";
}
// waveforms: the mix, on the timeline from 0
const wave = (env, who, top) => {
  el("text", {x: 4, y: top + H_WAVE / 2, "font-size": 12}, svg).textContent = who;
  if (!env.length) return;
  const mid = top + H_WAVE / 2, half = H_WAVE / 2 - 2, dx = (x(D.audio_ms) - x(0)) / env.length;
  let d = `M ${x(0)} ${mid}`;
  env.forEach(([lo, hi], i) => { d += ` L ${x(0) + i * dx} ${mid - hi * half}`; });
  for (let i = env.length - 1; i >= 0; i--) d += ` L ${x(0) + i * dx} ${mid - env[i][0] * half}`;
  const p = el("path", {d: d + " Z", class: `wave ${who}`, id: `wave-${who}`});
  p.dataset.endMs = D.audio_ms;
};
wave(D.user, "user", 24);
wave(D.assistant, "assistant", 24 + H_WAVE);
const bottom = 24 + 2 * H_WAVE;
// responses and latency, where the timeline puts them (tooltips: the wire-time measures)
for (const t of D.turns) {
  if (t.created_tl_ms != null) {
    const g = el("g", {class: "marker response"});
    g.dataset.tMs = t.created_tl_ms; g.dataset.response = t.response_id;
    el("line", {x1: x(t.created_tl_ms), x2: x(t.created_tl_ms), y1: 20, y2: bottom}, g);
    el("rect", {x: x(t.created_tl_ms) - 3, y: 20, width: 6, height: bottom - 20, fill: "transparent"}, g);
    clickable(g, t.created_seq, `response ${t.response_id} created at ${secs(t.created_tl_ms)}`);
  }
  if (t.speech_end_tl_ms != null && t.first_audio_tl_ms != null) {
    const g = el("g", {class: "marker latency"});
    g.dataset.tMs = t.speech_end_tl_ms; g.dataset.endMs = t.first_audio_tl_ms;
    const w = Math.max(2, x(t.first_audio_tl_ms) - x(t.speech_end_tl_ms));
    el("rect", {x: x(t.speech_end_tl_ms), y: 24 + H_WAVE - 8, width: w, height: 16}, g);
    const measured = t.speech_end_to_first_audio_ms == null ? "" : ` (measured on the wire: ${t.speech_end_to_first_audio_ms.toFixed(0)} ms)`;
    clickable(g, t.created_seq ?? -1,
      `turn ${t.turn}: end of speech ${secs(t.speech_end_tl_ms)} to first audio ${secs(t.first_audio_tl_ms)}${measured}`,
      `turn ${t.turn}: end of speech at ${secs(t.speech_end_tl_ms)}, first audio at ${secs(t.first_audio_tl_ms)}${measured}`);
  }
}
for (const i of D.interruptions) {
  const g = el("g", {class: "marker interruption"}); g.dataset.tMs = i.tl_ms;
  el("path", {d: `M ${x(i.tl_ms) - 6} 20 L ${x(i.tl_ms) + 6} 20 L ${x(i.tl_ms)} 32 Z`}, g);
  clickable(g, i.seq, `${i.kind} at ${secs(i.tl_ms)}`);
}
for (const c of D.calls) {
  const g = el("g", {class: "marker call"}); g.dataset.tMs = c.tl_ms;
  el("circle", {cx: x(c.tl_ms), cy: bottom - 6, r: 5}, g);
  clickable(g, c.seq, `${c.name}(${c.arguments}) → ${c.output ?? "no output"}`);
}
// transcript bubbles, in rows so they do not overlap
const rows = [];
const play = b => b.audio && b.audio.to_s != null ? () => playSpan(b.audio.stream, b.audio.from_s, b.audio.to_s) : null;
for (const b of D.bubbles) {
  const left = x(b.t_ms), width = Math.min(260, 12 + 6 * b.text.length);
  let row = rows.findIndex(end => end < left);
  if (row < 0) { row = rows.length; rows.push(0); }
  rows[row] = left + width + 4;
  const g = el("g", {class: `bubble ${b.role}`});
  g.dataset.item = b.id; g.dataset.tMs = b.t_ms;
  const y = bottom + 8 + row * 24;
  el("rect", {x: left, y: y, width: width, height: 20, rx: 8}, g);
  const label = b.text.length > 40 ? b.text.slice(0, 39) + "…" : b.text;
  el("text", {x: left + 6, y: y + 14}, g).textContent = label;
  clickable(g, b.seq, `${b.role} ${b.id} at ${secs(b.t_ms)}: ${b.text}`, `${b.role} ${b.id}: ${b.text}`, play(b));
}
svg.setAttribute("viewBox", `0 0 ${W} ${Math.max(H, bottom + 16 + rows.length * 24)}`);
// the playhead follows the mix; a click on the timeline plays the mix from there
const head = el("line", {id: "playhead", x1: x(0), x2: x(0), y1: 20, y2: bottom, visibility: "hidden"});
if (mix) {
  const move = () => { const p = x(mix.currentTime * 1000); head.setAttribute("x1", p); head.setAttribute("x2", p);
                       head.setAttribute("visibility", "visible"); };
  mix.addEventListener("timeupdate", move);
  const frame = () => { move(); if (!mix.paused) requestAnimationFrame(frame); };
  mix.addEventListener("play", () => requestAnimationFrame(frame));
  svg.addEventListener("click", ev => {
    const box = svg.getBoundingClientRect(), scale = W / box.width;
    const t = Math.max(0, ms((ev.clientX - box.left) * scale));
    for (const a of Object.values(streams)) if (a) a.pause();
    mix.currentTime = Math.min(t, D.audio_ms) / 1000; mix.play().catch(() => {});
  });
}
// summary, items and events
const sum = document.getElementById("summary");
for (const k of ["protocol", "model", "duration_s", "turns", "user_speech_s", "assistant_speech_s",
                 "input_tokens", "output_tokens", "billed_s", "cost_usd", "interruptions",
                 "function_calls", "errors", "close_reason"]) {
  const v = D.summary[k];
  const tr = sum.insertRow(); tr.insertCell().textContent = k === "duration_s" ? "duration s (wire)" : k.replaceAll("_", " ");
  tr.insertCell().textContent = v == null ? "" : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(k === "cost_usd" ? 4 : 2) : v);
}
const header = (table, names) => {
  const tr = table.createTHead().insertRow();
  for (const n of names) { const th = document.createElement("th"); th.textContent = n; th.align = "left"; tr.appendChild(th); }
};
const items = document.getElementById("items");
header(items, ["timeline", "speaker", "item id", "audio", "text"]);
for (const b of D.bubbles) {
  const tr = items.insertRow(); tr.className = "item"; tr.dataset.item = b.id;
  for (const v of [secs(b.t_ms), b.role, b.id]) tr.insertCell().textContent = v;
  const cell = tr.insertCell(); const go = play(b);
  if (go) { const btn = document.createElement("button"); btn.textContent = "▶ play";
            btn.title = `${b.audio.stream} stream, ${b.audio.from_s.toFixed(2)}–${b.audio.to_s.toFixed(2)} s`;
            btn.addEventListener("click", ev => { ev.stopPropagation(); go(); }); cell.appendChild(btn); }
  tr.insertCell().textContent = b.text;
  tr.addEventListener("click", () => show(b.seq, `${b.role} ${b.id}: ${b.text}`));
}
const table = document.getElementById("events");
header(table, ["seq", "timeline s", "wire s", "direction", "type", "item id"]);
for (const e of D.events) {
  const tr = table.insertRow(); tr.className = "event"; tr.dataset.seq = e.seq;
  for (const v of [e.seq, (e.tl_ms / 1000).toFixed(3), (e.t_ms / 1000).toFixed(3), e.direction, e.type, e.item || ""])
    tr.insertCell().textContent = v;
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
@click.option(
    "--audio",
    "audio",
    type=click.Choice([m.value for m in AudioMode]),
    default=AudioMode.AUTO.value,
    show_default=True,
    help="Playable audio: embed it in the page, write it beside it (FILE.audio/), or none; "
    f"auto embeds up to {EMBED_AUDIO_S // 60} minutes of conversation.",
)
@db_option()
@lake_session
def report_command(session: str, out: Path, audio: str, db: Path) -> None:
    """Write SESSION as an HTML page: waveforms, transcript and latencies on the session's
    timeline, a legend, and the audio to play (the conversation, each stream, each item).

    SESSION is a session id, a unique prefix, or a bundle directory.
    """
    mode = AudioMode(audio)
    beside = out.with_name(out.stem + ".audio")
    with session_log(session, db) as (log_path, sid), trouble():
        if mode is AudioMode.AUTO:
            mode = (
                AudioMode.EMBED
                if _mix_seconds(log_path, sid) <= EMBED_AUDIO_S
                else AudioMode.BESIDE
            )
        page, files = build_report(log_path, sid, audio=mode, beside=beside)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
        if files:
            beside.mkdir(exist_ok=True)
            for name, blob in files.items():
                (beside / name).write_bytes(blob)
    where = {
        AudioMode.EMBED: "audio embedded",
        AudioMode.BESIDE: f"audio in {beside}",
        AudioMode.NONE: "no audio",
    }[mode]
    click.echo(f"wrote {out} ({len(page.encode()):,} bytes, {where})")


def _mix_seconds(db: Path, session_id: str) -> float:
    """About how long the session's mix is: its audio, and its wire time."""
    with open_log_reader(db) as log:
        rows = log.rows(
            "SELECT coalesce(max(t_ns), 0) / 1e9 AS wire, "
            "coalesce(sum(audio_samples / audio_rate), 0) AS audio "
            "FROM events WHERE session_id = ?",
            [session_id],
        )
    return float(max(rows[0]["wire"], rows[0]["audio"]))
