"""The driver's plan (sans-IO) and its pacing: what each recorded client event waits for,
how ids are rewritten, which handshake parts are sent again, and when each event goes out
on a virtual clock against a scripted server.

Rules (after trio-websocket's own test suite): real sockets on 127.0.0.1 port 0, a
``trio.fail_after`` cap per test, and no sleep that waits for something to happen (the
scripted server's one-second "model" runs on the autojump clock).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest
import trio

from rtrec.replay.drive_plan import (
    DrivePlan,
    IdKind,
    Progress,
    WaitKind,
    compile_plan,
    replayable_headers,
    rewrite_ids,
)
from rtrec.replay.driver import DriveOptions, drive, plan_for, session_url
from rtrec.replay.playback import Pace
from rtrec.replay.testing import Recording, client, mark, record_events, server, tone
from rtrec.schemas import g711
from rtrec.store.bundle import read_bundle
from rtrec.transport.ws import Closed, ServerHandshake, WebSocket

from .drivekit import SESSIONS, serve_script

HANDSHAKE = {"path": "/v1/realtime?model=m", "subprotocols": ["realtime"], "subprotocol": None}


def _plan(rec: Recording, protocol: str = "ga", path: str = "/v1/realtime?model=m") -> DrivePlan:
    return compile_plan(
        rec.records,
        session_id="s",
        protocol=protocol,
        request_path=path,
        request_headers='{"OpenAI-Beta":"realtime=v1"}',
        closed_by="client",
        close_code=1000,
        close_reason="bye",
    )


def test_function_call_fixture_plan_names_the_dependencies_of_issue_6() -> None:
    """In the recorded function call, the function_call_output waits for that call's
    arguments to be done and names its call_id; response.create waits for the previous
    response.done; the first event waits for session.created."""
    bundle = read_bundle(SESSIONS / "function_call")
    plan = plan_for(bundle.frames, bundle.session)
    by_type = {s.type: s for s in plan.steps}
    first = plan.steps[0]
    assert [w.describe() for w in first.waits] == ["session.created #1 (recorded seq 1)"]

    output = by_type["conversation.item.create"]
    call = [w for w in output.waits if w.kind is WaitKind.CALL_DONE]
    assert [w.describe() for w in call] == [
        "the arguments of call #1 (call_deDl3wW6iK9Va2NS in the recording) to be done "
        "(recorded seq 92)"
    ]
    assert output.ids == (("call_deDl3wW6iK9Va2NS", IdKind.CALL, 1),)

    create = by_type["response.create"]
    assert "response.done #1 (recorded seq 95)" in [w.describe() for w in create.waits]
    assert create.ids == ()
    assert plan.appends == 30
    assert (plan.end.closed_by, plan.end.code) == ("client", 1000)


def test_ids_are_rewritten_as_tokens_and_the_rest_stays_byte_for_byte() -> None:
    """A client event naming a server-chosen item waits for the item of the same rank in the
    new run and names it instead; its own event_id and a client-chosen item id stay."""
    rec = record_events(
        [
            server({"type": "conversation.item.added", "event_id": "s1", "item": {"id": "item_A"}}),
            client(
                {
                    "type": "conversation.item.create",
                    "event_id": "item_A",  # a client's id that happens to look like one
                    "previous_item_id": "item_A",
                    "item": {"id": "my_item", "type": "message", "role": "user"},
                }
            ),
        ]
    )
    (step,) = _plan(rec).steps
    assert [(w.kind, w.name, w.n) for w in step.waits] == [
        (WaitKind.ID, "item", 1)  # no milestone was recorded before it
    ]
    assert step.ids == (("item_A", IdKind.ITEM, 1),)
    new = Progress()
    with pytest.raises(LookupError, match="no item #1 yet"):
        rewrite_ids(step.frame.payload or "", step.ids, new)
    new.feed({"type": "conversation.item.added", "item": {"id": "item_Z"}}, 0, 0)
    text = rewrite_ids(step.frame.payload or "", step.ids, new)
    payload = step.frame.payload or ""
    assert text == payload.replace('"previous_item_id":"item_A"', '"previous_item_id":"item_Z"')
    assert orjson.loads(text)["event_id"] == "item_A"
    assert step.waits[0].met_at(new) == 0


def test_heard_audio_wait_is_released_by_audio_or_by_response_done() -> None:
    """An event sent while a reply was streaming waits for as much reply audio in the new
    run, or for that reply to end if it is shorter."""
    rec = record_events(
        [
            server({"type": "response.created", "response": {"id": "resp_1"}}),
            server(
                {
                    "type": "response.output_audio.delta",
                    "response_id": "resp_1",
                    "item_id": "i",
                    "delta": "AAAAAAAA",  # 6 bytes
                }
            ),
            client({"type": "response.cancel"}),
        ]
    )
    (step,) = _plan(rec).steps
    (audio,) = [w for w in step.waits if w.kind is WaitKind.AUDIO]
    assert (audio.name, audio.n, audio.amount) == ("response", 1, 6)
    new = Progress()
    new.feed({"type": "response.created", "response": {"id": "r"}}, 1, 1)
    new.feed({"type": "response.output_audio.delta", "response_id": "r", "delta": "AAAA"}, 2, 2)
    assert audio.met_at(new) is None
    new.feed({"type": "response.output_audio.delta", "response_id": "r", "delta": "AAAA"}, 3, 3)
    assert audio.met_at(new) == 3
    short = Progress()
    short.feed({"type": "response.created", "response": {"id": "r"}}, 1, 1)
    short.feed({"type": "response.done", "response": {"id": "r"}}, 7, 2)
    assert audio.met_at(short) == 7


def test_handshake_headers_sent_again_carry_no_secret() -> None:
    """Headers of the recorded handshake come back without the key, the handshake's own,
    or anything redacted; the URL keeps the recorded path, drops redacted query values and
    takes another model when asked."""
    recorded = orjson.dumps(
        {
            "Host": "127.0.0.1:1",
            "Upgrade": "websocket",
            "Sec-WebSocket-Key": "x",
            "Authorization": "Bearer [REDACTED]",
            "OpenAI-Beta": "realtime=v1",
            "User-Agent": "AsyncOpenAI/Python",
            "X-Api-Token": "[REDACTED]",
        }
    ).decode()
    assert replayable_headers(recorded) == (
        ("OpenAI-Beta", "realtime=v1"),
        ("User-Agent", "AsyncOpenAI/Python"),
    )
    path = "/v1/realtime?model=gpt-realtime&api-key=[REDACTED]"
    base = "ws://127.0.0.1:9/v1"
    assert session_url(base, path) == "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"
    assert session_url(base + "/", path, "gpt-new") == "ws://127.0.0.1:9/v1/realtime?model=gpt-new"


PACED = [
    mark("rtrec.handshake", HANDSHAKE, t_ms=0),
    server({"type": "session.created", "event_id": "e1", "session": {"id": "sess"}}, t_ms=1),
    client({"type": "session.update", "session": {"type": "realtime"}}, t_ms=11),
    client({"type": "conversation.item.create", "item": {"type": "message"}}, t_ms=111),
    client({"type": "response.create"}, t_ms=161),
    server({"type": "response.created", "response": {"id": "resp_1"}}, t_ms=171),
    server({"type": "response.done", "response": {"id": "resp_1"}}, t_ms=501),
    client({"type": "conversation.item.create", "item": {"type": "message"}}, t_ms=701),
    mark("rtrec.close", {"code": 1000, "reason": "bye", "by": "client"}, t_ms=751),
]


@pytest.mark.parametrize(
    ("pace", "expected"),
    [
        # recorded gaps; the last event 200 ms after the new response.done, which the
        # server sends 1 s after response.create; the close 50 ms later
        ("recorded", [0.011, 0.111, 0.161, 1.361, 1.411]),
        ("2", [0.0055, 0.0555, 0.0805, 1.1805, 1.2055]),
        ("instant", [0.0, 0.0, 0.0, 1.0, 1.0]),
    ],
)
async def test_client_events_go_out_at_the_recorded_pace_after_their_server_events(
    pace: str, expected: list[float], autojump_clock: trio.abc.Clock
) -> None:
    """Each client event goes out its recorded gap after the later of the previous client
    event and the server event that released it (scaled by the pace, or at once), and the
    session closes with the recorded code and reason."""
    arrivals: list[tuple[float, str]] = []

    async def model(ws: WebSocket, handshake: ServerHandshake) -> None:
        start = trio.current_time()
        await ws.send(orjson.dumps({"type": "session.created", "session": {"id": "x"}}).decode())
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    event: dict[str, Any] = orjson.loads(await ws.receive())
                    arrivals.append((trio.current_time() - start, event["type"]))
                    if event["type"] == "response.create":
                        nursery.start_soon(answer, ws)
            except Closed as closed:
                arrivals.append(
                    (trio.current_time() - start, f"close {closed.code} {closed.reason}")
                )
                nursery.cancel_scope.cancel()

    async def answer(ws: WebSocket) -> None:
        await trio.sleep(1.0)  # the model thinks for one (virtual) second
        await ws.send('{"type":"response.created","response":{"id":"r9"}}')
        await ws.send('{"type":"response.done","response":{"id":"r9"}}')

    plan = _plan(record_events(PACED))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_script, model)
            report = await drive(
                plan,
                url,
                record_events(PACED).audio,
                api_key="sk-test",
                options=DriveOptions(pace=Pace.parse(pace)),
            )
            nursery.cancel_scope.cancel()
    assert report.failure is None
    assert [kind for _, kind in arrivals] == [
        "session.update",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
        "close 1000 bye",
    ]
    assert [t for t, _ in arrivals] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("fmt", "encode"),
    [("audio/pcmu", g711.ulaw_encode), ("audio/pcma", g711.alaw_encode), ("audio/pcm", None)],
)
async def test_appends_go_out_in_the_recorded_encoding_and_chunks(fmt: str, encode: Any) -> None:
    """Appends of a G.711 (or PCM16) session are rebuilt from the archived samples into the
    recorded encoding and chunks: the server receives the recorded messages byte for byte.

    On the real clock: audio is read in a worker thread, during which an autojump clock would
    jump to the test's own deadline."""
    pcm = np.frombuffer(tone(2400), dtype="<i2")
    wire = encode(pcm) if encode is not None else pcm.tobytes()
    chunks = [wire[i : i + 700] for i in range(0, len(wire), 700)]  # uneven recorded chunks
    audio_config = {"input": {"format": {"type": fmt}}}
    frames = [
        server({"type": "session.created", "session": {"id": "s", "audio": audio_config}}),
        *(
            client(
                {
                    "type": "input_audio_buffer.append",
                    "event_id": f"a{n}",
                    "audio": base64.b64encode(chunk).decode(),
                }
            )
            for n, chunk in enumerate(chunks)
        ),
    ]
    rec = record_events(frames)
    assert all(r.audio is not None and r.audio.cut_at is not None for r in rec.records[1:])
    received: list[str | bytes] = []

    async def collect(ws: WebSocket, handshake: ServerHandshake) -> None:
        await ws.send('{"type":"session.created","session":{"id":"x"}}')
        while True:
            received.append(await ws.receive())

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_script, collect)
            instant = DriveOptions(pace=Pace.parse("instant"))
            report = await drive(_plan(rec), url, rec.audio, api_key="sk-test", options=instant)
            nursery.cancel_scope.cancel()
    assert report.failure is None
    assert received == [
        orjson.dumps(f.event).decode() for f in frames[1:] if not isinstance(f.event, bytes)
    ]


def _fed(*events: dict[str, Any]) -> Progress:
    progress = Progress()
    for seq, event in enumerate(events, start=1):
        progress.feed(event, seq * 1000, seq)
    return progress


GA_SESSION = {
    "type": "session.updated",
    "session": {
        "type": "realtime",
        "audio": {
            "input": {
                "transcription": {"model": "gpt-4o-transcribe"},
                "turn_detection": {"type": "server_vad", "create_response": True},
            }
        },
    },
}


def test_an_open_response_keeps_the_server_busy_until_its_done() -> None:
    """Before session.created, and while a response.created has no response.done, the
    server is not idle; after the done it is."""
    assert Progress().pending() == "session.created"
    created = {"type": "session.created", "session": {}}
    busy = _fed(created, {"type": "response.created", "response": {"id": "resp_1"}})
    assert busy.pending() == "the response.done of resp_1 (created at seq 2)"
    busy.feed({"type": "response.done", "response": {"id": "resp_1"}}, 9000, 3)
    assert busy.pending() is None


def test_vad_turns_and_late_transcriptions_keep_the_server_busy() -> None:
    """With server VAD and transcription on (GA keys): heard speech, a turn VAD ended
    without its response, and a committed item without its transcription are each pending
    until the event that settles them; completed or failed transcriptions both settle."""
    p = _fed({"type": "session.created", "session": {}}, GA_SESSION)
    p.feed({"type": "input_audio_buffer.speech_started"}, 3000, 3)
    assert p.pending() == "the speech_stopped after the speech_started at seq 3"
    p.feed({"type": "input_audio_buffer.speech_stopped"}, 4000, 4)
    assert p.pending() == "the response to the turn VAD ended at seq 4"
    p.feed({"type": "input_audio_buffer.committed", "item_id": "item_1"}, 5000, 5)
    p.feed({"type": "response.created", "response": {"id": "resp_1"}}, 6000, 6)
    p.feed({"type": "response.done", "response": {"id": "resp_1"}}, 7000, 7)
    assert p.pending() == "the input transcription of item_1 (committed at seq 5)"
    p.feed(
        {"type": "conversation.item.input_audio_transcription.failed", "item_id": "item_1"},
        8000,
        8,
    )
    assert p.pending() is None


def test_without_vad_responses_or_transcription_a_commit_leaves_the_server_idle() -> None:
    """A beta session with transcription and turn detection off, and a transcription
    session (whose VAD never responds): nothing is owed after a commit or a VAD turn."""
    beta_off = {
        "type": "session.updated",
        "session": {"input_audio_transcription": None, "turn_detection": None},
    }
    p = _fed({"type": "session.created", "session": {}}, GA_SESSION, beta_off)
    p.feed({"type": "input_audio_buffer.committed", "item_id": "item_1"}, 4000, 4)
    assert p.pending() is None
    transcription = {
        "type": "transcription_session.updated",
        "session": {
            "input_audio_transcription": {"model": "whisper-1"},
            "turn_detection": {"type": "server_vad"},
        },
    }
    t = _fed({"type": "session.created", "session": {}}, transcription)
    t.feed({"type": "input_audio_buffer.speech_started"}, 3000, 3)
    t.feed({"type": "input_audio_buffer.speech_stopped"}, 4000, 4)
    t.feed({"type": "input_audio_buffer.committed", "item_id": "item_1"}, 5000, 5)
    assert t.pending() == "the input transcription of item_1 (committed at seq 5)"
    t.feed(
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_1"},
        6000,
        6,
    )
    assert t.pending() is None


def test_a_live_plan_waits_for_delegations_and_backend_calls_by_the_live_table() -> None:
    """GPT-Live is counted by its own table: the first command after the start waits for
    session.started; a commentary for a client delegation waits for the new run's
    delegation of that rank and names its id; a function_call_output waits for the call
    inside ``response.event`` to be done and names its call id; the response.create after
    it waits for that; and a run's Progress counts the same way (and is not idle before
    session.started)."""
    started = {"type": "session.started", "event_id": "e1", "session": {"id": "live_1"}}
    delegated = {
        "type": "session.delegation.created",
        "event_id": "e2",
        "offset_ms": 900,
        "delegation": {"id": "dlg_rec", "target": "client", "type": "delegation"},
    }
    call_done = {
        "type": "response.event",
        "event_id": "e3",
        "delegation_id": "dlg_rec",
        "event": {
            "type": "response.output_item.done",
            "item": {"type": "function_call", "id": "fc_1", "call_id": "call_rec", "name": "w"},
        },
    }
    rec = record_events(
        [
            client({"type": "session.start", "session": {"model": "gpt-live-1"}}),
            server(started),
            client({"type": "session.input_audio.append", "audio": ""}),
            server(delegated),
            server(call_done),
            client(
                {
                    "type": "session.commentary.append",
                    "content": "on it",
                    "delegation_id": "dlg_rec",
                }
            ),
            client(
                {
                    "type": "response.item.create",
                    "item": {"type": "function_call_output", "call_id": "call_rec", "output": "1"},
                }
            ),
        ]
    )
    plan = _plan(rec, "live", "/v1/live/sessions")
    assert plan.appends == 1
    start, append, commentary, output = plan.steps
    assert start.waits == ()
    assert [w.describe() for w in append.waits] == ["session.started #1 (recorded seq 1)"]
    assert commentary.ids == (("dlg_rec", IdKind.DELEGATION, 1),)
    assert any(w.kind is WaitKind.ID and w.name == "delegation" for w in commentary.waits)
    assert output.ids == (("call_rec", IdKind.CALL, 1),)
    assert [w.kind for w in output.waits if w.name == "call"] == [WaitKind.CALL_DONE]

    run = plan.progress()
    assert run.pending() == "session.started"
    run.feed(started, 1, 1)
    assert run.pending() is None
    run.feed({**delegated, "delegation": {**delegated["delegation"], "id": "dlg_new"}}, 2, 2)
    new_call = {
        **call_done,
        "event": {
            **call_done["event"],
            "item": {**call_done["event"]["item"], "call_id": "call_new"},
        },
    }
    assert all(w.met_at(run) is None for w in output.waits if w.kind is WaitKind.CALL_DONE)
    run.feed(new_call, 3, 3)
    assert all(w.met_at(run) is not None for w in output.waits)
    sent = rewrite_ids(output.frame.payload or "", output.ids, run)
    assert '"call_id":"call_new"' in str(sent)
    said = rewrite_ids(commentary.frame.payload or "", commentary.ids, run)
    assert '"delegation_id":"dlg_new"' in str(said)
