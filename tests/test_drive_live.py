"""Re-driving a GPT-Live recording (`rtrec replay SESSION --drive`): the client side of a
Live conversation, recorded with the official SDK's ``client.live.connect()`` through
`rtrec record` from `rtrec sim`, is sent again to the simulator (another seed, so other
ids) and recorded as a new session; its conversation equals the recorded one, the
delegation id the new server chose is rewritten in the client's answer, and the audio sent
is the recorded audio. From the command line, the same scenario exits 0 and a changed one
exits 1 with the change named.

Rules: real sockets on 127.0.0.1 port 0, a ``trio.fail_after`` cap per async test.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import orjson
import pytest
import trio
from click.testing import CliRunner, Result

from rtrec.cli import cli
from rtrec.replay.driver import DRIVE_TAG, DriveOptions, DriveResult, drive_session, load_plan
from rtrec.replay.live import diff_live, fold_live
from rtrec.replay.playback import Pace
from rtrec.schemas.dialects import LIVE
from rtrec.schemas.storage import Direction, SessionStatus
from rtrec.simulator import serve_simulator
from rtrec.store.bundle import read_bundle
from rtrec.store.reader import read_audio, read_frames, read_sessions

from .liveplay import WEATHER, LiveBehaviour, record_live
from .playkit import SESSIONS
from .simkit import SCENARIOS


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Live weather conversation recorded from the simulator: (log, bundle)."""
    work = tmp_path_factory.mktemp("live-drive")
    db, _, _ = record_live(work)
    return db, work / "bundle"


@pytest.fixture(scope="module")
def recorded_responses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conversation under Responses delegation, as a bundle."""
    work = tmp_path_factory.mktemp("live-drive-responses")
    record_live(work, LiveBehaviour(delegation="responses"))
    return work / "bundle"


async def drive_against_sim(bundle: Path, db: Path, seed: int) -> DriveResult:
    """Drive ``bundle`` at instant pace against the simulator (``seed``) into ``db``."""
    plan, audio = load_plan(bundle)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(
                functools.partial(serve_simulator, scenario=WEATHER, pace="fast", seed=seed)
            )
            with audio:
                result = await drive_session(
                    plan,
                    audio,
                    upstream=sim,
                    db=db,
                    api_key="sk-test",
                    options=DriveOptions(pace=Pace.parse("instant"), wait_timeout=30),
                )
            nursery.cancel_scope.cancel()
    return result


async def test_redriving_a_backend_call_answers_the_new_call(
    recorded_responses: Path, tmp_path: Path
) -> None:
    """Under Responses delegation the recorded function_call_output waits for the new
    run's call (inside ``response.event``) and carries its call id; the conversation is
    equal."""
    db = tmp_path / "new.duckdb"
    result = await drive_against_sim(recorded_responses, db, seed=9)
    report = result.report
    assert report.failure is None, report.failure
    assert report.stalled is None, report.stalled
    assert result.session_id is not None
    old = list(read_bundle(recorded_responses).frames)
    new = list(read_frames(db, result.session_id))
    diff = diff_live(fold_live(old), fold_live(new))
    assert diff.equal, diff.report()
    (old_call,) = [c["call_id"] for d in fold_live(old).delegations.values() for c in d.calls]
    (new_call,) = [c["call_id"] for d in fold_live(new).delegations.values() for c in d.calls]
    assert old_call != new_call
    assert report.rewritten[old_call] == new_call
    (output,) = [
        orjson.loads(f.payload or "")
        for f in new
        if f.direction is Direction.CLIENT and f.type == "response.item.create"
    ]
    assert output["item"]["call_id"] == new_call


async def test_redriving_records_an_equal_live_session(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    """The new session is a Live session tagged with the recorded one's id; its
    conversation equals the recorded one (diff_live); the client's commentary names the
    delegation the new server opened, not the recorded one; the input audio is the
    recorded audio, sample for sample."""
    old_db, bundle = recorded
    plan, audio = load_plan(bundle)
    audio.close()
    assert plan.dialect is LIVE
    assert plan.appends > 50
    db = tmp_path / "new.duckdb"
    result = await drive_against_sim(bundle, db, seed=7)
    report = result.report
    assert report.failure is None, report.failure
    assert report.stalled is None, report.stalled
    assert result.session_id is not None
    (row,) = read_sessions(db)
    assert (row.protocol, row.request_path) == ("live", "/v1/live/sessions")
    assert row.status == SessionStatus.CLOSED
    assert orjson.loads(row.tags) == {DRIVE_TAG: plan.session_id}

    old = list(read_bundle(bundle).frames)
    new = list(read_frames(db, result.session_id))
    diff = diff_live(fold_live(old), fold_live(new))
    assert diff.equal, diff.report()

    (old_delegation,) = fold_live(old).delegations
    (new_delegation,) = fold_live(new).delegations
    assert old_delegation != new_delegation  # another seed: another id
    assert report.rewritten == {old_delegation: new_delegation}
    (answer,) = [
        orjson.loads(f.payload or "")
        for f in new
        if f.direction is Direction.CLIENT and f.type == "session.commentary.append"
    ]
    assert answer["delegation_id"] == new_delegation

    (old_row,) = read_sessions(old_db)
    sent, rate = read_audio(db, result.session_id, "input")
    heard, old_rate = read_audio(old_db, old_row.session_id, "input")
    assert rate == old_rate
    assert np.array_equal(sent, heard)


def rtrec(*args: str | Path) -> Result:
    """Run the rtrec command line in-process."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_the_command_drives_a_live_bundle_against_the_simulator(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    """``rtrec replay BUNDLE --drive sim`` with the recording's scenario: the new session
    and "equal", exit 0; with a scenario whose user says another city, exit 1 and the
    user's words named in the diff, which ``rtrec diff`` then repeats; a Live session and
    a Realtime one are not compared (exit 2)."""
    _, bundle = recorded
    weather = SCENARIOS / "weather.toml"
    same = rtrec(
        "replay", bundle, "--drive", "sim", "--scenario", weather, "--seed", "3",
        "--pace", "instant", "--db", tmp_path / "a.duckdb",
    )  # fmt: skip
    assert same.exit_code == 0, same.output
    assert same.stdout.splitlines()[1].endswith(": the conversations are equal")
    assert "3 client events" not in same.stderr  # appends count as client events too
    assert "audio appends) against the simulator" in same.stderr

    lyon = tmp_path / "lyon.toml"
    lyon.write_text(weather.read_text().replace("Paris", "Lyon"))
    changed = rtrec(
        "replay", bundle, "--drive", "sim", "--scenario", lyon,
        "--pace", "instant", "--db", tmp_path / "b.duckdb",
    )  # fmt: skip
    assert changed.exit_code == 1, changed.output
    assert "speech" in changed.stdout
    assert "Lyon" in changed.stdout
    # `rtrec diff` compares the same Live states (before, any two Live sessions were
    # "equal": it compared their empty Realtime conversations)
    sid = changed.stdout.split()[2]
    later = rtrec("diff", bundle, sid, "--db", tmp_path / "b.duckdb")
    assert later.exit_code == 1
    assert later.stdout == changed.stdout.split("\n", 1)[1]
    assert rtrec("diff", bundle, bundle).exit_code == 0
    realtime = rtrec("diff", bundle, SESSIONS / "weather-ga")
    assert realtime.exit_code == 2
    assert "is a GPT-Live session and" in realtime.output


def test_model_is_refused_for_a_live_recording(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    """GPT-Live names its model in ``session.start``, never in the URL: ``--model`` is a
    usage error (exit 2) before anything is driven or written."""
    _, bundle = recorded
    db = tmp_path / "c.duckdb"
    result = rtrec("replay", bundle, "--drive", "sim", "--model", "gpt-live-1.1", "--db", db)
    assert result.exit_code == 2
    assert "--model: a live session names its model in its first client event" in result.output
    assert not db.exists()
