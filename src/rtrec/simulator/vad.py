"""Server VAD by energy: speech starts and stops on the input audio timeline (sans-IO).

The detector looks at 10 ms frames. A frame is speech when its RMS reaches the level the
session's ``threshold`` names: ``threshold`` 0..1 maps linearly onto -70..-10 dBFS, so the
default 0.5 is -40 dBFS (RMS 328 of 32768); silence and room noise stay below it, the fixture
speech (syllable RMS 2000-3300) is far above it.

- Speech starts at the first speech frame. ``audio_start_ms`` is that frame's start minus
  ``prefix_padding_ms``, but never before the start of the current buffer.
- Speech stops once ``silence_duration_ms`` of non-speech frames follow; ``audio_end_ms``
  is the end of that silence window (PROTOCOL.md §5: the end includes the silence window).
- The idle alarm (``idle_timeout_ms``) fires when the timeline reaches an armed tick while
  nobody is speaking.

Everything is measured on the timeline of audio the client appended (24 kHz ticks, see
``audio.py``), never on the wall clock, so the same input gives the same events at any
pace. Frames are aligned to the start of the session's audio; a chunk that ends mid-frame
leaves the rest for the next chunk.
"""

from __future__ import annotations

from typing import Final

import attrs
import numpy as np

from rtrec.simulator.audio import TICKS_PER_MS, TICKS_PER_SECOND, Samples

__all__ = [
    "FRAME_MS",
    "EnergyVad",
    "IdleTimeout",
    "SpeechStarted",
    "SpeechStopped",
    "VadEvent",
    "VadSettings",
    "threshold_rms",
]

FRAME_MS: Final = 10
_FRAME_TICKS: Final = FRAME_MS * TICKS_PER_MS


def threshold_rms(threshold: float) -> float:
    """The frame RMS (16-bit scale) at which ``threshold`` calls a frame speech."""
    return float(32768 * 10 ** ((60 * threshold - 70) / 20))


@attrs.frozen
class VadSettings:
    """The parameters of ``turn_detection`` the detector uses."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 200


@attrs.frozen
class SpeechStarted:
    """Speech began; ``tick`` is ``audio_start_ms`` in ticks (prefix padding applied)."""

    tick: int


@attrs.frozen
class SpeechStopped:
    """Speech ended; ``tick`` is ``audio_end_ms`` in ticks (silence window included)."""

    tick: int


@attrs.frozen
class IdleTimeout:
    """The idle alarm rang at ``tick``; ``armed_tick`` is when its wait began."""

    armed_tick: int
    tick: int


VadEvent = SpeechStarted | SpeechStopped | IdleTimeout


class EnergyVad:
    """Feed decoded input audio; get speech start/stop and idle-timeout events back."""

    def __init__(self, settings: VadSettings, *, tick: int = 0) -> None:
        self.settings = settings
        self.speaking = False
        self._tick = tick  # timeline position of the end of all audio seen
        self._floor = tick  # start of the current input buffer
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_rate = 0
        self._silence = 0
        self._alarm: tuple[int, int] | None = None  # (armed at, rings at)

    @property
    def tick(self) -> int:
        """Timeline position of the end of all audio fed so far."""
        return self._tick

    def set_floor(self, tick: int) -> None:
        """The input buffer now starts at ``tick`` (after a commit or clear)."""
        self._floor = tick

    def reset(self, tick: int) -> None:
        """Forget any speech in progress (the buffer was committed or cleared by hand)."""
        self.speaking = False
        self._silence = 0
        self._floor = tick

    def arm(self, at: int, rings: int) -> None:
        """Ring the idle alarm when the timeline reaches ``rings`` in silence (the wait
        began at ``at``)."""
        self._alarm = (at, rings)

    def disarm(self) -> None:
        """Cancel the idle alarm."""
        self._alarm = None

    def feed(self, samples: Samples, rate: int) -> list[VadEvent]:
        """Advance the timeline by ``samples`` (at ``rate`` Hz) and report what happened."""
        if rate != self._pending_rate:
            # A format switch mid-frame drops the partial frame: at most 10 ms, and the
            # timeline below only ever counts whole samples that were fed.
            self._pending = np.zeros(0, dtype=np.int16)
            self._pending_rate = rate
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        per_frame = rate * FRAME_MS // 1000
        n_frames = len(data) // per_frame
        self._pending = data[n_frames * per_frame :]
        tick_per_sample = TICKS_PER_SECOND // rate
        # The timeline advances with every sample fed, complete frames or not; frames are
        # judged when complete, and a frame's position is where its first sample sits.
        frame_start = self._tick - (len(data) - len(samples)) * tick_per_sample
        self._tick += len(samples) * tick_per_sample
        if n_frames == 0:
            return []
        frames = data[: n_frames * per_frame].reshape(n_frames, per_frame).astype(np.int64)
        energy = (frames * frames).sum(axis=1)
        limit = threshold_rms(self.settings.threshold) ** 2 * per_frame
        events: list[VadEvent] = []
        prefix = self.settings.prefix_padding_ms * TICKS_PER_MS
        silence = self.settings.silence_duration_ms * TICKS_PER_MS
        for index in range(n_frames):
            start = frame_start + index * _FRAME_TICKS
            end = start + _FRAME_TICKS
            speech = bool(energy[index] >= limit)
            if self.speaking:
                self._silence = 0 if speech else self._silence + _FRAME_TICKS
                if self._silence >= silence:
                    self.speaking = False
                    self._silence = 0
                    events.append(SpeechStopped(end))
            elif speech:
                self.speaking = True
                self._silence = 0
                self._alarm = None
                events.append(SpeechStarted(max(self._floor, start - prefix)))
            elif self._alarm is not None and end >= self._alarm[1]:
                events.append(IdleTimeout(self._alarm[0], self._alarm[1]))
                self._alarm = None
        return events
