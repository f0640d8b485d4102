"""One session's audio from the log: what ``rtrec audio`` writes and ``rtrec report`` plays.

- ``input`` / ``output``: the stream exactly as archived (every sample the client appended,
  or the server sent), lossless.
- ``mix``: a stereo file on the session's timeline (``session_timeline``), the user on the
  left and the assistant on the right, to hear the conversation as it happened. (A client
  that cut playback short with ``conversation.item.truncate`` stopped earlier than the mix
  does.) Streams at another rate than 24 kHz (G.711's 8 kHz) are resampled linearly for the
  mix only.

**The session's timeline** is the wire time (when the recorder saw each frame), delayed
wherever the recorded audio needed more time than the wire gave it. Input audio is
captured in real time, so a chunk cannot have been recorded before the previous one ended:
an append of 100 ms that arrived sooner than that (a client that sends a file at once,
``rtrec demo``) is placed after it, and everything later in the log moves with it (the
delay only grows; for a microphone streaming in real time it stays at the largest send
jitter, a few ms). Output audio plays from its arrival, in order: the server sends it
faster than real time (all at once with the simulator's ``--pace fast``), so its chunks
queue up as a client's player would, without delaying anything else. ``rtrec report``
draws everything on this timeline, so the transcript sits on its audio.
- ``--item ID``: one item's audio: an assistant item's output deltas, or a user item's speech
  as server VAD delimited it on the input stream (``audio_start_ms`` to ``audio_end_ms``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import attrs
import numpy as np
import numpy.typing as npt

from rtrec.schemas.storage import Stream
from rtrec.store.audio import Samples
from rtrec.store.log import LogError
from rtrec.store.reader import (
    LogAudio,
    LogReader,
    open_log_reader,
    read_streams,
    resolve_session,
)

__all__ = [
    "MIX_RATE",
    "AudioChoice",
    "PlacedAudio",
    "SessionTimeline",
    "extract_audio",
    "mix_placed",
    "session_timeline",
    "timeline_mix",
    "timeline_rows",
]

MIX_RATE: Final = 24_000


class AudioChoice(enum.StrEnum):
    """What ``rtrec audio`` writes."""

    INPUT = "input"
    OUTPUT = "output"
    MIX = "mix"


_CHUNKS: Final = """
SELECT seq, t_ns, audio_stream, audio_offset, audio_samples, audio_rate
FROM events
WHERE session_id = ? AND audio_stream IS NOT NULL AND audio_samples > 0 {item}
ORDER BY seq
"""

_VAD: Final = """
SELECT type, json_extract_string(payload, '$.audio_start_ms') AS start_ms,
       json_extract_string(payload, '$.audio_end_ms') AS end_ms
FROM events
WHERE session_id = ? AND item_id = ? AND direction = 'server'
  AND type IN ('input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped')
ORDER BY seq
"""


def extract_audio(
    db: Path, session: str, choice: AudioChoice, item: str | None = None
) -> tuple[npt.NDArray[np.int16], int]:
    """The samples ``rtrec audio`` writes: (samples, rate); stereo ``mix`` is (n, 2).

    Args:
        db: the log (live or not).
        session: a session id or unique prefix.
        choice: input, output or mix.
        item: only this conversation item's audio: on the stream it has with ``mix``, or
            on the stream ``choice`` names (an error if the item has none there).

    Raises:
        LogError: no such session, or no audio for the item; ``SessionNotFound``.
        ValueError: a stream with several sample rates asked for without mixing.
    """
    with open_log_reader(db) as log:
        sid = resolve_session(log, session)
        streams = read_streams(log, sid)
        with LogAudio(streams) as audio:
            if item is not None:
                return _item_audio(log, audio, sid, item, choice)
            if choice is AudioChoice.MIX:
                chunks = log.rows(_CHUNKS.format(item=""), [sid])
                return timeline_mix(audio, chunks), MIX_RATE
            stream = Stream(choice.value)
            rates = sorted({s.sample_rate for s in streams if s.stream is stream})
            if len(rates) > 1:
                raise ValueError(
                    f"session {sid} has {stream} audio at {', '.join(map(str, rates))} Hz; "
                    "use --stream mix, which resamples, or export the bundle for each file"
                )
            rate = rates[0] if rates else MIX_RATE
            total = next((s.frames for s in streams if s.stream is stream), 0)
            data = audio.samples(stream, rate, 0, total) if total else b""
            return np.frombuffer(data, dtype="<i2").astype(np.int16), rate


def _item_audio(
    log: LogReader, audio: LogAudio, sid: str, item: str, choice: AudioChoice = AudioChoice.MIX
) -> tuple[npt.NDArray[np.int16], int]:
    known = log.rows(
        "SELECT count(*) AS n FROM events WHERE session_id = ? AND item_id = ?", [sid, item]
    )
    if not known[0]["n"]:
        raise LogError(f"no item {item!r} in session {sid} (`rtrec show` lists the item ids)")
    chunks = log.rows(_CHUNKS.format(item="AND item_id = ?"), [sid, item])
    has = Stream(chunks[0]["audio_stream"]) if chunks else Stream.INPUT
    if choice is not AudioChoice.MIX and choice.value != has.value:
        said = "the assistant's speech" if has is Stream.OUTPUT else "the user's speech"
        raise LogError(
            f"item {item} has {has} audio ({said}), not {choice}: "
            f"give --stream {has} or leave --stream out"
        )
    if chunks:
        rates = {c["audio_rate"] for c in chunks}
        if len(rates) > 1:
            raise ValueError(f"item {item} has audio at several rates: {sorted(rates)}")
        parts = [
            audio.samples(
                Stream(c["audio_stream"]), c["audio_rate"], c["audio_offset"], c["audio_samples"]
            )
            for c in chunks
        ]
        return np.frombuffer(b"".join(parts), dtype="<i2").astype(np.int16), rates.pop()
    vad = log.rows(_VAD, [sid, item])
    start = next((r["start_ms"] for r in vad if r["start_ms"] is not None), None)
    end = next((r["end_ms"] for r in vad if r["end_ms"] is not None), None)
    if start is None or end is None:
        raise LogError(
            f"item {item} of session {sid} has no audio: no output deltas carry it, and "
            "server VAD did not mark its start and end on the input stream"
        )
    input_rates = sorted(
        {s.sample_rate for s in read_streams(log, sid) if s.stream is Stream.INPUT}
    )
    if len(input_rates) != 1:
        raise LogError(f"session {sid} has input audio at {input_rates} Hz; cannot place VAD times")
    rate = input_rates[0]
    first, last = int(start) * rate // 1000, int(end) * rate // 1000
    data = audio.samples(Stream.INPUT, rate, first, last - first)
    return np.frombuffer(data, dtype="<i2").astype(np.int16), rate


#: One row of a session's events for its timeline: seq, t_ns, and for audio events the
#: stream, sample offset, sample count and rate (None otherwise).
TimelineRow = tuple[int, int, "Stream | str | None", "int | None", "int | None", "int | None"]


@attrs.frozen
class PlacedAudio:
    """An audio chunk on the session's timeline."""

    seq: int
    stream: Stream
    #: where it starts on the timeline (ns)
    start_ns: int
    #: where it is in its stream's archive, in samples at ``rate``
    offset: int
    samples: int
    rate: int

    @property
    def end_ns(self) -> int:
        """Where it ends on the timeline."""
        return self.start_ns + self.samples * 1_000_000_000 // self.rate


@attrs.frozen
class SessionTimeline:
    """Every event and audio chunk of a session on its timeline (the module docstring)."""

    #: the timeline time of each event, by seq (ns)
    times_ns: dict[int, int]
    chunks: tuple[PlacedAudio, ...]
    #: how far the timeline ran ahead of the wire by the end (ns)
    lag_ns: int

    @property
    def end_ns(self) -> int:
        """The end of the last event or audio chunk."""
        ends = [*self.times_ns.values(), *(c.end_ns for c in self.chunks)]
        return max(ends, default=0)

    def input_at(self, stream_ms: float) -> int | None:
        """The timeline time of a point of the input stream given in ms from its start (as
        server VAD's ``audio_start_ms`` / ``audio_end_ms`` count), or None without input."""
        chunks = [c for c in self.chunks if c.stream is Stream.INPUT]
        if not chunks:
            return None
        at_s = stream_ms / 1000
        for c in chunks:
            begin, end = c.offset / c.rate, (c.offset + c.samples) / c.rate
            if begin <= at_s < end:
                return c.start_ns + round((at_s - begin) * 1e9)
        before = [c for c in chunks if c.offset / c.rate <= at_s] or chunks[:1]
        last = before[-1]
        return max(0, last.start_ns + round((at_s - last.offset / last.rate) * 1e9))


def session_timeline(rows: Iterable[TimelineRow]) -> SessionTimeline:
    """Place a session's events and audio chunks (in seq order) on its timeline."""
    lag = in_end = out_end = clock = 0
    times: dict[int, int] = {}
    chunks: list[PlacedAudio] = []
    for seq, t_ns, stream, offset, samples, rate in rows:
        at = max(int(t_ns) + lag, clock)
        if stream is not None and samples and rate:
            kind = Stream(stream)
            length = int(samples) * 1_000_000_000 // int(rate)
            if kind is Stream.INPUT:
                start = max(at - length, in_end, 0)
                in_end = start + length
                if in_end > at:  # recorded faster than real time: the clock waits for it
                    lag += in_end - at
                    at = in_end
            else:
                start = max(at, out_end)
                out_end = start + length
            chunks.append(PlacedAudio(seq, kind, start, int(offset or 0), int(samples), int(rate)))
        times[seq] = clock = at
    return SessionTimeline(times, tuple(chunks), lag)


def timeline_rows(chunks: Iterable[dict[str, Any]]) -> list[TimelineRow]:
    """``session_timeline`` rows from query rows (dicts with ``seq``, ``t_ns`` and the
    ``audio_*`` columns)."""
    return [
        (
            r["seq"],
            r["t_ns"],
            r.get("audio_stream"),
            r.get("audio_offset"),
            r.get("audio_samples"),
            r.get("audio_rate"),
        )
        for r in chunks
    ]


def timeline_mix(audio: LogAudio, chunks: list[dict[str, Any]]) -> npt.NDArray[np.int16]:
    """Stereo 24 kHz samples, user left and assistant right, each chunk placed on the session
    timeline (see the module docstring).

    Args:
        audio: the session's archive.
        chunks: its audio events in ``seq`` order, as dicts with ``seq``, ``t_ns``,
            ``audio_stream``, ``audio_offset``, ``audio_samples`` and ``audio_rate`` (the
            other events do not move audio on the timeline, so they may be left out).
    """
    return mix_placed(audio, session_timeline(timeline_rows(chunks)).chunks)


def mix_placed(audio: LogAudio, chunks: Iterable[PlacedAudio]) -> npt.NDArray[np.int16]:
    """Stereo 24 kHz samples of audio chunks placed on a timeline."""
    placed: list[tuple[int, int, Samples]] = []
    end = 0
    for c in chunks:
        data = audio.samples(c.stream, c.rate, c.offset, c.samples)
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        if c.rate != MIX_RATE:
            samples = _resample(samples, c.rate)
        start = c.start_ns * MIX_RATE // 1_000_000_000
        placed.append((0 if c.stream is Stream.INPUT else 1, start, samples))
        end = max(end, start + len(samples))
    out = np.zeros((end, 2), dtype=np.int16)
    for channel, start, samples in placed:
        out[start : start + len(samples), channel] = samples
    return out


def _resample(samples: Samples, rate: int) -> Samples:
    n = len(samples) * MIX_RATE // rate
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    x = np.linspace(0, len(samples) - 1, n)
    return np.round(np.interp(x, np.arange(len(samples)), samples)).astype(np.int16)
