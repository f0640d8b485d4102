"""The recorder benchmark measures real, intact traffic (its correctness, not its speed).

bench/bench_recorder.py runs each relay and its load generator as processes of their own,
on 127.0.0.1; the smoke test does the same for about a second. No assertion here is about
time: speed is what the benchmark prints, never what a test checks.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from rtrec.schemas import from_json

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load(name: str) -> ModuleType:
    """Import a bench/ script as a module (bench/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loadgen() -> ModuleType:
    return load("relay_loadgen")


def test_load_generator_messages_are_valid_realtime_events(loadgen) -> None:
    """Every kind of message the load generator sends fits the protocol model strictly."""
    messages = loadgen.Messages(loadgen.load_chunks())
    kinds = {}
    for k in range(8):
        for text in (messages.client(3, k, 123), messages.server(3, k, 456)):
            event = from_json(text)  # raises SchemaError on a shape the protocol lacks
            kinds[event.type] = len(text)
    assert set(kinds) == {
        "session.update",
        "input_audio_buffer.append",
        "session.created",
        "response.created",
        "response.output_audio.delta",
        "response.output_audio_transcript.delta",
    }
    # 100 ms of 24 kHz PCM16 is 4800 bytes, 6400 characters of base64
    assert kinds["input_audio_buffer.append"] > 6400
    assert kinds["response.output_audio.delta"] > 6400


def test_receiver_reports_lost_reordered_and_altered_frames(loadgen) -> None:
    """The load generator's receive check catches a frame altered by one byte, a lost
    frame and a frame from another session, and samples latency only inside the window."""
    messages = loadgen.Messages(loadgen.load_chunks())
    run = loadgen.Run()
    run.window = (1_000, 2_000)
    flow = loadgen.Flow(7, messages.server)
    run.receive(flow, "server", messages.server(7, 0, 500))  # before the window
    run.receive(flow, "server", messages.server(7, 1, 1_500))
    assert (run.problems, run.frames_in_window) == (0, 1)

    good = messages.server(7, 2, 1_600)
    run.receive(flow, "server", good.replace('"delta":"', '"delta":"A', 1))
    run.receive(flow, "server", messages.server(7, 4, 1_700))  # #3 never arrived
    run.receive(flow, "server", messages.server(8, 5, 1_800))
    run.receive(flow, "server", b"binary")
    assert run.problems == 4
    assert [note.split(": ", 1)[1] for note in run.problem_notes] == [
        "altered in transit",
        "expected #3, got session 7 #4",
        "expected #4, got session 8 #5",  # arrivals are counted: one late frame, not all
        "binary frame",
    ]
    assert run.frames_in_window == 1


def test_smoke_two_sessions_through_rtrec_arrive_intact() -> None:
    """Two paced voice sessions through the rtrec relay (a real DuckDB log + FLAC) for
    about a second: every frame arrives byte for byte and in order, both ways, and the
    log holds every frame, with every 100 ms audio chunk cut out into the FLAC archive."""
    bench = load("bench_recorder")
    trial = bench.run_trial("rtrec", 2, warmup=0.4, duration=1.0)
    result = trial.load
    assert result["problem_notes"] == []
    assert result["problems"] == 0
    assert result["connected"] == 2
    assert result["received_total"] == result["sent_total"]
    # at least the greetings and a few 100 ms ticks of audio each way, per session
    assert result["sent_total"] >= 2 * (1 + 2 + 4 * 5)
    assert result["frames_in_window"] > 0
    log = trial.done
    assert log["frames"] == result["sent_total"]  # every frame is in the log
    assert (log["sessions"], log["sessions_closed"]) == (2, 2)
    # one audio chunk per tick each way: ~1/4 of the frames, each 2400 samples in the FLAC
    assert log["audio_frames"] > result["sent_total"] // 5
    assert log["audio_cut"] == log["audio_frames"]
    assert log["flac_samples"] == 2400 * log["audio_frames"]
    assert trial.stored_bytes > 0
    assert trial.intact
