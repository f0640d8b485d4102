"""Where views get samples from: the ``AudioSource`` protocol, and an in-memory source.

The reducer only holds references (``AudioRef``: stream, rate, offset, count). Views that need
the samples themselves (the checksum in golden files) read them through ``AudioSource``, so
the FLAC archive, an exported bundle or a test's memory can stand behind it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from rtrec.replay._state import AudioRef
from rtrec.schemas.storage import Stream

__all__ = ["AudioSource", "MemoryAudio", "audio_digest"]


@runtime_checkable
class AudioSource(Protocol):
    """Anything that can hand out archived samples as 16-bit little-endian mono PCM."""

    def samples(self, stream: Stream, sample_rate: int, offset: int, count: int) -> bytes:
        """``count`` samples (``2 * count`` bytes) of ``stream`` at ``sample_rate``, from
        sample ``offset`` on.

        Raises:
            LookupError: the source does not hold those samples.
        """
        ...


class MemoryAudio:
    """An ``AudioSource`` over PCM16 buffers in memory, one per (stream, sample rate), laid
    out like the archive's FLAC files (one file per stream and rate)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[Stream, int], bytearray] = {}

    def append(self, stream: Stream, sample_rate: int, pcm: bytes) -> int:
        """Add samples at the end of a stream; returns the offset of the first one."""
        if len(pcm) % 2:
            raise ValueError(f"PCM16 needs an even number of bytes, got {len(pcm)}")
        buffer = self._buffers.setdefault((stream, sample_rate), bytearray())
        offset = len(buffer) // 2
        buffer += pcm
        return offset

    def frames(self, stream: Stream, sample_rate: int) -> int:
        """How many samples a stream holds."""
        return len(self._buffers.get((stream, sample_rate), b"")) // 2

    def samples(self, stream: Stream, sample_rate: int, offset: int, count: int) -> bytes:
        """See ``AudioSource.samples``."""
        buffer = self._buffers.get((stream, sample_rate))
        held = len(buffer) // 2 if buffer is not None else 0
        if offset < 0 or count < 0 or offset + count > held:
            raise LookupError(
                f"samples {offset}..{offset + count} of {stream} at {sample_rate} Hz: "
                f"the source holds {held}"
            )
        assert buffer is not None or count == 0
        return bytes(buffer[offset * 2 : (offset + count) * 2]) if buffer else b""


def audio_digest(refs: Iterable[AudioRef], source: AudioSource) -> str:
    """``sha256:<hex>`` of the samples the references point at, concatenated as PCM16.

    Raises:
        LookupError: the source does not hold some of the samples.
    """
    digest = hashlib.sha256()
    for ref in refs:
        digest.update(source.samples(ref.stream, ref.sample_rate, ref.offset, ref.samples))
    return f"sha256:{digest.hexdigest()}"
