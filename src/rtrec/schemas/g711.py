"""G.711 µ-law and A-law codecs (ITU-T G.711), as numpy lookup tables.

The audio archive stores 16-bit linear PCM; G.711 audio (``audio/pcmu``, ``audio/pcma``,
beta ``g711_ulaw`` / ``g711_alaw``, 8 kHz) is decoded with these tables and encoded back for
byte-exact frame reconstruction. Decoding is exact; encoding the decoded value gives the
original code except for µ-law's negative zero 0x7F (it decodes to 0, like 0xFF), which
the recorder detects and keeps inline. The stdlib's ``audioop`` is gone from Python 3.13.

``decode``/``encode`` (wire bytes in any of the protocol's encodings, PCM16 included) and
their base64 forms are the one place the rest of rtrec turns wire audio into samples and
back.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import numpy as np
import numpy.typing as npt

from rtrec.schemas.enums import AudioEncoding

__all__ = [
    "alaw_decode",
    "alaw_encode",
    "decode",
    "decode_base64",
    "encode",
    "encode_base64",
    "ulaw_decode",
    "ulaw_encode",
]

Int16Array = npt.NDArray[np.int16]


def _ulaw_decode_table() -> Int16Array:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> Int16Array:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


_ULAW_TO_LINEAR: Final = _ulaw_decode_table()
_ALAW_TO_LINEAR: Final = _alaw_decode_table()


def _encode_table(decode: Int16Array) -> npt.NDArray[np.uint8]:
    """For every 16-bit value, the code whose decoded value is nearest (ties: lower code).

    Encoding the output of ``decode`` gives back the original code, which is what the
    archive's byte-exact rebuild needs; for other values this is the nearest quantisation.
    """
    order = np.argsort(decode, kind="stable")
    values = decode[order].astype(np.int32)
    linear = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.clip(np.searchsorted(values, linear), 1, len(values) - 1)
    lower, upper = values[idx - 1], values[idx]
    nearest = np.where(linear - lower <= upper - linear, idx - 1, idx)
    table = order[nearest].astype(np.uint8)
    # exact values map to the first code that decodes to them
    for code in np.argsort(decode, kind="stable")[::-1]:
        table[int(decode[code]) + 32768] = code
    return table


def _prefer_positive_zero(table: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    # µ-law silence is conventionally 0xFF (+0), not 0x7F (-0): encode 0 as 0xFF so that
    # the common code round-trips and the rare one is the exception.
    table[32768] = 0xFF
    return table


_LINEAR_TO_ULAW: Final = _prefer_positive_zero(_encode_table(_ULAW_TO_LINEAR))
_LINEAR_TO_ALAW: Final = _encode_table(_ALAW_TO_LINEAR)


def ulaw_decode(data: bytes) -> Int16Array:
    """Decode µ-law bytes to 16-bit linear samples."""
    return _ULAW_TO_LINEAR[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """Decode A-law bytes to 16-bit linear samples."""
    return _ALAW_TO_LINEAR[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: Int16Array) -> bytes:
    """Encode 16-bit linear samples as µ-law bytes."""
    return bytes(_LINEAR_TO_ULAW[samples.astype(np.int32) + 32768])


def alaw_encode(samples: Int16Array) -> bytes:
    """Encode 16-bit linear samples as A-law bytes."""
    return bytes(_LINEAR_TO_ALAW[samples.astype(np.int32) + 32768])


def decode(data: bytes, encoding: AudioEncoding) -> Int16Array:
    """Wire bytes in ``encoding`` to 16-bit samples.

    Raises:
        ValueError: PCM16 audio of an odd number of bytes.
    """
    if encoding is AudioEncoding.PCM16:
        if len(data) % 2:
            raise ValueError(f"PCM16 audio needs an even number of bytes, got {len(data)}")
        return np.frombuffer(data, dtype="<i2").astype(np.int16)
    if encoding is AudioEncoding.G711_ULAW:
        return ulaw_decode(data)
    return alaw_decode(data)


def encode(samples: Int16Array, encoding: AudioEncoding) -> bytes:
    """16-bit samples to wire bytes in ``encoding``."""
    if encoding is AudioEncoding.PCM16:
        return samples.astype("<i2").tobytes()
    if encoding is AudioEncoding.G711_ULAW:
        return ulaw_encode(samples)
    return alaw_encode(samples)


def decode_base64(text: str, encoding: AudioEncoding) -> Int16Array:
    """An event's base64 audio string to 16-bit samples.

    Raises:
        ValueError: not valid base64, or PCM16 audio of an odd number of bytes.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"audio is not valid base64: {exc}") from None
    return decode(data, encoding)


def encode_base64(samples: Int16Array, encoding: AudioEncoding) -> str:
    """16-bit samples as an event's base64 audio string in ``encoding``."""
    return base64.b64encode(encode(samples, encoding)).decode("ascii")
