"""The G.711 codecs decode to the standard values and encode back to the same codes."""

from __future__ import annotations

import numpy as np

from rtrec.schemas import g711


def test_ulaw_decodes_to_the_standard_values() -> None:
    """µ-law 0x00/0x80 are the extremes, 0xFF/0x7F are zero (ITU-T G.711 table 2)."""
    samples = g711.ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F, 0xF0]))
    assert samples.tolist() == [-32124, 32124, 0, 0, 120]


def test_alaw_decodes_to_the_standard_values() -> None:
    """A-law 0xD5/0x55 are the smallest magnitudes, 0xAA/0x2A the largest."""
    samples = g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))
    assert samples.tolist() == [8, -8, 32256, -32256]


def test_codes_round_trip_except_ulaw_negative_zero() -> None:
    """Every A-law code and every µ-law code but 0x7F survives decode -> encode."""
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    back = g711.ulaw_encode(g711.ulaw_decode(codes))
    assert [i for i in range(256) if back[i] != codes[i]] == [0x7F]


def test_encoding_quantises_to_the_nearest_code() -> None:
    """Arbitrary linear samples encode to the code whose value is nearest."""
    rng = np.random.default_rng(0)
    samples = rng.integers(-32768, 32768, size=5000).astype(np.int16)
    for encode, decode in (
        (g711.ulaw_encode, g711.ulaw_decode),
        (g711.alaw_encode, g711.alaw_decode),
    ):
        table = decode(bytes(range(256))).astype(np.int32)
        decoded = decode(encode(samples)).astype(np.int32)
        best = np.abs(samples.astype(np.int32)[:, None] - table[None, :]).min(axis=1)
        assert np.array_equal(np.abs(decoded - samples.astype(np.int32)), best)
