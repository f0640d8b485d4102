"""Deterministic speech-like audio for the assistant's replies.

Not speech, but audio with the shape of speech: one voiced burst per syllable (a few
harmonics of a falling pitch, under an attack/release envelope), a short noise burst for
consonants, silence between words and longer pauses after punctuation. Its length is
proportional to the text (about 55 ms per letter at speed 1.0), so audio durations, token
counts and truncation offsets behave like the service's; its loudness (peaks near 9000,
syllable RMS in the thousands) is what an energy VAD calls speech.

Everything is integer arithmetic: the sine is a 4096-entry table from Bhaskara's rational
approximation, phases are 32-bit accumulators and noise is a counter hash (SplitMix64). So
the same text gives the same bytes on every machine and numpy version, which float ``sin``
would not promise.
"""

from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from rtrec.simulator.audio import Samples

__all__ = ["VOICE_PITCH", "Speech", "Synthesizer", "split_pieces", "synthesize"]

_PIECE: Final = re.compile(r"\s*\S+")
_VOWELS: Final = re.compile(r"[aeiouy]+")

#: Base pitch (Hz) per built-in voice; other voices get one derived from their name.
VOICE_PITCH: Final = {
    "alloy": 190,
    "ash": 110,
    "ballad": 130,
    "coral": 210,
    "echo": 120,
    "sage": 200,
    "shimmer": 220,
    "verse": 140,
    "marin": 200,
    "cedar": 115,
}

# Harmonic weights per vowel: a crude formant colour, so syllables differ audibly.
_TIMBRE: Final = {
    "a": (10, 9, 7, 4, 2, 1),
    "e": (10, 5, 3, 6, 4, 2),
    "i": (10, 3, 2, 3, 6, 4),
    "o": (10, 10, 6, 2, 1, 1),
    "u": (10, 8, 3, 1, 1, 1),
    "y": (10, 4, 2, 3, 5, 3),
}

_TABLE_BITS: Final = 12
_ONE: Final = 16384  # the sine table's full scale


def _sine_table() -> npt.NDArray[np.int64]:
    # Bhaskara I: sin(x) ~ 16x(pi-x) / (5pi^2 - 4x(pi-x)) on [0, pi]; with x = pi*j/N it
    # becomes 16p / (5N^2 - 4p), p = j(N-j), exact in integers. Error < 0.2%.
    n = 1 << (_TABLE_BITS - 1)
    j = np.arange(n, dtype=np.int64)
    p = j * (n - j)
    half = (16 * p * _ONE) // (5 * n * n - 4 * p)
    return np.concatenate([half, -half])


_SINE: Final = _sine_table()


def _noise(n: int, key: int) -> npt.NDArray[np.int64]:
    """``n`` values in [-2048, 2048) from SplitMix64 over a counter (no state, no floats)."""
    z = (np.arange(n, dtype=np.uint64) + np.uint64(key & 0xFFFFFFFF)) * np.uint64(
        0x9E3779B97F4A7C15
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(52)).astype(np.int64) - 2048


def split_pieces(text: str) -> list[str]:
    """Split text into the pieces the transcript deltas carry: each word with the
    whitespace before it. The pieces concatenate back to ``text`` exactly."""
    pieces: list[str] = _PIECE.findall(text)
    rest = text[sum(len(p) for p in pieces) :]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces.append(rest)
    return pieces


@attrs.frozen(eq=False)
class Speech:
    """Synthesised audio and where each text piece starts and ends in it (sample indices)."""

    samples: Samples
    rate: int
    pieces: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @property
    def duration_ms(self) -> int:
        """Length in whole milliseconds."""
        return len(self.samples) * 1000 // self.rate


def _pitch(voice: str) -> int:
    return VOICE_PITCH.get(voice, 100 + zlib.crc32(voice.encode()) % 120)


def _syllable(
    n: int, rate: int, f_start: int, f_end: int, timbre: tuple[int, ...], amp: int, key: int
) -> npt.NDArray[np.int64]:
    i = np.arange(n, dtype=np.int64)
    inc0, inc1 = (f_start << 32) // rate, (f_end << 32) // rate
    phase = np.cumsum(inc0 + ((inc1 - inc0) * i) // max(n, 1)) & 0xFFFFFFFF
    voiced = np.zeros(n, dtype=np.int64)
    for k, weight in enumerate(timbre, start=1):
        voiced += weight * _SINE[((phase * k) & 0xFFFFFFFF) >> (32 - _TABLE_BITS)]
    attack, release = max(n // 6, 1), max(n // 4, 1)
    env = np.clip(
        np.minimum(np.minimum(i * 1024 // attack, (n - 1 - i) * 1024 // release), 1024), 0, 1024
    )
    out: npt.NDArray[np.int64] = (voiced * env // 1024) * amp // 6000
    burst = min(n // 5, rate // 40)
    if key % 3:  # most syllables open with a consonant
        out[:burst] += _noise(burst, key) * amp // 100
    return out


def synthesize(text: str, *, rate: int, voice: str = "alloy", speed: float = 1.0) -> Speech:
    """Speech-like audio for ``text`` at ``rate`` Hz.

    Args:
        text: what the assistant says; its length sets the duration.
        rate: 24000 (PCM16) or 8000 (G.711).
        voice: sets the pitch (a built-in voice name or any string).
        speed: the session's ``speed``; 2.0 halves every duration.
    """
    pieces = tuple(split_pieces(text))
    base = _pitch(voice)
    chunks: list[npt.NDArray[np.int64]] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0

    def samples_for(ms: int) -> int:
        return round(ms / speed) * rate // 1000

    for index, piece in enumerate(pieces):
        word = piece.strip().lower()
        letters = sum(ch.isalnum() for ch in word)
        key = zlib.crc32(f"{index}:{word}".encode())
        starts.append(position)
        if letters:
            n_word = samples_for(max(120, 55 * letters + 50))
            vowels = _VOWELS.findall(word) or ["a"]
            f_word = base * (100 - 8 * index // max(len(pieces), 1)) // 100
            bounds = [n_word * s // len(vowels) for s in range(len(vowels) + 1)]
            for s, vowel in enumerate(vowels):
                n = bounds[s + 1] - bounds[s]
                f_start = f_word * (104 + (key >> (4 * s)) % 8) // 100
                chunk = _syllable(
                    n,
                    rate,
                    f_start,
                    f_word * 94 // 100,
                    _TIMBRE[vowel[0]],
                    110 if s == 0 else 85,
                    key + 7919 * s,
                )
                chunks.append(chunk)
            position += n_word
        ends.append(position)
        tail = word[-1:] if word else ""
        pause = samples_for(320 if tail in ".!?" else 180 if tail in ",;:" else 40)
        chunks.append(np.zeros(pause, dtype=np.int64))
        position += pause
    if not chunks:
        return Speech(np.zeros(0, dtype=np.int16), rate, pieces, tuple(starts), tuple(ends))
    samples = np.clip(np.concatenate(chunks), -32768, 32767).astype(np.int16)
    return Speech(samples, rate, pieces, tuple(starts), tuple(ends))


class Synthesizer:
    """``synthesize`` with a small LRU cache, shared by the sessions of one server: a
    scenario's replies repeat, and synthesis is the simulator's most expensive step."""

    def __init__(self, max_entries: int = 256) -> None:
        self._cache: OrderedDict[tuple[str, int, str, float], Speech] = OrderedDict()
        self._max = max_entries

    def speech(self, text: str, *, rate: int, voice: str, speed: float) -> Speech:
        """The (cached) speech for these parameters."""
        key = (text, rate, voice, speed)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        made = self._cache[key] = synthesize(text, rate=rate, voice=voice, speed=speed)
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return made
