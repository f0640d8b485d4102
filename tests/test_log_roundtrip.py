"""Property: whatever a session holds, log + FLAC give back every frame byte for byte.

Hypothesis draws sessions of audio frames (PCM16, µ-law, A-law; empty to 3,000 samples;
cut out or kept inline), text frames with arbitrary unicode, binary frames and non-JSON
text, and a writer batch size; the rebuilt frames must equal the wire, whatever the batching.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtrec.schemas import g711
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import Direction
from rtrec.store.reader import LogAudio, read_frames, rebuild_frame
from rtrec.store.writer import open_log_writer
from tests.logdata import SessionScript

_ULAW_CODES = [c for c in range(256) if c != 0x7F]  # -0 is kept inline by the recorder

directions = st.sampled_from([Direction.CLIENT, Direction.SERVER])


@st.composite
def audio_frames(draw: st.DrawFn) -> tuple:
    """(direction, encoding, samples, cut, extra text) for one audio frame."""
    encoding = draw(st.sampled_from(list(AudioEncoding)))
    n = draw(st.integers(0, 3000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if encoding is AudioEncoding.PCM16:
        samples = rng.integers(-32768, 32768, n).astype(np.int16)
    elif encoding is AudioEncoding.G711_ULAW:
        samples = g711.ulaw_decode(bytes(rng.choice(_ULAW_CODES, n).astype(np.uint8)))
    else:
        samples = g711.alaw_decode(bytes(rng.integers(0, 256, n).astype(np.uint8)))
    return draw(directions), encoding, samples, draw(st.booleans()), draw(st.text(max_size=20))


frames = st.one_of(
    audio_frames(),
    st.tuples(st.just("text"), directions, st.text(max_size=40)),
    st.tuples(st.just("binary"), directions, st.binary(max_size=64)),
    st.tuples(st.just("invalid"), directions, st.text(max_size=40)),
)


def build(items: list) -> SessionScript:
    """A session made of the drawn frames."""
    s = SessionScript()
    for i, item in enumerate(items):
        if item[0] == "text":
            s.event(item[1], {"type": "conversation.item.added", "event_id": f"e{i}", "t": item[2]})
        elif item[0] == "binary":
            s.binary(item[1], item[2])
        elif item[0] == "invalid":
            s.invalid(item[1], item[2])
        else:
            direction, encoding, samples, cut, extra = item
            key = "audio" if direction is Direction.CLIENT else "delta"
            event = {"type": "x.audio", "event_id": f"e{i}", "note": extra}
            s.audio_event(direction, event, key, samples, encoding, cut=cut)
    s.close()
    return s


async def record(db: Path, s: SessionScript, max_batch: int) -> None:
    async with open_log_writer(db, serve_queries=False, max_batch=max_batch) as w:
        for m in s.messages:
            await w.send(m)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(items=st.lists(frames, min_size=1, max_size=12), max_batch=st.integers(1, 40))
def test_every_frame_rebuilds_exactly(items, max_batch):
    """Log + FLAC rebuild each drawn frame exactly, for any batch size."""
    s = build(items)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "log.duckdb"
        trio.run(record, db, s, max_batch)
        stored = list(read_frames(db, s.session_id))
        assert stored == s.frames()
        with LogAudio.of_session(db, s.session_id) as audio:
            assert [rebuild_frame(f, audio) for f in stored] == [s.wire[f.seq] for f in stored]
