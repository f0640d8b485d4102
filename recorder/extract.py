"""``rtrec audio``: one session's audio as a FLAC or WAV file.

- ``input`` / ``output``: the stream exactly as archived (every sample the client appended,
  or the server sent), lossless.
- ``mix``: a stereo file on the session's timeline, the user on the left and the assistant on
  the right, to hear the conversation as it happened. Each chunk starts when it can have been
  heard: an input chunk when its recording began (it arrived at the end of it), an output
  chunk when it arrived; and never before the previous chunk of its channel finished, since
  audio plays in order. The server sends audio faster than real time, so its chunks queue
  up as a client's player would. (A client that cut playback short with
  ``conversation.item.truncate`` stopped earlier than the mix does.) Streams at another rate
  than 24 kHz (G.711's 8 kHz) are resampled linearly for the mix only.
- ``--item ID``: one item's audio: an assistant item's output deltas, or a user item's speech
  as server VAD delimited it on the input stream (``audio_start_ms`` to ``audio_end_ms``).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any, Final

import click
import numpy as np
import numpy.typing as npt
import soundfile as sf

from rtrec.recorder.audio import Samples
from rtrec.recorder.log import LogError
from rtrec.recorder.options import db_option
from rtrec.recorder.reader import (
    LogAudio,
    LogReader,
    open_log_reader,
    read_streams,
    resolve_session,
)
from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import Stream

__all__ = ["MIX_RATE", "AudioChoice", "audio_command", "extract_audio", "timeline_mix"]

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
        item: only this conversation item's audio (input or output, whichever it has).

    Raises:
        LogError: no such session, or no audio for the item; ``SessionNotFound``.
        ValueError: a stream with several sample rates asked for without mixing.
    """
    with open_log_reader(db) as log:
        sid = resolve_session(log, session)
        streams = read_streams(log, sid)
        with LogAudio(streams) as audio:
            if item is not None:
                return _item_audio(log, audio, sid, item)
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
    log: LogReader, audio: LogAudio, sid: str, item: str
) -> tuple[npt.NDArray[np.int16], int]:
    chunks = log.rows(_CHUNKS.format(item="AND item_id = ?"), [sid, item])
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


def timeline_mix(audio: LogAudio, chunks: list[dict[str, Any]]) -> npt.NDArray[np.int16]:
    """Stereo 24 kHz samples, user left and assistant right, each chunk placed on the session
    timeline (see the module docstring).

    Args:
        audio: the session's archive.
        chunks: its audio events in ``seq`` order, as dicts with ``t_ns``, ``audio_stream``,
            ``audio_offset``, ``audio_samples`` and ``audio_rate``.
    """
    placed: list[tuple[int, int, Samples]] = []
    ends = {Stream.INPUT: 0, Stream.OUTPUT: 0}
    for c in chunks:
        stream = Stream(c["audio_stream"])
        rate = int(c["audio_rate"])
        data = audio.samples(stream, rate, c["audio_offset"], c["audio_samples"])
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        if rate != MIX_RATE:
            samples = _resample(samples, rate)
        arrived = int(c["t_ns"]) * MIX_RATE // 1_000_000_000
        start = arrived - len(samples) if stream is Stream.INPUT else arrived
        start = max(start, ends[stream], 0)
        ends[stream] = start + len(samples)
        placed.append((0 if stream is Stream.INPUT else 1, start, samples))
    out = np.zeros((max(ends.values()), 2), dtype=np.int16)
    for channel, start, samples in placed:
        out[start : start + len(samples), channel] = samples
    return out


def _resample(samples: Samples, rate: int) -> Samples:
    n = len(samples) * MIX_RATE // rate
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    x = np.linspace(0, len(samples) - 1, n)
    return np.round(np.interp(x, np.arange(len(samples)), samples)).astype(np.int16)


_FORMATS: Final = {".flac": "FLAC", ".wav": "WAV"}


@click.command("audio")
@click.argument("session")
@click.option(
    "--stream",
    "choice",
    type=click.Choice([c.value for c in AudioChoice]),
    default=AudioChoice.MIX.value,
    show_default=True,
    help="input (what the client sent), output (what the server sent), or a stereo mix "
    "(user left, assistant right) on the session's timeline.",
)
@click.option("--item", default=None, help="Only this conversation item's audio.")
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: .flac or .wav (16-bit PCM).",
)
@db_option()
def audio_command(session: str, choice: str, item: str | None, out: Path, db: Path) -> None:
    """Write the audio of SESSION (an id or unique prefix) to a FLAC or WAV file."""
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"{out.name}: the file must end in .flac or .wav", param_hint="-o")
    try:
        samples, rate = extract_audio(db, session, AudioChoice(choice), item)
    except (RtrecError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), samples, rate, format=fmt, subtype="PCM_16")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    click.echo(
        f"wrote {out}: {len(samples) / rate:.2f} s, {rate} Hz, "
        f"{'stereo' if channels == 2 else 'mono'}"
    )
