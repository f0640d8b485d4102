"""Per-frame cost of the recorder's capture core (src/rtrec/recorder/capture.py), without sockets.

This is what recording adds to relaying, per message, before the log writer: locate and
cut the audio, decode it once, parse the small remainder, build the records.

    python bench/bench_capture.py [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import pybase64
from rich.console import Console
from rich.table import Table

from rtrec.recorder.capture import SessionCapture
from rtrec.schemas.storage import Direction

AUDIO = pybase64.b64encode(os.urandom(4800)).decode()  # 100 ms of 24 kHz PCM16
IDS = {
    "event_id": "event_CJJfX0dbyLc5DyQ4mLXGc",
    "response_id": "resp_CJJfWyUlvfxmqdjXsHrdA",
    "item_id": "item_CJJfWw6Ez1DbDCyBkrEGM",
    "output_index": 0,
    "content_index": 0,
}
FRAMES = {
    "response.output_audio.delta (compact)": (
        Direction.SERVER,
        json.dumps(
            {"type": "response.output_audio.delta", **IDS, "delta": AUDIO}, separators=(",", ":")
        ),
    ),
    "input_audio_buffer.append (SDK spacing)": (
        Direction.CLIENT,
        json.dumps({"type": "input_audio_buffer.append", "audio": AUDIO}),
    ),
    "response.output_audio_transcript.delta": (
        Direction.SERVER,
        json.dumps(
            {
                "type": "response.output_audio_transcript.delta",
                **IDS,
                "delta": " weather",
                "obfuscation": "k2J",
            },
            separators=(",", ":"),
        ),
    ),
    "conversation.item.create with input_audio (slow path)": (
        Direction.CLIENT,
        json.dumps(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_audio", "audio": AUDIO}],
                },
            }
        ),
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="frames per measurement")
    args = parser.parse_args()
    table = Table(title="capture cost per frame (best of 5)")
    table.add_column("frame")
    table.add_column("bytes", justify="right")
    table.add_column("µs/frame", justify="right")
    for name, (direction, frame) in FRAMES.items():
        capture = SessionCapture("bench")
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(args.n):
                capture.frame(direction, frame, 0, 0)
            best = min(best, (time.perf_counter() - t0) / args.n)
        table.add_row(name, f"{len(frame):,}", f"{best * 1e6:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
