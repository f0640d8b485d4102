"""Responses: a planned reply streamed as the service streams it, and cut short on cancel.

``Responses.start`` takes what to say and call (the session decides that from the scenario)
and schedules every event of the response on the timeline (see ``Timing``). The output items
follow each other: an assistant message (audio with its transcript, or text), then any
tool calls, then (after MCP calls, which the service runs itself) a message saying what the
tools returned. An MCP call that needs approval is an ``mcp_approval_request`` item instead,
and ends the response: the call runs in the response after the client's answer. The done
events come in the GA order of PROTOCOL.md §9:
``content_part.done`` -> ``conversation.item.done`` -> ``response.output_item.done`` ->
``response.done``. ``cancel`` closes a response mid-stream: the open item gets its done
events with what was sent so far and status ``incomplete``, unstarted items never appear.

Token counts follow the service's rules of thumb: a text token per 4 characters, an input
audio token per 100 ms, an output audio token per 50 ms; a response cancelled before any
output reports zero usage, as real captures do.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import attrs

from rtrec.schemas import (
    AudioEncoding,
    Item,
    ItemStatus,
    RateLimitsUpdated,
    ResponseContentPartAdded,
    ResponseContentPartDone,
    ResponseCreated,
    ResponseDone,
    ResponseFunctionCallArgumentsDelta,
    ResponseFunctionCallArgumentsDone,
    ResponseMcpCallArgumentsDelta,
    ResponseMcpCallArgumentsDone,
    ResponseMcpCallCompleted,
    ResponseMcpCallFailed,
    ResponseMcpCallInProgress,
    ResponseOutputItemAdded,
    ResponseOutputItemDone,
    ResponseStatus,
    StatusReason,
)
from rtrec.simulator import audio as wav
from rtrec.simulator import wire
from rtrec.simulator.conversation import Conversation, KnownItem, Stored
from rtrec.simulator.ids import IdFactory
from rtrec.simulator.scenario import Call
from rtrec.simulator.synth import Speech, Synthesizer, split_pieces
from rtrec.simulator.timeline import Timeline

__all__ = [
    "Output",
    "Plan",
    "PlannedCall",
    "Responses",
    "Run",
    "Timing",
    "audio_ms",
    "text_tokens",
]


def text_tokens(text: str) -> int:
    """Text tokens of ``text`` (4 characters each, rounded up)."""
    return (len(text) + 3) // 4


def audio_ms(data: bytes, encoding: AudioEncoding) -> int:
    """Duration of wire audio in whole milliseconds."""
    return len(data) // encoding.bytes_per_sample * 1000 // encoding.sample_rate


@attrs.frozen
class Timing:
    """The virtual timeline of a reply, in seconds.

    The first output item appears ``first_output_s`` after ``response.created``; audio
    starts ``first_audio_s`` later and is generated ``speedup`` times faster than it plays,
    in ``chunk_ms`` deltas; transcript deltas lead the audio they describe by one chunk;
    text and argument deltas come ``delta_s`` apart. Input transcriptions begin
    ``transcription_s`` after the commit, so they arrive once the response has started.
    """

    first_output_s: float = 0.1
    first_audio_s: float = 0.2
    speedup: float = 2.0
    chunk_ms: int = 100
    delta_s: float = 0.02
    transcription_s: float = 0.35
    transcription_delta_s: float = 0.05


@attrs.frozen
class PlannedCall:
    """A tool call in a response: a function call, an MCP call, or (``approval``) the
    request to approve an MCP call; ``approval_request_id`` names the approved request."""

    call: Call
    approval: bool = False
    approval_request_id: str | None = None

    @property
    def kind(self) -> str:
        """``function``, ``mcp`` or ``approval``."""
        if self.call.server is None:
            return "function"
        return "approval" if self.approval else "mcp"


@attrs.frozen
class Plan:
    """Everything a response needs to know before it starts."""

    in_band: bool
    audio: bool
    voice: str
    speed: float
    encoding: AudioEncoding
    output_format: Any
    max_output_tokens: int | str
    temperature: float | None
    metadata: Mapping[str, Any] | None
    input_counts: wire.TokenCounts
    reply: str | None
    calls: tuple[PlannedCall, ...]
    #: what the model says after its MCP calls returned, in the same response
    after: str | None = None


@attrs.define(eq=False)
class Output:
    """One output item of a response, and how much of it has been sent."""

    index: int
    item_id: str
    text: str = ""
    speech: Speech | None = None
    wire_audio: bytes = b""
    call: Call | None = None
    #: ``message``, ``function``, ``mcp`` or ``approval``
    kind: str = "message"
    call_id: str = ""
    approval_request_id: str | None = None
    sent_text: str = ""
    sent_audio: bytearray = attrs.Factory(bytearray)
    sent_args: str = ""
    begun: bool = False
    final: KnownItem | None = None


@attrs.define(eq=False)
class Run:
    """A response in progress (a timeline owner: closing it stops its steps)."""

    id: str
    plan: Plan
    outputs: list[Output] = attrs.Factory(list)
    closed: bool = False
    #: The reply was cut at ``max_output_tokens``: it ends ``incomplete``.
    cut: bool = False

    def played_ticks(self) -> int:
        """How long the audio sent so far plays, in timeline ticks."""
        encoding = self.plan.encoding
        samples = sum(len(o.sent_audio) for o in self.outputs) // encoding.bytes_per_sample
        return samples * wav.ticks_per_sample(encoding)


class Responses:
    """Starts, streams and cancels the responses of one session."""

    def __init__(
        self,
        timeline: Timeline,
        conversation: Conversation,
        *,
        ga: bool,
        conversation_id: str,
        ids: IdFactory,
        synthesizer: Synthesizer,
        timing: Timing,
        on_done: Callable[[Run, wire.TokenCounts], None],
    ) -> None:
        self._timeline = timeline
        self._conversation = conversation
        self._ga = ga
        self._spell = wire.GA if ga else wire.BETA
        self._conversation_id = conversation_id
        self._ids = ids
        self._synth = synthesizer
        self._timing = timing
        self._on_done = on_done
        #: The response writing to the default conversation, if any.
        self.active: Run | None = None
        #: Every response in progress, in-band or out-of-band.
        self.runs: list[Run] = []
        #: Completed function calls by ``call_id``, waiting for the client's output.
        self.calls: dict[str, Call] = {}
        #: MCP calls by the id of their ``mcp_approval_request``, waiting for the client.
        self.approvals: dict[str, Call] = {}
        #: The assistant has produced audio (the voice can no longer change).
        self.audio_sent = False

    def find(self, response_id: str) -> Run | None:
        """The response in progress with this id."""
        return next((r for r in self.runs if r.id == response_id), None)

    # ------------------------------------------------------------------ start

    def start(self, plan: Plan) -> Run:
        """Emit ``response.created`` and ``rate_limits.updated``; schedule the rest."""
        run = Run(id=self._ids.new("resp"), plan=plan)
        planned = 0
        if plan.reply is not None:
            planned += self._message(run, plan.reply)
        for planned_call in plan.calls:
            call, kind = planned_call.call, planned_call.kind
            run.outputs.append(
                Output(
                    index=len(run.outputs),
                    item_id=self._ids.new("item"),
                    call=call,
                    kind=kind,
                    call_id=self._ids.new("call", 16) if kind == "function" else "",
                    approval_request_id=planned_call.approval_request_id,
                )
            )
            planned += text_tokens(call.name + call.arguments)
        if plan.after is not None:
            planned += self._message(run, plan.after)
        self._fit(run)
        self._timeline.emit(
            ResponseCreated, response=self._response(run, ResponseStatus.IN_PROGRESS)
        )
        self._timeline.emit(
            RateLimitsUpdated,
            rate_limits=wire.rate_limits(self._ga, used_tokens=plan.input_counts.input + planned),
        )
        self.runs.append(run)
        if plan.in_band:
            self.active = run
        self._schedule(run)
        return run

    def _message(self, run: Run, text: str) -> int:
        """Add an assistant message saying ``text``; returns its output tokens."""
        plan = run.plan
        out = Output(index=len(run.outputs), item_id=self._ids.new("item"), text=text)
        tokens = text_tokens(text)
        if plan.audio:
            rate = plan.encoding.sample_rate
            out.speech = self._synth.speech(text, rate=rate, voice=plan.voice, speed=plan.speed)
            out.wire_audio = wav.encode(out.speech.samples, plan.encoding)
            tokens += (out.speech.duration_ms + 49) // 50
        run.outputs.append(out)
        return tokens

    def _fit(self, run: Run) -> None:
        """Cut the reply where it reaches ``max_output_tokens``: the service stops
        generating there and reports the response ``incomplete``."""
        limit = run.plan.max_output_tokens
        if not isinstance(limit, int):
            return
        budget, kept = limit, []
        for out in run.outputs:
            if out.call is not None:
                cost = text_tokens(out.call.name + out.call.arguments)
                if cost > budget:
                    run.cut = True
                    break
                budget -= cost
                kept.append(out)
                continue
            speech = out.speech
            pieces = speech.pieces if speech else tuple(split_pieces(out.text))
            fits, cost = 0, 0
            for k in range(len(pieces)):
                cost = text_tokens("".join(pieces[: k + 1]))
                if speech is not None:
                    cost += (speech.ends[k] * 1000 // speech.rate + 49) // 50
                if cost > budget:
                    break
                fits = k + 1
            if fits == len(pieces):
                budget -= cost
                kept.append(out)
                continue
            run.cut = True
            if fits:
                out.text = "".join(pieces[:fits])
                if speech is not None:
                    end = speech.ends[fits - 1]
                    out.speech = attrs.evolve(
                        speech,
                        samples=speech.samples[:end],
                        pieces=pieces[:fits],
                        starts=speech.starts[:fits],
                        ends=speech.ends[:fits],
                    )
                    out.wire_audio = out.wire_audio[: end * run.plan.encoding.bytes_per_sample]
                kept.append(out)
            break
        run.outputs = kept

    def _schedule(self, run: Run) -> None:
        timing, at = self._timing, self._timeline.at
        t = self._timeline.now + timing.first_output_s
        for out in run.outputs:
            at(t, partial(self._begin, run, out), run)
            if out.kind == "approval":
                t += timing.delta_s
            elif out.call is not None:
                args = out.call.arguments
                pieces = [args[i : i + 8] for i in range(0, len(args), 8)]
                for n, piece in enumerate(pieces, start=1):
                    at(t + n * timing.delta_s, partial(self._args_delta, run, out, piece), run)
                t += (len(pieces) + 1) * timing.delta_s
            elif out.speech is not None:
                t = self._schedule_audio(run, out, t)
            else:
                pieces = split_pieces(out.text)
                for n, piece in enumerate(pieces):
                    when = t + timing.first_audio_s + n * timing.delta_s
                    at(when, partial(self._text_delta, run, out, piece), run)
                t += timing.first_audio_s + len(pieces) * timing.delta_s
            last = out is run.outputs[-1]
            status = ItemStatus.INCOMPLETE if run.cut and last else ItemStatus.COMPLETED
            at(t, partial(self._finish, run, out, status), run)
            t += timing.delta_s
        if run.cut:
            done = partial(
                self._done, run, ResponseStatus.INCOMPLETE, StatusReason.MAX_OUTPUT_TOKENS
            )
        else:
            done = partial(self._done, run, ResponseStatus.COMPLETED, None)
        at(t - timing.delta_s, done, run)

    def _schedule_audio(self, run: Run, out: Output, t: float) -> float:
        """Interleave transcript and audio deltas by position in the audio; returns the end."""
        assert out.speech is not None
        timing = self._timing
        rate = out.speech.rate
        chunk = rate * timing.chunk_ms // 1000
        # (position in samples, transcript before audio at equal positions, index)
        steps = [(max(start - chunk, 0), 0, n) for n, start in enumerate(out.speech.starts)]
        steps += [(k * chunk, 1, k) for k in range(math.ceil(len(out.speech.samples) / chunk))]
        base = t + timing.first_audio_s
        for position, kind, index in sorted(steps):
            when = base + position / rate / timing.speedup
            if kind == 0:
                self._timeline.at(when, partial(self._transcript_delta, run, out, index), run)
            else:
                self._timeline.at(when, partial(self._audio_delta, run, out, index, chunk), run)
        return base + len(out.speech.samples) / rate / timing.speedup

    # ------------------------------------------------------------------ steps

    def _item(self, run: Run, out: Output, status: ItemStatus) -> KnownItem:
        call = out.call
        if call is not None and call.server is not None:
            if out.kind == "approval":
                return wire.mcp_approval_request_item(
                    out.item_id, call.server, call.name, call.arguments
                )
            ran = status is ItemStatus.COMPLETED
            return wire.mcp_call_item(
                out.item_id,
                call.server,
                call.name,
                "" if status is ItemStatus.IN_PROGRESS else out.sent_args,
                output=call.output if ran and call.error is None else None,
                error=call.error if ran else None,
                approval_request_id=out.approval_request_id,
            )
        if out.call is not None:
            arguments = "" if status is ItemStatus.IN_PROGRESS else out.sent_args
            return wire.function_call_item(
                self._ga, out.item_id, status, out.call_id, out.call.name, arguments
            )
        if status is ItemStatus.IN_PROGRESS:
            return wire.assistant_item(self._ga, out.item_id, status, None)
        part = wire.content_part(self._ga, audio=run.plan.audio, text=out.sent_text, in_item=True)
        return wire.assistant_item(self._ga, out.item_id, status, part)

    def _fields(self, run: Run, out: Output) -> dict[str, Any]:
        return {
            "response_id": run.id,
            "item_id": out.item_id,
            "output_index": out.index,
            "content_index": 0,
        }

    def _obfuscation(self) -> dict[str, str]:
        # GA text and transcript deltas carry random padding (PROTOCOL.md §3); beta's none.
        return {"obfuscation": self._ids.token("obfuscation", 6, 16)} if self._ga else {}

    def _begin(self, run: Run, out: Output) -> None:
        out.begun = True
        item = self._item(run, out, ItemStatus.IN_PROGRESS)
        emit = self._timeline.emit
        emit(ResponseOutputItemAdded, response_id=run.id, output_index=out.index, item=item)
        if run.plan.in_band:
            stored = Stored(item)
            self._conversation.insert(stored)
            self._conversation.announce_added(stored)
        if out.call is None:
            part = wire.content_part(self._ga, audio=run.plan.audio, text="", in_item=False)
            emit(ResponseContentPartAdded, part=part, **self._fields(run, out))

    def _transcript_delta(self, run: Run, out: Output, index: int) -> None:
        assert out.speech is not None
        piece = out.speech.pieces[index]
        out.sent_text += piece
        self._timeline.emit(
            self._spell.transcript_delta,
            delta=piece,
            extra=self._obfuscation(),
            **self._fields(run, out),
        )

    def _audio_delta(self, run: Run, out: Output, k: int, chunk: int) -> None:
        size = chunk * run.plan.encoding.bytes_per_sample
        data = out.wire_audio[k * size : (k + 1) * size]
        out.sent_audio += data
        self.audio_sent = True
        self._timeline.emit(
            self._spell.audio_delta,
            delta=base64.b64encode(data).decode("ascii"),
            **self._fields(run, out),
        )

    def _text_delta(self, run: Run, out: Output, piece: str) -> None:
        out.sent_text += piece
        self._timeline.emit(
            self._spell.text_delta, delta=piece, extra=self._obfuscation(), **self._fields(run, out)
        )

    def _args_delta(self, run: Run, out: Output, piece: str) -> None:
        out.sent_args += piece
        if out.kind == "mcp":
            self._timeline.emit(
                ResponseMcpCallArgumentsDelta,
                response_id=run.id,
                item_id=out.item_id,
                output_index=out.index,
                delta=piece,
            )
            return
        self._timeline.emit(
            ResponseFunctionCallArgumentsDelta,
            response_id=run.id,
            item_id=out.item_id,
            output_index=out.index,
            call_id=out.call_id,
            delta=piece,
        )

    def _finish(self, run: Run, out: Output, status: ItemStatus) -> None:
        emit, fields = self._timeline.emit, self._fields(run, out)
        if out.kind == "approval" and out.call is not None:
            if status is ItemStatus.COMPLETED:
                self.approvals[out.item_id] = out.call
        elif out.kind == "mcp" and out.call is not None:
            where = {"item_id": out.item_id, "output_index": out.index}
            emit(
                ResponseMcpCallArgumentsDone,
                response_id=run.id,
                arguments=out.sent_args,
                **where,
            )
            if status is ItemStatus.COMPLETED:
                emit(ResponseMcpCallInProgress, **where)
                failed = out.call.error is not None
                emit(ResponseMcpCallFailed if failed else ResponseMcpCallCompleted, **where)
        elif out.call is not None:
            emit(
                ResponseFunctionCallArgumentsDone,
                response_id=run.id,
                item_id=out.item_id,
                output_index=out.index,
                call_id=out.call_id,
                arguments=out.sent_args,
                # in the GA model only, but real beta frames carry it too (PROTOCOL.md §8.7)
                name=out.call.name,
            )
            if status is ItemStatus.COMPLETED:
                self.calls[out.call_id] = out.call
        elif run.plan.audio:
            emit(self._spell.audio_done, **fields)
            emit(self._spell.transcript_done, transcript=out.sent_text, **fields)
            part = wire.content_part(self._ga, audio=True, text=out.sent_text, in_item=False)
            emit(ResponseContentPartDone, part=part, **fields)
        else:
            emit(self._spell.text_done, text=out.sent_text, **fields)
            part = wire.content_part(self._ga, audio=False, text=out.sent_text, in_item=False)
            emit(ResponseContentPartDone, part=part, **fields)
        out.final = self._item(run, out, status)
        stored = self._conversation.get(out.item_id) if run.plan.in_band else None
        if stored is not None:  # None also when the client deleted it meanwhile
            stored.item = out.final
            if out.call is None and run.plan.audio:
                stored.audio[0] = (bytes(out.sent_audio), run.plan.encoding)
            self._conversation.announce_done(stored)
        emit(ResponseOutputItemDone, response_id=run.id, output_index=out.index, item=out.final)

    def cancel(self, run: Run, reason: StatusReason) -> None:
        """Close ``run`` now: finish the open item as incomplete, report it cancelled."""
        run.closed = True
        for out in run.outputs:
            if out.begun and out.final is None:
                self._finish(run, out, ItemStatus.INCOMPLETE)
        self._done(run, ResponseStatus.CANCELLED, reason)

    def _counts(self, run: Run) -> wire.TokenCounts:
        begun = [o for o in run.outputs if o.begun]
        if not begun:
            return wire.TokenCounts()
        encoding = run.plan.encoding
        return attrs.evolve(
            run.plan.input_counts,
            output_text=sum(text_tokens(o.sent_text) + text_tokens(o.sent_args) for o in begun),
            output_audio=sum((audio_ms(bytes(o.sent_audio), encoding) + 49) // 50 for o in begun),
        )

    def _response(
        self,
        run: Run,
        status: ResponseStatus,
        reason: StatusReason | None = None,
        counts: wire.TokenCounts | None = None,
    ) -> Any:
        plan = run.plan
        output: tuple[Item, ...] = ()
        if status is not ResponseStatus.IN_PROGRESS:
            output = tuple(o.final for o in run.outputs if o.final is not None)
        return wire.response_object(
            self._ga,
            response_id=run.id,
            status=status,
            reason=reason,
            output=output,
            conversation_id=self._conversation_id if plan.in_band else None,
            audio=plan.audio,
            output_format=plan.output_format,
            voice=plan.voice,
            max_output_tokens=plan.max_output_tokens,
            temperature=plan.temperature,
            counts=counts,
            metadata=plan.metadata,
        )

    def _done(self, run: Run, status: ResponseStatus, reason: StatusReason | None) -> None:
        run.closed = True
        counts = self._counts(run)
        self._timeline.emit(ResponseDone, response=self._response(run, status, reason, counts))
        self.runs.remove(run)
        if self.active is run:
            self.active = None
        self._on_done(run, counts)
