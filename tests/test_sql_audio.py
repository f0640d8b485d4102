"""`rtrec audio`: streams exactly as archived, one item's audio, and the stereo mix placed
on the session's timeline (checked chunk by chunk against the frames' arrival times)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.schemas.storage import Stream
from rtrec.store.session_audio import MIX_RATE
from tests.logdata import speech
from tests.test_sql_views import Conversation, write


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Conversation]:
    """A log holding the scripted three-turn conversation."""
    c = Conversation()
    db = tmp_path / "rtrec.duckdb"
    trio.run(write, db, c.s)
    return db, c


def run_audio(db: Path, c: Conversation, out: Path, *args: str) -> np.ndarray:
    """Run `rtrec audio` and read the file it wrote as int16."""
    done = CliRunner().invoke(
        cli, ["audio", c.s.session_id[:8], "--db", str(db), "-o", str(out), *args]
    )
    assert done.exit_code == 0, done.output
    data, rate = sf.read(str(out), dtype="int16")
    assert rate == MIX_RATE
    return np.asarray(data)


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_each_stream_comes_back_sample_exact(recorded, tmp_path, suffix):
    """--stream input/output writes every archived sample, in FLAC or WAV."""
    db, c = recorded
    for stream in (Stream.INPUT, Stream.OUTPUT):
        got = run_audio(db, c, tmp_path / f"{stream}{suffix}", "--stream", stream.value)
        np.testing.assert_array_equal(got, c.s.samples(stream))


def test_an_items_audio(recorded, tmp_path):
    """An assistant item is its output deltas; a user item is its VAD span of the input."""
    db, c = recorded
    voice = speech("weather")
    got = run_audio(db, c, tmp_path / "a.flac", "--item", "item_resp_1")
    np.testing.assert_array_equal(got, voice[:4800])
    got = run_audio(db, c, tmp_path / "u.flac", "--item", "item_u1")
    # speech_started at 100 ms, speech_stopped at 500 ms of the input stream
    np.testing.assert_array_equal(got, c.s.samples(Stream.INPUT)[2400:12000])


def test_the_mix_places_chunks_on_the_session_timeline(recorded, tmp_path):
    """User left, assistant right; a chunk starts when heard, after the one before it, and
    input sent faster than real time delays everything after it on the timeline."""
    db, c = recorded
    mix = run_audio(db, c, tmp_path / "mix.wav", "--stream", "mix")
    assert mix.ndim == 2
    assert mix.shape[1] == 2
    left, right = mix[:, 0], mix[:, 1]
    # Three 200 ms input chunks arrived at 40, 60 and 80 ms: recorded back to back from 0,
    # so the last one cannot have been sent before 600 ms: 520 ms later than it was.
    np.testing.assert_array_equal(left[:14400], c.s.samples(Stream.INPUT))
    assert not left[14400:].any()
    lag = (600 - 80) * MIX_RATE // 1000
    voice = speech("weather")
    # resp_1's two 100 ms deltas arrived 20 ms apart (after the input, so 520 ms later on
    # the timeline): the second queues behind the first.
    at = c.t["audio1"] * MIX_RATE // 10**9 + lag
    assert not right[:at].any()
    np.testing.assert_array_equal(right[at : at + 4800], voice[:4800])
    # resp_3's delta arrived later than resp_1's audio ended: it starts on arrival.
    at3 = c.t["audio3"] * MIX_RATE // 10**9 + lag
    assert at3 > at + 4800
    assert not right[at + 4800 : at3].any()
    np.testing.assert_array_equal(right[at3 : at3 + 4800], voice[:4800])
    assert len(mix) == at3 + 4800


def test_bad_requests_say_what_is_wrong(recorded, tmp_path):
    """An unknown item or file type is a one-line error, not a traceback."""
    db, c = recorded
    runner = CliRunner()
    done = runner.invoke(
        cli,
        ["audio", c.s.session_id, "--db", str(db), "--item", "nope", "-o", str(tmp_path / "x.wav")],
    )
    assert done.exit_code == 2
    assert "no item 'nope' in session" in done.output
    # an assistant item asked for on the input stream: said, not the output written instead
    done = runner.invoke(
        cli,
        [
            "audio",
            c.s.session_id,
            "--db",
            str(db),
            "--item",
            "item_resp_1",
            "--stream",
            "input",
            "-o",
            str(tmp_path / "x.wav"),
        ],
    )
    assert done.exit_code == 2
    assert "item item_resp_1 has output audio" in done.output
    assert not (tmp_path / "x.wav").exists()
    done = runner.invoke(cli, ["audio", c.s.session_id, "--db", str(db), "-o", "x.mp3"])
    assert done.exit_code == 2
    assert "must end in .flac or .wav" in done.output
