"""Throughput of the schema layer: from_dict + to_dict over a realistic event mix.

A voice session is mostly audio: the mix is 60% response.output_audio.delta (100 ms of 24 kHz
PCM16, 6.4 KB of base64), 20% input_audio_buffer.append (same size), 15% transcript deltas
(with GA's ``obfuscation`` field) and 5% larger events (response.done with usage, item
events, session.updated). The schema layer never decodes base64, so audio size barely matters.
A GPT-Live mix (parsed through its dialect, per direction) follows: 50% output audio, 35%
input audio, 12% transcript deltas, 3% larger events (session.started, a nested
response.event).

    python bench/bench_schema.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import base64
import random
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from rtrec.schemas import from_dict, from_json, to_dict, to_json
from rtrec.schemas.dialects import LIVE
from rtrec.schemas.storage import Direction

AUDIO = base64.b64encode(random.Random(0).randbytes(4800)).decode()

AUDIO_DELTA = {
    "type": "response.output_audio.delta",
    "event_id": "event_CJJfX0dbyLc5DyQ4mLXGc",
    "response_id": "resp_CJJfWyUlvfxmqdjXsHrdA",
    "item_id": "item_CJJfWw6Ez1DbDCyBkrEGM",
    "output_index": 0,
    "content_index": 0,
    "delta": AUDIO,
}
APPEND = {"type": "input_audio_buffer.append", "event_id": "evt_client_0042", "audio": AUDIO}
TRANSCRIPT_DELTA = {
    "type": "response.output_audio_transcript.delta",
    "event_id": "event_CJJfX2a0f3kQy1mPZ2V8s",
    "response_id": "resp_CJJfWyUlvfxmqdjXsHrdA",
    "item_id": "item_CJJfWw6Ez1DbDCyBkrEGM",
    "output_index": 0,
    "content_index": 0,
    "delta": " weather",
    "obfuscation": "k2Jd8",
}
RESPONSE_DONE = {
    "type": "response.done",
    "event_id": "event_CJJfZ1n0Vb6TtNQeP4Ls2",
    "response": {
        "object": "realtime.response",
        "id": "resp_CJJfWyUlvfxmqdjXsHrdA",
        "status": "completed",
        "status_details": None,
        "output": [
            {
                "id": "item_CJJfWw6Ez1DbDCyBkrEGM",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_audio", "transcript": "It is sunny in Paris today."}],
            }
        ],
        "conversation_id": "conv_CJJfVsw3cDBHvE4KqnzUA",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
        "usage": {
            "total_tokens": 312,
            "input_tokens": 201,
            "output_tokens": 111,
            "input_token_details": {
                "text_tokens": 150,
                "audio_tokens": 51,
                "image_tokens": 0,
                "cached_tokens": 128,
                "cached_tokens_details": {"text_tokens": 128, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": 24, "audio_tokens": 87},
        },
        "metadata": None,
    },
}
ITEM_DONE = {
    "type": "conversation.item.done",
    "event_id": "event_CJJfX3xq0s9P2dC8aHr2v",
    "previous_item_id": "item_CJJfVtJq3mD8tUiJXhxcs",
    "item": {
        "id": "item_CJJfWw6Ez1DbDCyBkrEGM",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    },
}

MIX: list[tuple[str, dict[str, Any], int]] = [
    ("response.output_audio.delta", AUDIO_DELTA, 60),
    ("input_audio_buffer.append", APPEND, 20),
    ("response.output_audio_transcript.delta", TRANSCRIPT_DELTA, 15),
    ("response.done", RESPONSE_DONE, 3),
    ("conversation.item.done", ITEM_DONE, 2),
]

LIVE_AUDIO_DELTA = {"type": "session.output_audio.delta", "delta": AUDIO}
LIVE_APPEND = {"type": "session.input_audio.append", "event_id": "c_0042", "audio": AUDIO}
LIVE_TRANSCRIPT = {
    "type": "session.output_transcript.delta",
    "event_id": "evt_0981",
    "delta": " weather",
    "start_ms": 12_340,
    "end_ms": 12_520,
}
LIVE_STARTED = {
    "type": "session.started",
    "event_id": "evt_0001",
    "client_event_id": "c_0001",
    "session": {
        "id": "live_u1_abc",
        "expires_at": 1_767_232_800,
        "model": "gpt-live-1",
        "status": "active",
        "instructions": "Be brief.",
        "audio": {"format": {"type": "audio/pcm", "rate": 24000}, "output": {"voice": "marin"}},
        "delegation": {
            "type": "responses",
            "responses": {
                "model": "gpt-5",
                "tools": [
                    {
                        "type": "function",
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    }
                ],
            },
        },
    },
}
LIVE_RESPONSE_EVENT = {
    "type": "response.event",
    "event_id": "evt_0512",
    "delegation_id": "del_1",
    "event": {
        "type": "response.output_item.done",
        "output_index": 0,
        "item": {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        },
    },
}

LIVE_MIX: list[tuple[str, dict[str, Any], int, Direction]] = [
    ("live session.output_audio.delta", LIVE_AUDIO_DELTA, 50, Direction.SERVER),
    ("live session.input_audio.append", LIVE_APPEND, 35, Direction.CLIENT),
    ("live session.output_transcript.delta", LIVE_TRANSCRIPT, 12, Direction.SERVER),
    ("live session.started", LIVE_STARTED, 2, Direction.SERVER),
    ("live response.event", LIVE_RESPONSE_EVENT, 1, Direction.SERVER),
]


def rate(fn: Callable[[], Any], items: int, seconds: float) -> float:
    """Items per second of ``fn`` (which processes ``items`` items), best of repeated runs."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return items / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    args = parser.parse_args()

    mix = [obj for _, obj, weight in MIX for _ in range(weight)]
    random.Random(1).shuffle(mix)
    frames = [to_json(from_dict(obj)) for obj in mix]
    live_mix = [(obj, d) for _, obj, weight, d in LIVE_MIX for _ in range(weight)]
    random.Random(1).shuffle(live_mix)

    def parse_live(pairs: list[tuple[dict[str, Any], Direction]]) -> Callable[[], None]:
        def run() -> None:
            for obj, direction in pairs:
                LIVE.parse(direction, obj)

        return run

    def round_trip_live(pairs: list[tuple[dict[str, Any], Direction]]) -> Callable[[], None]:
        def run() -> None:
            for obj, direction in pairs:
                to_dict(LIVE.parse(direction, obj))

        return run

    def round_trip(objs: list[dict[str, Any]]) -> Callable[[], None]:
        def run() -> None:
            for obj in objs:
                to_dict(from_dict(obj))

        return run

    def parse_only(objs: list[dict[str, Any]]) -> Callable[[], None]:
        def run() -> None:
            for obj in objs:
                from_dict(obj)

        return run

    def json_round_trip() -> None:
        for frame in frames:
            to_json(from_json(frame))

    table = Table(title="rtrec.schemas throughput (events/s, best run)")
    table.add_column("workload")
    table.add_column("from_dict / parse", justify="right")
    table.add_column("+ to_dict", justify="right")
    for name, obj, _ in MIX:
        objs = [obj] * 1000
        table.add_row(
            name,
            f"{rate(parse_only(objs), 1000, args.seconds / 4):,.0f}",
            f"{rate(round_trip(objs), 1000, args.seconds / 4):,.0f}",
        )
    table.add_row(
        "[b]realistic mix[/b]",
        f"[b]{rate(parse_only(mix), len(mix), args.seconds):,.0f}[/b]",
        f"[b]{rate(round_trip(mix), len(mix), args.seconds):,.0f}[/b]",
    )
    table.add_row(
        "mix incl. JSON text (from_json + to_json)",
        "",
        f"{rate(json_round_trip, len(frames), args.seconds):,.0f}",
    )
    for name, obj, _, direction in LIVE_MIX:
        pairs = [(obj, direction)] * 1000
        table.add_row(
            name,
            f"{rate(parse_live(pairs), 1000, args.seconds / 4):,.0f}",
            f"{rate(round_trip_live(pairs), 1000, args.seconds / 4):,.0f}",
        )
    table.add_row(
        "[b]GPT-Live mix (dialect.parse)[/b]",
        f"[b]{rate(parse_live(live_mix), len(live_mix), args.seconds):,.0f}[/b]",
        f"[b]{rate(round_trip_live(live_mix), len(live_mix), args.seconds):,.0f}[/b]",
    )
    Console().print(table)
    print("target: >= 150,000 events/s for from_dict + to_dict over the realistic mix")


if __name__ == "__main__":
    main()
