"""Issue #17's "Done when", end to end, with real processes and the official SDK.

`rtrec sim` and `rtrec record` run as the commands a user starts. The SDK's
`client.live.connect()` holds the same conversation with the simulator directly and
through the recorder: speech in, speech out, and a function call delegated to a Responses
model (the nested `response.event` stream, the client's output, the spoken answer). A
Realtime session goes through the same recorder beside it. Then, on the log:

- both Live conversations are the same, event for event (the proxy changes nothing, the
  simulator is deterministic);
- `rtrec replay` shows both transcripts in time order, and the call;
- the FLACs of `rtrec export` hold exactly the audio the client sent and received;
- `rtrec sql "SELECT * FROM session_summary"` lists the Live session beside the Realtime one;
- `rtrec playback` serves the exported bundle back to the same client twice, byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner, Result

from rtrec.cli import cli

from .simkit import SCENARIOS
from .test_sim_cli import first_line, text_turn
from .test_sim_live import Conversation, validate, weather_call

RTREC = Path(sys.executable).parent / "rtrec"
RESPONSES = {"type": "responses", "responses": {"model": "gpt-5.2"}}
ANSWER = 'Here is what the weather service says: {"c":14}'


@contextmanager
def rtrec_server(*args: str) -> Iterator[str]:
    """`rtrec ARGS` as a process: yields the URL of its first stdout line; SIGINT stops it,
    and it must exit 0 without a traceback (the recorder commits its log then)."""
    proc = subprocess.Popen(
        [str(RTREC), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        url = first_line(proc)
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/v1", url), url
        yield url
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@attrs.frozen
class Recorded:
    db: Path
    direct: Conversation
    recorded: Conversation
    live_id: str
    realtime_id: str


def rtrec(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def sql(db: Path, query: str) -> list[dict[str, str]]:
    result = rtrec("sql", "--db", db, "--format", "csv", query)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.output)))


def record(db: Path) -> Recorded:
    """The conversation, directly with `rtrec sim` and through `rtrec record`, and a
    Realtime text turn through the same recorder; the recorder stopped (log committed)."""
    weather = str(SCENARIOS / "weather.toml")
    sim_args = ("sim", "--listen", "127.0.0.1:0", "--pace", "fast", "--scenario", weather)
    with rtrec_server(*sim_args) as sim:
        direct = asyncio.run(asyncio.wait_for(weather_call(sim, RESPONSES), 60))
        rec_args = ("record", "--listen", "127.0.0.1:0", "--upstream", sim, "--db", str(db), "-q")
        with rtrec_server(*rec_args) as recorder:
            recorded = asyncio.run(asyncio.wait_for(weather_call(recorder, RESPONSES), 60))
            asyncio.run(asyncio.wait_for(text_turn(recorder), 20))
    ids = {row["protocol"]: row["session_id"] for row in sql(db, "SELECT * FROM sessions")}
    assert set(ids) == {"live", "ga"}
    return Recorded(db, direct, recorded, ids["live"], ids["ga"])


def said(talk: Conversation, kind: str) -> str:
    return "".join(e["delta"] for e in talk.of(kind))


def the_sdk_holds_the_conversation_directly_and_through_the_recorder(
    session: Recorded,
) -> None:
    """Speech in and out and a delegated function call, with `rtrec sim` directly and
    through `rtrec record`: the same events either way, every one valid for the SDK."""
    talk = session.recorded
    for event in talk.events:
        validate(event)
    assert talk.frames == session.direct.frames  # byte for byte
    assert bytes(talk.sent_pcm) == bytes(session.direct.sent_pcm)
    assert said(talk, "session.input_transcript.delta") == (
        "What is the weather like in Paris today?"
    )
    assert said(talk, "session.output_transcript.delta").endswith(ANSWER)
    (created,) = talk.of("session.delegation.created")
    assert created["delegation"]["target"] == "responses"
    done = [e["event"] for e in talk.of("response.event")]
    call = next(e["item"] for e in done if e["type"] == "response.output_item.done")
    assert (call["type"], call["name"]) == ("function_call", "get_weather")
    assert talk.of("session.closed")[0]["reason"] == "close_requested"


def replay_shows_both_transcripts_in_time_order_and_the_call(session: Recorded) -> None:
    """`rtrec replay ID --db LOG`: the user's question, then the assistant's words, each
    stamped with its place on the session timeline, and the delegated get_weather call."""
    result = rtrec("replay", session.live_id, "--db", session.db)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    stamped = [line for line in lines if re.match(r"\[\d\d:\d\d\.\d{3}\] ", line)]
    assert stamped == sorted(stamped)  # time order ([mm:ss.mmm] sorts as text)
    user = next(i for i, line in enumerate(lines) if "] user: " in line)
    assistant = next(i for i, line in enumerate(lines) if "] assistant: " in line)
    assert lines[user].endswith("user: What is the weather like in Paris today?")
    assert lines[assistant].endswith(ANSWER)
    assert user < assistant
    (call,) = [line for line in lines if " delegation " in line]
    assert 'to responses calls get_weather({"city":"Paris","unit":"celsius"})' in call


def pcm(data: bytes | bytearray) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype="<i2")


def the_flacs_hold_exactly_the_audio_exchanged(session: Recorded, tmp_path: Path) -> None:
    """`rtrec export`'s input.flac decodes to the samples the client sent, and output.flac
    to the samples of every output audio delta it received, in order."""
    bundle = tmp_path / "bundle"
    result = rtrec("export", session.live_id, "--db", session.db, "--out", bundle)
    assert result.exit_code == 0, result.output
    heard, heard_rate = sf.read(bundle / "input.flac", dtype="int16")
    played, played_rate = sf.read(bundle / "output.flac", dtype="int16")
    assert heard_rate == played_rate == 24000
    talk = session.recorded
    assert np.array_equal(heard, pcm(talk.sent_pcm))
    received = b"".join(base64.b64decode(e["delta"]) for e in talk.of("session.output_audio.delta"))
    assert np.array_equal(played, pcm(received))
    assert np.abs(played).max() > 1000  # speech, not only the silence between


def session_summary_lists_the_live_session_beside_the_realtime_one(
    session: Recorded,
) -> None:
    """`rtrec sql "SELECT * FROM session_summary"` has a row for each session of the log,
    the Live one beside the Realtime one: its protocol, model, close reason, the seconds it
    is billed (the usage of its session.closed) and their cost, the audio the client sent
    and the speech both transcripts cover."""
    rows = {r["session_id"]: r for r in sql(session.db, "SELECT * FROM session_summary")}
    assert set(rows) == {session.live_id, session.realtime_id}
    live, realtime = rows[session.live_id], rows[session.realtime_id]
    assert (realtime["protocol"], realtime["model"], realtime["status"]) == (
        "ga",
        "gpt-realtime",
        "closed",
    )
    assert (live["protocol"], live["model"], live["status"], live["close_reason"]) == (
        "live",
        "gpt-live-1",
        "closed",
        "close_requested",
    )
    talk = session.recorded
    (closed,) = talk.of("session.closed")
    assert float(live["billed_s"]) == closed["usage"]["seconds"]
    assert float(live["cost_usd"]) > 0
    assert float(live["input_audio_s"]) == pytest.approx(len(talk.sent_pcm) / 48000)
    user = talk.of("session.input_transcript.delta")
    assert float(live["user_speech_s"]) == pytest.approx(
        (user[-1]["end_ms"] - user[0]["start_ms"]) / 1000
    )
    assert float(live["assistant_speech_s"]) > 0


def playback_serves_the_bundle_twice_with_identical_bytes(session: Recorded, bundle: Path) -> None:
    """`rtrec playback BUNDLE --serve` (a process) serves the exported bundle back to the
    same client twice: both runs get, byte for byte, the frames the simulator sent when it
    was recorded."""
    serve = ("playback", str(bundle), "--serve", "127.0.0.1:0", "--pace", "instant")
    with rtrec_server(*serve) as url:
        first = asyncio.run(asyncio.wait_for(weather_call(url, RESPONSES), 60))
        second = asyncio.run(asyncio.wait_for(weather_call(url, RESPONSES), 60))
    assert first.frames == second.frames == session.recorded.frames


def test_done_when(tmp_path: Path) -> None:
    """Issue #17's "Done when", in one run of the processes (they take most of its time):
    each check below is one of its points."""
    session = record(tmp_path / "log.duckdb")
    the_sdk_holds_the_conversation_directly_and_through_the_recorder(session)
    replay_shows_both_transcripts_in_time_order_and_the_call(session)
    the_flacs_hold_exactly_the_audio_exchanged(session, tmp_path)
    session_summary_lists_the_live_session_beside_the_realtime_one(session)
    playback_serves_the_bundle_twice_with_identical_bytes(session, tmp_path / "bundle")
