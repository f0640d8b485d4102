"""Audio on the wire: decode, encode, and one integer timeline for every rate.

The input timeline is counted in *ticks* of 1/24000 s. One PCM16 sample at 24 kHz is one
tick and one G.711 sample at 8 kHz is three, so positions stay exact integers whatever
formats a session switches between, and ``audio_start_ms`` / ``audio_end_ms`` are
``ticks // 24``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from rtrec.schemas import AudioEncoding
from rtrec.schemas.g711 import decode, encode

__all__ = [
    "TICKS_PER_MS",
    "TICKS_PER_SECOND",
    "Samples",
    "decode",
    "describe",
    "encode",
    "ms_to_ticks",
    "resample",
    "ticks_per_sample",
    "ticks_to_ms",
]

Samples = npt.NDArray[np.int16]

TICKS_PER_SECOND: Final = 24000
TICKS_PER_MS: Final = TICKS_PER_SECOND // 1000


def ticks_per_sample(encoding: AudioEncoding) -> int:
    """Ticks one sample of this encoding lasts (1 at 24 kHz, 3 at 8 kHz)."""
    return TICKS_PER_SECOND // encoding.sample_rate


def ticks_to_ms(ticks: int) -> int:
    """Whole milliseconds in ``ticks`` (rounded down, as the service reports offsets)."""
    return ticks // TICKS_PER_MS


def ms_to_ticks(ms: int) -> int:
    """Ticks in ``ms`` milliseconds."""
    return ms * TICKS_PER_MS


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Convert between the protocol's two rates (24 and 8 kHz) by repeating or dropping
    samples. Crude, but only used when a client switches input formats mid-buffer."""
    if from_rate == to_rate:
        return samples
    if from_rate > to_rate:
        return samples[:: from_rate // to_rate].copy()
    return np.repeat(samples, to_rate // from_rate)


def describe(encoding: AudioEncoding) -> str:
    """How the service names a format in its error messages."""
    return {
        AudioEncoding.PCM16: "mono PCM16 at 24kHz",
        AudioEncoding.G711_ULAW: "G.711 u-law at 8kHz",
        AudioEncoding.G711_ALAW: "G.711 A-law at 8kHz",
    }[encoding]
