"""The input audio buffer while a fold runs: the client's appends as runs of archived audio,
and what waits to be attributed to a user item (PROTOCOL.md §5, §8)."""

from __future__ import annotations

from types import MappingProxyType
from typing import final

from rtrec.replay._findings import Findings, Where
from rtrec.replay._rules import AnomalyKind
from rtrec.replay._state import AudioRef, InputBuffer, InputRun
from rtrec.schemas.storage import Stream

__all__ = ["InputAudioDraft", "slice_input"]


def slice_input(
    runs: list[InputRun], from_ms: float, to_ms: float
) -> tuple[tuple[AudioRef, ...], bool]:
    """The archived audio between two points of the input timeline, and whether the points
    lie beyond the audio the log holds."""
    end = runs[-1].end_ms if runs else 0.0
    out: list[AudioRef] = []
    for run in runs:
        lo, hi = max(from_ms, run.start_ms), min(to_ms, run.end_ms)
        if hi <= lo:
            continue
        a = round((lo - run.start_ms) * run.sample_rate / 1000)
        b = min(round((hi - run.start_ms) * run.sample_rate / 1000), run.samples)
        if b > a:
            out.append(
                AudioRef(
                    stream=run.stream,
                    sample_rate=run.sample_rate,
                    offset=run.offset + a,
                    samples=b - a,
                )
            )
    # a millisecond of slack: the service states offsets in whole milliseconds
    return tuple(out), to_ms > end + 1 or from_ms > end + 1


@final
class InputAudioDraft:
    """Owns the state's ``input`` (an ``InputBuffer``) while a fold runs.

    The last run stays open: an append that continues it (same stream and rate, the next
    samples of the archive) only adds samples, which is what almost every append does.
    """

    __slots__ = (
        "clears_pending",
        "commits",
        "created_audio",
        "created_audio_queue",
        "findings",
        "pending_from",
        "run_offset",
        "run_rate",
        "run_samples",
        "run_start",
        "run_stream",
        "runs",
        "speech",
    )

    def __init__(self, base: InputBuffer, findings: Findings) -> None:
        self.findings = findings
        self.runs = list(base.runs)
        last = self.runs.pop() if self.runs else None
        self.run_start = last.start_ms if last else 0.0
        self.run_stream: Stream | None = last.stream if last else None
        self.run_rate = last.sample_rate if last else 0
        self.run_offset = last.offset if last else 0
        self.run_samples = last.samples if last else 0
        #: where audio not yet committed or cleared starts, in ms of the input timeline
        self.pending_from = base.pending_from_ms
        self.speech = dict(base.speech)
        self.commits = list(base.commits)
        self.clears_pending = base.clears_pending
        self.created_audio = dict(base.created_audio)
        self.created_audio_queue = list(base.created_audio_queue)

    def append(self, stream: Stream | None, rate: int, offset: int, samples: int) -> None:
        """Apply an ``input_audio_buffer.append``: its ``samples`` at ``offset`` of a stream
        of the archive (``stream`` None: the archive lacks its audio).

        The one function that applies an append, whichever path the row took.
        """
        if stream is None:
            self.findings.unarchived_audio += 1
        elif (
            offset == self.run_offset + self.run_samples
            and rate == self.run_rate
            and stream == self.run_stream
        ):
            self.run_samples += samples
        else:
            if self.run_stream is not None:
                self.runs.append(self._open_run())
                self.run_start = self.appended_ms()
            self.run_stream, self.run_rate = stream, rate
            self.run_offset, self.run_samples = offset, samples

    def appended_ms(self) -> float:
        """Milliseconds of input audio appended so far (the end of the input timeline)."""
        if self.run_stream is None:
            return self.run_start
        return self.run_start + self.run_samples * 1000 / self.run_rate

    def slice(self, at: Where, from_ms: float, to_ms: float) -> tuple[AudioRef, ...]:
        """The archived audio between two points of the input timeline; an anomaly if they
        lie beyond what was appended."""
        refs, out_of_range = slice_input(self._all_runs(), from_ms, to_ms)
        if out_of_range:
            self.findings.anomaly(
                at,
                AnomalyKind.AUDIO_OUT_OF_RANGE,
                f"{from_ms:g}-{to_ms:g} ms of {self.appended_ms():g} ms appended",
            )
        return refs

    def _open_run(self) -> InputRun:
        assert self.run_stream is not None
        return InputRun(
            start_ms=self.run_start,
            stream=self.run_stream,
            sample_rate=self.run_rate,
            offset=self.run_offset,
            samples=self.run_samples,
        )

    def _all_runs(self) -> list[InputRun]:
        return [*self.runs, self._open_run()] if self.run_stream is not None else self.runs

    def freeze(self) -> InputBuffer:
        """The input buffer as it stands; the draft stays usable."""
        return InputBuffer(
            runs=tuple(self._all_runs()),
            pending_from_ms=self.pending_from,
            speech=MappingProxyType(dict(self.speech)),
            commits=tuple(self.commits),
            clears_pending=self.clears_pending,
            created_audio=MappingProxyType(dict(self.created_audio)),
            created_audio_queue=tuple(self.created_audio_queue),
        )
