"""Record mode new_episodes: a live upstream takes a playback session over where the live
client leaves the recording.

A Realtime session is one stateful conversation, not a set of independent requests, so
"forward what does not match" needs the upstream to hold the conversation the client has
been having with the recording. ``LiveUpstream`` does that in three steps:

1. **Connect** to the upstream with the live client's handshake (path and query, end-to-end
   headers such as ``Authorization``, offered subprotocols), as the recorder would.
2. **Seed**: replay the live client's own ``session.update`` events (so the session is
   configured as the client configured it), then create every item of the recorded
   conversation as it stood after the last recorded step played, *with the recorded item
   ids* (``conversation.item.create`` accepts client ids), so that what the client holds
   (``previous_item_id``, ``call_id``, the item a ``truncate`` names) means the same thing
   upstream. A ``conversation.item.retrieve`` of the last item ends the seeding: the server
   answers client events in order, so everything the seeding caused comes before that
   answer, and all of it is discarded (the upstream's ``session.created`` too); the client
   never sees it.
3. **Relay**: the input audio the live client appended after the recorded session's last
   commit is appended upstream, then the client's unanswered events (the first is the one
   that left the recording) and everything after go upstream unchanged, and the upstream's
   events come back unchanged, until either side closes.

Replaying the recorded client events instead (and discarding the upstream's answers) would
leave a real model's conversation holding *its own* new answers under *new* ids, which the
client never saw and cannot refer to; a fresh upstream without the past would answer a
``function_call_output`` for a call it never made. Seeding is what is honest, with limits
said plainly (``seed_items`` notes them per session): the model sees its earlier spoken
replies as text (the API does not let a client create assistant audio), a truncated reply
as its whole generated transcript, and a response still streaming at the switch as what had
been sent of it; item types other than messages, function calls and their outputs are not
seeded.

Nothing is written here: the recorder in front of the playback server records the session
as the client saw it (``rtrec.replay.record_modes``).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import orjson
import trio

from rtrec.recorder.headers import HOP_BY_HOP
from rtrec.recorder.redact import redact_path, redact_text
from rtrec.replay import INITIAL, AudioSource, ConversationState, Item, Replay
from rtrec.replay.playback import MAX_MESSAGE_SIZE, Switch
from rtrec.schemas.dialects import encoding_from_config
from rtrec.schemas.enums import AudioEncoding
from rtrec.store.reader import encode_audio
from rtrec.transport.ws import Closed, HandshakeRejected, WebSocket, connect

__all__ = ["LiveUpstream", "SeedFailed", "pending_audio", "seed_items"]

#: How a closed connection's code is passed on when it cannot go in a close frame.
_UNSENDABLE: Final = {1005: 1000, 1006: 1011, 1015: 1011}
#: Bytes of input audio per append when the pending audio is sent upstream.
_APPEND_BYTES: Final = 96_000
_SEED_ID: Final = "rtrec_seed_"


class SeedFailed(Exception):
    """The upstream did not accept the conversation it was brought to."""


# ---------------------------------------------------------------- the seed, pure


def _input_encoding(state: ConversationState) -> AudioEncoding:
    session = state.session or {}
    audio = session.get("audio")
    if isinstance(audio, Mapping):  # GA: session.audio.input.format
        found = encoding_from_config((audio.get("input") or {}).get("format"))
    else:  # beta: session.input_audio_format
        found = encoding_from_config(session.get("input_audio_format"))
    return found or AudioEncoding.PCM16


def _message(
    item: Item, ga: bool, audio: AudioSource, encoding: AudioEncoding, notes: list[str]
) -> dict[str, Any] | None:
    content: list[dict[str, Any]] = []
    for part in sorted(item.parts, key=lambda p: p.index):
        if item.role == "assistant":
            spoken = part.type == "output_audio"
            text = part.transcript.value if spoken else part.text.value
            if spoken:
                notes.append(f"assistant audio of {item.id} seeded as its transcript")
            content.append({"type": "output_text" if ga else "text", "text": text or ""})
        elif part.type == "input_text":
            content.append({"type": "input_text", "text": part.text.value or ""})
        elif part.type == "input_audio":
            refs = part.audio
            if refs and all(r.sample_rate == encoding.sample_rate for r in refs):
                pcm = b"".join(
                    audio.samples(r.stream, r.sample_rate, r.offset, r.samples) for r in refs
                )
                entry: dict[str, Any] = {
                    "type": "input_audio",
                    "audio": base64.b64encode(encode_audio(pcm, encoding)).decode(),
                }
                if part.transcript.value is not None:
                    entry["transcript"] = part.transcript.value
                content.append(entry)
            else:
                why = "not archived" if not refs else "at another sample rate"
                notes.append(f"user audio of {item.id} {why}: seeded as its transcript")
                content.append({"type": "input_text", "text": part.transcript.value or ""})
        else:
            notes.append(f"{part.type} content of {item.id} not seeded")
    if not content:
        notes.append(f"{item.role} message {item.id} has no content: not seeded")
        return None
    return {"type": "message", "id": item.id, "role": item.role, "content": content}


def seed_items(
    state: ConversationState, protocol: str, audio: AudioSource
) -> tuple[list[dict[str, Any]], list[str]]:
    """The items to create upstream so that it holds ``state``'s conversation, in order and
    with the recorded ids; and notes on what could not be carried over exactly.

    Args:
        state: the recorded conversation where the client left it.
        protocol: "ga" or "beta" (content types differ).
        audio: the recording's archived samples (user audio is sent as it was appended).

    Raises:
        LookupError: ``audio`` lacks samples the conversation refers to.
    """
    ga = protocol != "beta"
    encoding = _input_encoding(state)
    items: list[dict[str, Any]] = []
    notes: list[str] = []
    for item in state.conversation:
        if item.type == "message":
            if item.truncated:
                notes.append(f"{item.id} was truncated: seeded with its whole transcript")
            message = _message(item, ga, audio, encoding, notes)
            if message is not None:
                items.append(message)
        elif item.type == "function_call":
            items.append(
                {
                    "type": "function_call",
                    "id": item.id,
                    "call_id": item.call_id or "",
                    "name": item.name or "",
                    "arguments": item.arguments.value or "",
                }
            )
        elif item.type == "function_call_output":
            items.append(
                {
                    "type": "function_call_output",
                    "id": item.id,
                    "call_id": item.call_id or "",
                    "output": item.output or "",
                }
            )
        else:
            notes.append(f"{item.type} item {item.id} not seeded")
    return items, notes


def pending_audio(state: ConversationState, live_audio: bytes) -> bytes:
    """The live client's input audio that the recorded session had not committed or cleared
    where the client left it: what the upstream's input buffer must hold."""
    encoding = _input_encoding(state)
    width = 2 if encoding is AudioEncoding.PCM16 else 1
    start = round(state.input.pending_from_ms * encoding.sample_rate / 1000) * width
    return live_audio[start:]


# ---------------------------------------------------------------- the live upstream


def _fit(reason: str) -> str:
    """A close reason must fit a control frame: 123 bytes of UTF-8."""
    return reason.encode()[:123].decode("utf-8", "ignore")


@attrs.frozen(eq=False)
class LiveUpstream:
    """The ``Fallthrough`` of record mode new_episodes (see the module docstring).

    Attributes:
        url: the upstream's base URL (``wss://api.openai.com/v1``, the simulator's, ...).
        replay: the recording folded by the reducer (the conversation to seed).
        audio: the recording's archived samples.
    """

    url: str
    replay: Replay
    audio: AudioSource
    connect_timeout: float = 20.0
    #: how long the upstream may take to accept the seeded conversation
    seed_timeout: float = 60.0

    def _target(self, path: str) -> str:
        base = urlsplit(self.url)
        rest = path[len("/v1") :] if path.startswith("/v1") else path
        return f"{base.scheme}://{base.netloc}{base.path.rstrip('/')}{rest}"

    async def __call__(self, switch: Switch) -> tuple[int, str] | None:
        """Take ``switch``'s session over: connect, seed, relay. Returns the close to send
        the client (None when the client closed first)."""
        target = self._target(switch.path)
        try:
            with trio.fail_after(self.connect_timeout):
                upstream = await connect(
                    target,
                    subprotocols=switch.subprotocols,
                    headers=[(k, v) for k, v in switch.headers if k.lower() not in HOP_BY_HOP],
                    max_size=MAX_MESSAGE_SIZE,
                    ssl_context=ssl.create_default_context() if target.startswith("wss:") else None,
                )
        except HandshakeRejected as exc:
            body = redact_text(exc.body.decode("utf-8", "replace"))[:300]
            return self._give_up(
                switch, f"{redact_path(target)} rejected the handshake: {exc}: {body}"
            )
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ValueError) as exc:
            return self._give_up(
                switch, f"{redact_path(target)} unreachable: {type(exc).__name__}: {exc}"
            )
        try:
            try:
                with trio.fail_after(self.seed_timeout):
                    await self._seed(upstream, switch)
            except (SeedFailed, LookupError) as exc:
                return self._give_up(switch, f"seeding the conversation failed: {exc}")
            except trio.TooSlowError:
                return self._give_up(
                    switch, f"the upstream took over {self.seed_timeout:g} s to take the seed"
                )
            except Closed as exc:
                return self._give_up(
                    switch, f"the upstream closed while being seeded: {exc.code} {exc.reason}"
                )
            return await _relay(switch, upstream)
        finally:
            with trio.CancelScope(shield=True):
                await upstream.close(1000, "", linger=0.5)

    def _give_up(self, switch: Switch, error: str) -> tuple[int, str]:
        switch.report.upstream_error = error
        return (1011, _fit(f"rtrec new_episodes: {error}"))

    async def _seed(self, upstream: WebSocket, switch: Switch) -> None:
        """Bring ``upstream`` to the conversation the client had (module docstring, 2.)."""
        played = switch.played
        state = INITIAL if played is None else self.replay.state_at(played)
        items, notes = await trio.to_thread.run_sync(
            seed_items, state, switch.recording.protocol, self.audio
        )
        switch.report.seed_notes.extend(notes)
        for message in switch.updates:
            await upstream.send(message)
            answer = await _until(upstream, lambda e: e.get("type") == "session.updated")
            if answer.get("type") == "error":
                switch.report.seed_notes.append(
                    f"the upstream rejected the client's session update: {_error(answer)}"
                )
        for n, item in enumerate(items):
            event_id = f"{_SEED_ID}{n}"
            create = {"type": "conversation.item.create", "event_id": event_id, "item": item}
            await upstream.send(orjson.dumps(create).decode())
            answer = await _until(upstream, _added(item["id"]))
            if answer.get("type") == "error":
                raise SeedFailed(f"the upstream rejected item {item['id']}: {_error(answer)}")
        # The barrier: the upstream answers in order, so its answer to this comes after
        # everything the seeding (and the session's start) caused. With no item to
        # retrieve, the error for an unknown id is that answer.
        last = items[-1]["id"] if items else f"{_SEED_ID}nothing"
        end = f"{_SEED_ID}end"
        retrieve = {"type": "conversation.item.retrieve", "event_id": end, "item_id": last}
        await upstream.send(orjson.dumps(retrieve).decode())
        answer = await _until(
            upstream,
            lambda e: (
                e.get("type") == "conversation.item.retrieved"
                and (e.get("item") or {}).get("id") == last
            ),
        )
        if answer.get("type") == "error" and (
            items or (answer.get("error") or {}).get("event_id") != end
        ):
            raise SeedFailed(f"the upstream could not retrieve {last}: {_error(answer)}")
        audio = pending_audio(state, switch.live_audio)
        for start in range(0, len(audio), _APPEND_BYTES):
            chunk = base64.b64encode(audio[start : start + _APPEND_BYTES]).decode()
            append = {"type": "input_audio_buffer.append", "audio": chunk}
            await upstream.send(orjson.dumps(append).decode())


def _added(item_id: str) -> Callable[[Mapping[str, Any]], bool]:
    def test(event: Mapping[str, Any]) -> bool:
        return (
            event.get("type")
            in (
                "conversation.item.added",
                "conversation.item.created",
            )
            and (event.get("item") or {}).get("id") == item_id
        )

    return test


def _error(event: Mapping[str, Any]) -> str:
    error = event.get("error") or {}
    return f"{error.get('code')}: {error.get('message')}"


async def _until(
    upstream: WebSocket, wanted: Callable[[Mapping[str, Any]], bool]
) -> Mapping[str, Any]:
    """Read (and discard) upstream events until one is ``wanted`` or an ``error``."""
    while True:
        message = await upstream.receive()
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            continue
        if isinstance(event, dict) and (event.get("type") == "error" or wanted(event)):
            return event


async def _relay(switch: Switch, upstream: WebSocket) -> tuple[int, str] | None:
    """Both ways, unchanged, until one side closes. The upstream is closed here the way the
    client closed; the upstream's close is returned, for the playback server to pass on
    (its reader owns the client's socket until then)."""
    client = switch.client
    upstream_close: tuple[int, str] | None = None

    async def up(cancel: trio.CancelScope) -> None:
        try:
            for message in switch.pending:
                await upstream.send(message)
            async for message in switch.inbox:
                await upstream.send(message)
        except Closed:
            return  # the upstream closed: ``down`` sees it
        cancel.cancel()

    async def down(cancel: trio.CancelScope) -> None:
        nonlocal upstream_close
        while True:
            try:
                message = await upstream.receive()
            except Closed as closed:
                code = _UNSENDABLE.get(closed.code, closed.code)
                upstream_close = (code, _fit(closed.reason))
                break
            try:
                await client.send(message)
            except Closed:
                return  # the client left: ``up`` sees its inbox end
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(up, nursery.cancel_scope)
        nursery.start_soon(down, nursery.cancel_scope)
    if upstream_close is None:
        code, reason = switch.report.close or (1000, "")
        await upstream.close(_UNSENDABLE.get(code, code), _fit(reason))
    return upstream_close
