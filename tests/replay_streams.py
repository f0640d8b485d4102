"""Event-stream builders for the replay tests: one method per protocol event, GA or beta.

``Wire("ga")`` and ``Wire("beta")`` write the same conversation with each protocol's names
and shapes (PROTOCOL.md §3.2, §8): beta ``conversation.item.created`` instead of GA
``conversation.item.added`` + ``.done``, ``response.audio.delta`` instead of
``response.output_audio.delta``, ``audio``/``text`` content types in items, no ``name`` on
``function_call_arguments.done``. Event ids are numbered so that streams are deterministic.
"""

from __future__ import annotations

from typing import Any

from rtrec.replay.testing import Frame, client, pcm16_b64, server


class Wire:
    """Builds the frames of one session in one protocol flavour."""

    def __init__(self, protocol: str = "ga") -> None:
        assert protocol in ("ga", "beta")
        self.protocol = protocol
        self.ga = protocol == "ga"
        self._n = 0
        self._session: dict[str, Any] = {}

    def _eid(self) -> str:
        self._n += 1
        return f"event_{self.protocol}_{self._n:04d}"

    def _server(self, body: dict[str, Any], t_ms: float | None = None) -> Frame:
        return server({"type": body.pop("type"), "event_id": self._eid(), **body}, t_ms=t_ms)

    def _name(self, ga: str, beta: str) -> str:
        return ga if self.ga else beta

    # ------------------------------------------------------------------ items

    def user_audio(self, item_id: str, transcript: str | None = None) -> dict[str, Any]:
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}],
        }

    def user_text(self, item_id: str | None, text: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        if item_id is not None:
            item = {"id": item_id, "object": "realtime.item", **item, "status": "completed"}
        return item

    def assistant(
        self,
        item_id: str,
        *,
        status: str = "in_progress",
        transcript: str | None = None,
        text: str | None = None,
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if transcript is not None:
            content.append({"type": self._name("output_audio", "audio"), "transcript": transcript})
        if text is not None:
            content.append({"type": self._name("output_text", "text"), "text": text})
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def call(
        self,
        item_id: str,
        call_id: str,
        name: str,
        arguments: str = "",
        status: str = "in_progress",
    ) -> dict[str, Any]:
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": status,
            "name": name,
            "call_id": call_id,
            "arguments": arguments,
        }

    def call_output(self, item_id: str | None, call_id: str, output: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
        }
        if item_id is not None:
            item = {"id": item_id, "object": "realtime.item", **item, "status": "completed"}
        return item

    # ------------------------------------------------------------------ session

    def session_created(self, session_id: str = "sess_1", **extra: Any) -> Frame:
        if self.ga:
            session: dict[str, Any] = {
                "type": "realtime",
                "object": "realtime.session",
                "id": session_id,
                "model": "gpt-realtime",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
                },
                "expires_at": 1767233035,
            }
        else:
            session = {
                "object": "realtime.session",
                "id": session_id,
                "model": "gpt-4o-realtime-preview",
                "modalities": ["audio", "text"],
                "voice": "alloy",
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "expires_at": 1767233035,
            }
        self._session = {**session, **extra}
        return self._server({"type": "session.created", "session": self._session})

    def session_updated(self, **changes: Any) -> Frame:
        """session.updated with the full effective config: the last one with ``changes``."""
        self._session = {**self._session, **changes}
        return self._server({"type": "session.updated", "session": self._session})

    # ------------------------------------------------------------------ input audio

    def append(self, samples: int, *, seed: int = 0, event_id: str | None = None) -> Frame:
        body: dict[str, Any] = {"type": "input_audio_buffer.append"}
        if event_id is not None:
            body["event_id"] = event_id
        body["audio"] = pcm16_b64(samples, seed=seed)
        return client(body)

    def appends(self, ms: int, *, chunk_ms: int = 100, seed: int = 0) -> list[Frame]:
        """``ms`` milliseconds of 24 kHz audio in ``chunk_ms`` chunks."""
        return [self.append(24 * chunk_ms, seed=seed + i) for i in range(ms // chunk_ms)]

    def commit(self, event_id: str | None = None) -> Frame:
        body: dict[str, Any] = {"type": "input_audio_buffer.commit"}
        if event_id is not None:
            body["event_id"] = event_id
        return client(body)

    def clear(self) -> Frame:
        return client({"type": "input_audio_buffer.clear"})

    def cleared(self) -> Frame:
        return self._server({"type": "input_audio_buffer.cleared"})

    def speech_started(self, item_id: str, ms: int) -> Frame:
        return self._server(
            {"type": "input_audio_buffer.speech_started", "item_id": item_id, "audio_start_ms": ms}
        )

    def speech_stopped(self, item_id: str, ms: int) -> Frame:
        return self._server(
            {"type": "input_audio_buffer.speech_stopped", "item_id": item_id, "audio_end_ms": ms}
        )

    def committed(self, item_id: str, previous: str | None) -> Frame:
        return self._server(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )

    def timeout_triggered(self, item_id: str, start_ms: int, end_ms: int) -> Frame:
        return self._server(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "item_id": item_id,
                "audio_start_ms": start_ms,
                "audio_end_ms": end_ms,
            }
        )

    # ------------------------------------------------------------------ conversation

    def item_added(self, item: dict[str, Any], previous: str | None) -> list[Frame]:
        """GA ``conversation.item.added``; beta ``conversation.item.created``."""
        name = self._name("conversation.item.added", "conversation.item.created")
        return [self._server({"type": name, "previous_item_id": previous, "item": item})]

    def item_done(self, item: dict[str, Any], previous: str | None) -> list[Frame]:
        """GA ``conversation.item.done``; nothing in beta."""
        if not self.ga:
            return []
        return [
            self._server(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )
        ]

    def user_item(self, item: dict[str, Any], previous: str | None) -> list[Frame]:
        """How the server announces a user item: added + done at once (GA), created (beta)."""
        return [*self.item_added(item, previous), *self.item_done(item, previous)]

    def create(
        self, item: dict[str, Any], previous: Any = ..., event_id: str | None = None
    ) -> Frame:
        body: dict[str, Any] = {"type": "conversation.item.create"}
        if event_id is not None:
            body["event_id"] = event_id
        if previous is not ...:
            body["previous_item_id"] = previous
        body["item"] = item
        return client(body)

    def truncate(self, item_id: str, audio_end_ms: int) -> Frame:
        return client(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
        )

    def truncated(self, item_id: str, audio_end_ms: int) -> Frame:
        return self._server(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }
        )

    def deleted(self, item_id: str) -> Frame:
        return self._server({"type": "conversation.item.deleted", "item_id": item_id})

    def input_transcript(self, item_id: str, transcript: str) -> Frame:
        return self._server(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": 2},
            }
        )

    def input_transcript_delta(self, item_id: str, delta: str) -> Frame:
        return self._server(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": delta,
            }
        )

    # ------------------------------------------------------------------ responses

    def response_create(self, event_id: str | None = None) -> Frame:
        body: dict[str, Any] = {"type": "response.create"}
        if event_id is not None:
            body["event_id"] = event_id
        return client(body)

    def response_cancel(self, event_id: str | None = None) -> Frame:
        body: dict[str, Any] = {"type": "response.cancel"}
        if event_id is not None:
            body["event_id"] = event_id
        return client(body)

    def response_created(self, response_id: str) -> Frame:
        return self._server(
            {
                "type": "response.created",
                "response": {
                    "object": "realtime.response",
                    "id": response_id,
                    "status": "in_progress",
                    "status_details": None,
                    "output": [],
                    "usage": None,
                },
            }
        )

    def response_done(
        self,
        response_id: str,
        output: list[dict[str, Any]],
        *,
        status: str = "completed",
        reason: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> Frame:
        details = None
        if reason is not None:
            details = {"type": status, "reason": reason}
        return self._server(
            {
                "type": "response.done",
                "response": {
                    "object": "realtime.response",
                    "id": response_id,
                    "status": status,
                    "status_details": details,
                    "output": output,
                    "usage": usage
                    or {
                        "total_tokens": 0,
                        "input_tokens": 0,
                        "output_tokens": 0,
                    },
                },
            }
        )

    def output_item_added(self, response_id: str, index: int, item: dict[str, Any]) -> Frame:
        return self._server(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": index,
                "item": item,
            }
        )

    def output_item_done(self, response_id: str, index: int, item: dict[str, Any]) -> Frame:
        return self._server(
            {
                "type": "response.output_item.done",
                "response_id": response_id,
                "output_index": index,
                "item": item,
            }
        )

    def _part_event(self, name: str, response_id: str, item_id: str, **body: Any) -> Frame:
        return self._server(
            {
                "type": name,
                "response_id": response_id,
                "item_id": item_id,
                "output_index": body.pop("output_index", 0),
                "content_index": body.pop("content_index", 0),
                **body,
            }
        )

    def part_added(self, response_id: str, item_id: str, kind: str, **kw: Any) -> Frame:
        part = {"type": kind, "transcript": ""} if kind == "audio" else {"type": kind, "text": ""}
        return self._part_event(
            "response.content_part.added", response_id, item_id, part=part, **kw
        )

    def part_done(self, response_id: str, item_id: str, kind: str, value: str, **kw: Any) -> Frame:
        field = "transcript" if kind == "audio" else "text"
        part = {"type": kind, field: value}
        return self._part_event("response.content_part.done", response_id, item_id, part=part, **kw)

    def audio_delta(
        self, response_id: str, item_id: str, samples: int, *, seed: int = 0, **kw: Any
    ) -> Frame:
        name = self._name("response.output_audio.delta", "response.audio.delta")
        return self._part_event(
            name, response_id, item_id, delta=pcm16_b64(samples, seed=seed), **kw
        )

    def audio_done(self, response_id: str, item_id: str, **kw: Any) -> Frame:
        name = self._name("response.output_audio.done", "response.audio.done")
        return self._part_event(name, response_id, item_id, **kw)

    def transcript_delta(self, response_id: str, item_id: str, delta: str, **kw: Any) -> Frame:
        name = self._name(
            "response.output_audio_transcript.delta", "response.audio_transcript.delta"
        )
        body: dict[str, Any] = {"delta": delta}
        if self.ga:
            body["obfuscation"] = "x1y2"
        return self._part_event(name, response_id, item_id, **body, **kw)

    def transcript_done(self, response_id: str, item_id: str, transcript: str, **kw: Any) -> Frame:
        name = self._name("response.output_audio_transcript.done", "response.audio_transcript.done")
        return self._part_event(name, response_id, item_id, transcript=transcript, **kw)

    def text_delta(self, response_id: str, item_id: str, delta: str, **kw: Any) -> Frame:
        name = self._name("response.output_text.delta", "response.text.delta")
        return self._part_event(name, response_id, item_id, delta=delta, **kw)

    def text_done(self, response_id: str, item_id: str, text: str, **kw: Any) -> Frame:
        name = self._name("response.output_text.done", "response.text.done")
        return self._part_event(name, response_id, item_id, text=text, **kw)

    def args_delta(
        self, response_id: str, item_id: str, call_id: str, delta: str, index: int = 0
    ) -> Frame:
        return self._server(
            {
                "type": "response.function_call_arguments.delta",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": index,
                "call_id": call_id,
                "delta": delta,
            }
        )

    def args_done(
        self,
        response_id: str,
        item_id: str,
        call_id: str,
        name: str,
        arguments: str,
        index: int = 0,
    ) -> Frame:
        body: dict[str, Any] = {
            "type": "response.function_call_arguments.done",
            "response_id": response_id,
            "item_id": item_id,
            "output_index": index,
            "call_id": call_id,
            "arguments": arguments,
        }
        if self.ga:
            body["name"] = name
        return self._server(body)

    def rate_limits(self, remaining: int = 1000) -> Frame:
        return self._server(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "tokens", "limit": 40000, "remaining": remaining, "reset_seconds": 1.5}
                ],
            }
        )

    def error(self, code: str, message: str, event_id: str | None) -> Frame:
        return self._server(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": None,
                    "event_id": event_id,
                },
            }
        )

    # ------------------------------------------------------------------ whole turns

    def voice_turn(
        self,
        *,
        user: str,
        previous: str | None,
        assistant: str,
        response: str,
        said: str,
        heard: str | None = None,
        speech: tuple[int, int] = (300, 1500),
        audio_chunks: int = 3,
    ) -> list[Frame]:
        """A server-VAD turn as PROTOCOL.md §7(a) shows it (GA order from a real capture):
        the audio is appended before calling this."""
        start, end = speech
        a_final = self.assistant(assistant, status="completed", transcript=said)
        frames = [
            self.speech_started(user, start),
            self.speech_stopped(user, end),
            self.committed(user, previous),
            *self.user_item(self.user_audio(user), previous),
            self.response_created(response),
            self.rate_limits(),
            self.output_item_added(response, 0, self.assistant(assistant)),
            *self.item_added(self.assistant(assistant), user),
            self.part_added(response, assistant, "audio"),
        ]
        words = said.split(" ")
        for i in range(audio_chunks):
            frames.append(self.audio_delta(response, assistant, 2400, seed=10 + i))
            if i < len(words):
                chunk = words[i] if i == 0 else " " + words[i]
                frames.append(self.transcript_delta(response, assistant, chunk))
        rest = " ".join(words[audio_chunks:])
        if rest:
            frames.append(self.transcript_delta(response, assistant, " " + rest))
        if heard is not None:
            frames.append(self.input_transcript(user, heard))
        frames += [
            self.audio_done(response, assistant),
            self.transcript_done(response, assistant, said),
            self.part_done(response, assistant, "audio", said),
            *self.item_done(a_final, user),
            self.output_item_done(response, 0, a_final),
            self.response_done(
                response,
                [a_final],
                usage={
                    "total_tokens": 120,
                    "input_tokens": 80,
                    "output_tokens": 40,
                    "input_token_details": {
                        "text_tokens": 60,
                        "audio_tokens": 20,
                        "cached_tokens": 0,
                    },
                    "output_token_details": {"text_tokens": 10, "audio_tokens": 30},
                },
            ),
        ]
        return frames
