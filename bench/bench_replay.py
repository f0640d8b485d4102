"""Throughput of the replay reducer, and the time to rebuild a one-hour voice session.

The synthetic session is built as the recorder logs one (FrameRecords, audio cut out of the
payloads, AudioSpans pointing into the archive), turn after turn for ``--minutes`` of session
time, at about 40 events per second:

- the client streams microphone audio all the time: an ``input_audio_buffer.append`` of
  100 ms every 100 ms (10/s);
- each 10 s turn: the user speaks 3 s, server VAD marks it and commits it, a response
  streams 6 s of assistant audio as ``response.output_audio.delta`` every 30 ms (the bulk of
  the log) with a transcript delta every 120 ms, then the item and response events close it
  (GA order, PROTOCOL.md §7a); a late input transcription and ``rate_limits.updated``
  follow.

Each workload shows the best wall time of ``--repeat`` runs and the best CPU time of this
process, which the other jobs of a shared machine disturb less (compare that column across
versions); events/s is by wall time.

    python bench/bench_replay.py [--minutes 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from rtrec.replay import INITIAL, fold, rebuild
from rtrec.schemas.columns import FrameColumns
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import AudioSpan, Direction, FrameKind, FrameRecord, Stream

RATE = 24000
TURN_MS = 10_000
MIC_MS = 100  # one append per 100 ms of microphone audio
DELTA_MS = 30  # one assistant audio delta per 30 ms of audio
SPEAK_MS = 6000  # assistant audio per turn
WORDS = ["the", "weather", "in", "Paris", "is", "sunny", "with", "a", "light", "breeze"]
HOT = ("input_audio_buffer.append", "response.output_audio.delta")
TRANSCRIPT = "response.output_audio_transcript.delta"


class Log:
    """Appends FrameRecords the way the recorder logs frames."""

    def __init__(self) -> None:
        self.rows: list[FrameRecord] = []
        self.offsets = {Stream.INPUT: 0, Stream.OUTPUT: 0}
        self.ids = 0

    def add(self, t_ms: float, event: dict[str, Any], audio_ms: int = 0) -> None:
        direction = Direction.CLIENT if event["type"] in HOT[:1] else Direction.SERVER
        if direction is Direction.SERVER:
            self.ids += 1
            event = {"type": event["type"], "event_id": f"event_{self.ids:012d}", **event}
        payload = orjson.dumps(event).decode()
        span = None
        if audio_ms:
            stream = Stream.INPUT if direction is Direction.CLIENT else Stream.OUTPUT
            samples = RATE * audio_ms // 1000
            key = '"audio":""' if direction is Direction.CLIENT else '"delta":""'
            span = AudioSpan(
                stream=stream,
                offset=self.offsets[stream],
                samples=samples,
                encoding=AudioEncoding.PCM16,
                sample_rate=RATE,
                cut_at=payload.index(key) + len(key) - 1,
            )
            self.offsets[stream] += samples
        t_ns = int(t_ms * 1_000_000)
        self.rows.append(
            FrameRecord(
                session_id="bench",
                seq=len(self.rows) + 1,
                direction=direction,
                t_ns=t_ns,
                wall_ns=1_767_225_600_000_000_000 + t_ns,
                kind=FrameKind.TEXT,
                wire_size=len(payload) + (span.samples * 8 // 3 if span else 0),
                payload=payload,
                type=event["type"],
                event_id=event.get("event_id"),
                item_id=event.get("item_id"),
                response_id=event.get("response_id"),
                audio=span,
            )
        )


def message(item_id: str, role: str, status: str, content: list[Any]) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": status,
        "role": role,
        "content": content,
    }


def turn_events(
    n: int, previous: str | None, rng: random.Random
) -> list[tuple[float, dict[str, Any], int]]:
    """The server events of turn ``n`` as (t_ms, event, audio ms)."""
    t0 = n * TURN_MS
    user, item, resp = f"item_u{n}", f"item_a{n}", f"resp_{n}"
    said = " ".join(rng.choice(WORDS) for _ in range(SPEAK_MS // DELTA_MS // 4))
    start, end = t0 + 200, t0 + 3200
    user_item = message(user, "user", "completed", [{"type": "input_audio", "transcript": None}])
    part = {"response_id": resp, "item_id": item, "output_index": 0, "content_index": 0}
    out: list[tuple[float, dict[str, Any], int]] = [
        (
            start + 300,
            {"type": "input_audio_buffer.speech_started", "item_id": user, "audio_start_ms": start},
            0,
        ),
        (
            end + 500,
            {
                "type": "input_audio_buffer.speech_stopped",
                "item_id": user,
                "audio_end_ms": end + 500,
            },
            0,
        ),
        (
            end + 510,
            {"type": "input_audio_buffer.committed", "item_id": user, "previous_item_id": previous},
            0,
        ),
        (
            end + 511,
            {"type": "conversation.item.added", "previous_item_id": previous, "item": user_item},
            0,
        ),
        (
            end + 512,
            {"type": "conversation.item.done", "previous_item_id": previous, "item": user_item},
            0,
        ),
        (
            end + 520,
            {
                "type": "response.created",
                "response": {
                    "object": "realtime.response",
                    "id": resp,
                    "status": "in_progress",
                    "status_details": None,
                    "output": [],
                    "usage": None,
                },
            },
            0,
        ),
        (
            end + 700,
            {
                "type": "response.output_item.added",
                "response_id": resp,
                "output_index": 0,
                "item": message(item, "assistant", "in_progress", []),
            },
            0,
        ),
        (
            end + 701,
            {
                "type": "conversation.item.added",
                "previous_item_id": user,
                "item": message(item, "assistant", "in_progress", []),
            },
            0,
        ),
        (
            end + 702,
            {
                "type": "response.content_part.added",
                **part,
                "part": {"type": "audio", "transcript": ""},
            },
            0,
        ),
    ]
    a0 = end + 720
    words = said.split()
    for k in range(SPEAK_MS // DELTA_MS):
        t = a0 + k * DELTA_MS
        out.append((t, {"type": "response.output_audio.delta", **part, "delta": ""}, DELTA_MS))
        if k % 4 == 0 and k // 4 < len(words):
            delta = {
                "type": TRANSCRIPT,
                **part,
                "delta": " " + words[k // 4],
                "obfuscation": "a1b2c3",
            }
            out.append((t + 1, delta, 0))
    done = a0 + SPEAK_MS
    final = message(item, "assistant", "completed", [{"type": "output_audio", "transcript": said}])
    usage = {
        "total_tokens": 500,
        "input_tokens": 380,
        "output_tokens": 120,
        "input_token_details": {"text_tokens": 200, "audio_tokens": 180, "cached_tokens": 128},
        "output_token_details": {"text_tokens": 30, "audio_tokens": 90},
    }
    out += [
        (done, {"type": "response.output_audio.done", **part}, 0),
        (
            done + 1,
            {"type": "response.output_audio_transcript.done", **part, "transcript": said},
            0,
        ),
        (
            done + 2,
            {
                "type": "response.content_part.done",
                **part,
                "part": {"type": "audio", "transcript": said},
            },
            0,
        ),
        (done + 3, {"type": "conversation.item.done", "previous_item_id": user, "item": final}, 0),
        (
            done + 4,
            {
                "type": "response.output_item.done",
                "response_id": resp,
                "output_index": 0,
                "item": final,
            },
            0,
        ),
        (
            done + 5,
            {
                "type": "response.done",
                "response": {
                    "object": "realtime.response",
                    "id": resp,
                    "status": "completed",
                    "status_details": None,
                    "output": [final],
                    "conversation_id": "conv_bench",
                    "usage": usage,
                },
            },
            0,
        ),
        (
            done + 40,
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "tokens", "limit": 40000, "remaining": 39000, "reset_seconds": 1.2}
                ],
            },
            0,
        ),
        (
            done + 60,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": user,
                "content_index": 0,
                "transcript": "what is the weather like",
                "usage": {"type": "duration", "seconds": 3},
            },
            0,
        ),
    ]
    return out


def make_session(minutes: float) -> list[FrameRecord]:
    """The rows of a voice session ``minutes`` long (see the module docstring)."""
    log = Log()
    session = {
        "type": "realtime",
        "id": "sess_bench",
        "model": "gpt-realtime",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": RATE}},
            "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "marin"},
        },
    }
    log.add(0, {"type": "session.created", "session": session})
    rng = random.Random(7)
    turns = int(minutes * 60_000 // TURN_MS)
    timeline: list[tuple[float, dict[str, Any], int]] = []
    previous = None
    for n in range(turns):
        timeline += turn_events(n, previous, rng)
        previous = f"item_a{n}"
    # the microphone streams throughout, interleaved with the server's events by time
    for k, t in enumerate(range(0, turns * TURN_MS, MIC_MS)):
        append = {"type": "input_audio_buffer.append", "event_id": f"evt_mic_{k}", "audio": ""}
        timeline.append((t, append, MIC_MS))
    timeline.sort(key=lambda x: x[0])
    for t, event, audio_ms in timeline:
        log.add(t, event, audio_ms)
    return log.rows


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """The fastest of ``repeat`` runs, in seconds: wall time, and the CPU time of this
    process (which the other jobs of a shared machine disturb less)."""
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="session length")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best shown)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rows = make_session(args.minutes)
    built = time.perf_counter() - t0
    seconds = rows[-1].t_ns / 1e9
    kinds = Counter(r.type for r in rows)

    title = f"replay reducer: {len(rows):,} events, {seconds / 60:.1f} min of session"
    table = Table(title=f"{title} ({len(rows) / seconds:.1f} events/s)")
    for column in ("workload", "events", "time", "CPU", "events/s"):
        table.add_column(column, justify="left" if column == "workload" else "right")

    def add(name: str, subset: list[FrameRecord], fn: Callable[[], Any]) -> float:
        took, cpu = best(fn, args.repeat)
        table.add_row(
            name,
            f"{len(subset):,}",
            f"{took * 1000:,.1f} ms",
            f"{cpu * 1000:,.1f} ms",
            f"{len(subset) / took:,.0f}",
        )
        return took

    for kind in (*HOT, TRANSCRIPT):
        subset = [r for r in rows if r.type == kind]
        add(f"only {kind}", subset, lambda s=subset: fold(INITIAL, s))
    others = [r for r in rows if r.type not in (*HOT, TRANSCRIPT)]
    add("only the other events (typed path)", others, lambda: fold(INITIAL, others))
    fold_time = add("[b]fold, whole session[/b]", rows, lambda: fold(INITIAL, rows))
    # what a log reader hands over: the same rows as columns, folded without a record each
    columns = FrameColumns.from_records(rows)
    add("fold, whole session, as FrameColumns", rows, lambda: fold(INITIAL, columns))
    rebuild_time = add(
        "[b]rebuild: fold + a checkpoint every 1024[/b]", rows, lambda: rebuild(rows)
    )

    replay = rebuild(rows)
    rng = random.Random(3)
    points = [rng.randrange(rows[-1].seq) for _ in range(200)]
    took, cpu = best(lambda: [replay.state_at(p) for p in points], args.repeat)
    table.add_row(
        "state_at(random seq)",
        f"{len(points)} lookups",
        f"{took / len(points) * 1e6:,.0f} µs each",
        f"{cpu / len(points) * 1e6:,.0f} µs each",
        "",
    )

    console = Console(width=110)
    console.print(table)
    mix = ", ".join(f"{k} {v / len(rows):.0%}" for k, v in kinds.most_common(3))
    console.print(f"mix: {mix}; building the rows took {built:.1f} s (not measured)")
    console.print(
        f"targets: >= 300,000 events/s (fold: {len(rows) / fold_time:,.0f}); "
        f"one hour rebuilt in < 1 s (rebuild: {rebuild_time:.2f} s for {args.minutes:g} min)"
    )


if __name__ == "__main__":
    main()
