"""The FLAC archive: streamed files read back exactly; files of a killed writer are repaired.

Killed writers are real processes ended with SIGKILL, so the files on disk are exactly what
a crash leaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtrec.schemas.storage import Stream
from rtrec.store import audio
from tests.logdata import speech

ROOT = Path(__file__).resolve().parent.parent


def _killed_writer(
    path: Path, chunks: int, sync_tail_every: int | None, encode_every: int | None = None
) -> np.ndarray:
    """Stream ``chunks`` 100 ms chunks of speech into ``path`` in a child, SIGKILL it mid-file.

    ``encode_every``: the writer's (None: its default, one second of samples).
    """
    code = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from rtrec.store.audio import StreamWriter
        from tests.logdata import speech
        voice = speech("weather")
        w = StreamWriter(Path({str(path)!r}), 24000, encode_every={encode_every!r})
        for i in range({chunks}):
            w.write(voice[i * 2400:(i + 1) * 2400].tobytes(), w.frames)
            if {sync_tail_every!r} is not None and (i + 1) % ({sync_tail_every!r} or 1) == 0:
                w.sync_tail()
        print(w.frames, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    written = int(done.stdout)
    return speech("weather")[:written]


def test_stream_writer_round_trips_samples(tmp_path):
    """Samples written chunk by chunk read back identical from a closed file."""
    voice = speech("joke")
    w = audio.StreamWriter(tmp_path / "s" / "output.flac", 24000)
    for start in range(0, len(voice), 2400):
        w.write(voice[start : start + 2400].tobytes(), start)
        w.sync_tail()
    w.close()
    samples, rate, complete = audio.read_flac(tmp_path / "s" / "output.flac")
    assert (rate, complete) == (24000, True)
    np.testing.assert_array_equal(samples, voice)
    assert not (tmp_path / "s" / "output.flac.tail").exists()


def test_stream_writer_refuses_a_wrong_offset(tmp_path):
    """Audio for any offset but the end of the file is refused, naming both numbers."""
    w = audio.StreamWriter(tmp_path / "input.flac", 24000)
    w.write(np.zeros(100, np.int16).tobytes(), 0)
    with pytest.raises(audio.AudioOffsetError, match="offset 50 but the file holds 100"):
        w.write(np.zeros(10, np.int16).tobytes(), 50)
    w.close()


def test_a_killed_writers_file_is_unreadable_as_is(tmp_path):
    """The crash signature we repair: the header claims SF_COUNT_MAX frames, sf.read fails."""
    path = tmp_path / "input.flac"
    _killed_writer(path, 20, None)
    assert sf.info(str(path)).frames == 2**63 - 1
    with pytest.raises((ValueError, MemoryError, sf.LibsndfileError)):
        sf.read(str(path))


def test_repair_recovers_every_complete_block_without_a_tail(tmp_path):
    """Without a tail file, repair keeps all complete FLAC blocks and makes the file valid."""
    path = tmp_path / "input.flac"
    written = _killed_writer(path, 29, None, encode_every=1)  # every chunk reaches the encoder
    frames, rewritten = audio.repair_flac(path, 24000)
    assert rewritten
    assert frames == len(written) // 1152 * 1152  # level 0 blocks are 1,152 samples
    samples, rate, complete = audio.read_flac(path)
    assert complete
    assert rate == 24000
    np.testing.assert_array_equal(samples, written[:frames])
    assert not path.with_name("input.flac.broken").exists()


@pytest.mark.parametrize("encode_every", [None, 1])
def test_repair_with_the_tail_recovers_everything_synced(tmp_path, encode_every):
    """With the tail synced after the last chunk (as before a commit), nothing is lost."""
    path = tmp_path / "input.flac"
    written = _killed_writer(path, 29, 1, encode_every)
    frames, rewritten = audio.repair_flac(path, 24000)
    assert rewritten
    assert frames == len(written)
    np.testing.assert_array_equal(audio.read_flac(path)[0], written)
    assert not path.with_name("input.flac.tail").exists()
    assert audio.repair_flac(path, 24000) == (len(written), False)  # repairing again: no-op


def test_a_stale_tail_is_ignored(tmp_path):
    """A tail older than the FLAC's blocks adds nothing and corrupts nothing."""
    path = tmp_path / "input.flac"
    written = _killed_writer(path, 29, 5)  # tail last synced at 25 chunks
    frames, _ = audio.repair_flac(path, 24000)
    assert frames >= 25 * 2400
    np.testing.assert_array_equal(audio.read_flac(path)[0], written[:frames])


def test_a_torn_tail_record_ends_the_tail(tmp_path):
    """A record cut short by the kill fails its checksum; the records before it still count."""
    path = tmp_path / "input.flac"
    written = _killed_writer(path, 29, 1)  # encoded at 10 and 20 chunks, then 9 appends
    tail = path.with_name("input.flac.tail")
    tail.write_bytes(tail.read_bytes()[:-7])
    frames, _ = audio.repair_flac(path, 24000)
    assert frames == 28 * 2400
    np.testing.assert_array_equal(audio.read_flac(path)[0], written[:frames])


def test_a_tail_torn_at_its_first_record_is_ignored(tmp_path):
    """A tail whose first record is damaged adds nothing: repair keeps the FLAC's blocks."""
    path = tmp_path / "input.flac"
    written = _killed_writer(path, 29, 1)
    tail = path.with_name("input.flac.tail")
    data = bytearray(tail.read_bytes())
    data[20] ^= 0xFF  # a sample of the first record
    tail.write_bytes(bytes(data))
    frames, _ = audio.repair_flac(path, 24000)
    assert frames == 20 * 2400 // 1152 * 1152  # the complete blocks of what was encoded
    np.testing.assert_array_equal(audio.read_flac(path)[0], written[:frames])


def test_audio_killed_before_its_first_encoding_is_in_the_tail(tmp_path):
    """Half a second of audio never reached the encoder (an empty FLAC): the tail has it all."""
    path = tmp_path / "input.flac"
    written = _killed_writer(path, 5, 1)
    assert path.stat().st_size == 0
    samples, _, complete = audio.read_flac(path)  # as a live reader sees it
    assert not complete
    np.testing.assert_array_equal(samples, written)
    assert audio.repair_flac(path, 24000) == (len(written), True)
    samples, rate, complete = audio.read_flac(path)
    assert (rate, complete) == (24000, True)
    np.testing.assert_array_equal(samples, written)


def test_live_files_read_as_far_as_written(tmp_path):
    """A file still being written reads back every sample up to the last synced tail."""
    voice = speech("weather")
    w = audio.StreamWriter(tmp_path / "input.flac", 24000)
    w.write(voice[:10_000].tobytes(), 0)
    w.sync_tail()
    samples, _, complete = audio.read_flac(tmp_path / "input.flac")
    assert not complete
    np.testing.assert_array_equal(samples, voice[:10_000])
    w.close()


def test_an_empty_file_is_an_empty_stream(tmp_path):
    """libsndfile writes no bytes for a FLAC without samples: such a file reads as empty."""
    path = tmp_path / "output.flac"
    audio.write_flac(path, audio.empty_samples(), 8000)
    assert path.stat().st_size == 0
    assert audio.repair_flac(path, 8000) == (0, False)
    samples, _, complete = audio.read_flac(path)
    assert len(samples) == 0
    assert complete


def test_stream_filenames():
    """The first rate of a stream gets the plain name; others are named after their rate."""
    assert audio.stream_filename(Stream.INPUT, 24000, True) == "input.flac"
    assert audio.stream_filename(Stream.OUTPUT, 8000, False) == "output-8000.flac"
    assert audio.parse_stream_filename("input-8000.flac") is Stream.INPUT
    assert audio.parse_stream_filename("notes.flac") is None


def test_repair_leaves_the_process_environment_alone(tmp_path):
    """Repair writes only beside the file it repairs (no stray temporary files)."""
    path = tmp_path / "input.flac"
    _killed_writer(path, 5, 1)
    audio.repair_flac(path, 24000)
    assert sorted(os.listdir(tmp_path)) == ["input.flac"]
