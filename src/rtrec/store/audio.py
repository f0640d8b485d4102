"""The FLAC audio archive: streaming writes, tolerant reads, and crash repair.

One FLAC file per (session, stream, sample rate), 16-bit mono, written with soundfile while
the session runs: ``<audio_dir>/<session_id>/input.flac`` and ``output.flac``; a stream that
changes sample rate (PCM16 24 kHz <-> G.711 8 kHz) gets a second file named after the rate,
``input-8000.flac``, rather than resampled, lossy audio.

Why a killed writer leaves an unreadable file: libsndfile writes the FLAC STREAMINFO header
when the file is opened, with a total sample count of 0 ("unknown"), and rewrites it on
close. A file that was never closed reports ``SF_COUNT_MAX`` frames, so ``sf.read()`` fails
allocating, and reading it block by block stops with a libsndfile error at the torn last
frame (and, measured with libsndfile 1.2.2, one sample short of the last complete frame).
``read_flac`` recovers every sample up to there; ``repair_flac`` then patches the header
with the count of complete FLAC frames, which gives back that last sample too, and rewrites
the file as a valid FLAC of what is recoverable. A file being written right now looks the
same to a reader, so live sessions are read the same way.

We encode at compression level 0, libsndfile's fastest (about 2,800x real time per core
here, against 1,900x at level 8), for files about 10% larger than level 8 makes of the
fixture speech. Its 1,152-sample blocks also keep the decoder's view of a live file close
to what was written.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import soundfile as sf

from rtrec.schemas.errors import RtrecError
from rtrec.schemas.storage import Stream

__all__ = [
    "COMPRESSION_LEVEL",
    "AudioOffsetError",
    "Samples",
    "StreamWriter",
    "empty_samples",
    "header_rate",
    "parse_stream_filename",
    "read_flac",
    "repair_flac",
    "sha256_file",
    "stream_filename",
    "write_flac",
]

Samples = npt.NDArray[np.int16]

#: soundfile's 0..1 scale; 0 is FLAC level 0 (see the module docstring)
COMPRESSION_LEVEL: Final = 0.0

_SF_COUNT_MAX: Final = 2**63 - 1
_READ_BLOCK: Final = 1 << 16
# The largest FLAC block libsndfile's encoder uses at any level (4,608 samples); the tail
# file keeps at least this much beyond the last block that surely reached the file.
_MAX_BLOCK: Final = 4608
_TAIL_HEAD: Final = struct.Struct("<QI")  # offset of the first sample, sample count
_TAIL_CRC: Final = struct.Struct("<I")
_LITTLE_ENDIAN: Final = sys.byteorder == "little"


class AudioOffsetError(RtrecError, ValueError):
    """Audio arrived for a sample offset other than the end of its stream's file."""


def empty_samples() -> Samples:
    """A zero-length sample array."""
    return np.zeros(0, dtype=np.int16)


def stream_filename(stream: Stream, sample_rate: int, first: bool) -> str:
    """``input.flac`` for a stream's first sample rate, ``input-8000.flac`` for any other."""
    return f"{stream.value}.flac" if first else f"{stream.value}-{sample_rate}.flac"


_NAME = re.compile(r"^(input|output)(?:-(\d+))?\.flac$")


def parse_stream_filename(name: str) -> Stream | None:
    """The stream a file name belongs to, or None for a file the archive did not write."""
    match = _NAME.match(name)
    return Stream(match.group(1)) if match else None


def header_rate(path: Path) -> int | None:
    """The sample rate in a FLAC header, or None when the file has no readable header."""
    try:
        return int(sf.info(str(path)).samplerate)
    except (sf.LibsndfileError, RuntimeError):
        return None


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _io_error(path: Path, exc: sf.LibsndfileError) -> OSError:
    """libsndfile says only "System error."; the C errno it left says what (e.g. disk full)."""
    errno = int(getattr(getattr(sf, "_ffi", None), "errno", 0) or 0)
    if errno:
        return OSError(errno, f"writing {path}: {os.strerror(errno)}")
    return OSError(f"writing {path}: libsndfile: {exc}")


def _flac_writer(path: Path, sample_rate: int) -> sf.SoundFile:
    """A new mono 16-bit FLAC at ``path``, the archive's one format."""
    return sf.SoundFile(
        str(path),
        "w",
        samplerate=sample_rate,
        channels=1,
        format="FLAC",
        subtype="PCM_16",
        compression_level=COMPRESSION_LEVEL,
    )


class StreamWriter:
    """One FLAC file being written, how many samples it holds, and its tail file.

    Samples reach the encoder about once a second (``encode_every``), not with every
    batch: each encoder call has a fixed cost (soundfile's seeks, libFLAC's set-up) of the
    order of encoding 100 ms of audio, and the cost of a call after the writer's thread has
    slept is higher still. Until then, and for the samples of the encoder's unfinished
    block (up to 4,608), the audio is only in memory, so a kill would lose audio whose
    events were already committed. ``sync_tail`` (called before each commit) therefore
    writes what is not surely in the FLAC yet to ``<file>.tail``: from the start of the
    last complete block but one to the last sample written. It appends the samples since
    the previous call as one checksummed record (a few KiB a batch), and rewrites the file
    as a single record after each encoder call, when its start moves. Repair (and live
    readers) append what the tail adds to what the FLAC gives back.

    Samples stay bytes all the way (no numpy array per chunk).

    Not thread-safe; the log writer uses each one from its single worker thread at a time.
    """

    def __init__(self, path: Path, sample_rate: int, *, encode_every: int | None = None) -> None:
        """``encode_every``: samples gathered before the encoder gets them (default: one
        second's worth; 1 encodes every ``write``)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tail_path = path.with_name(path.name + ".tail")
        self.sample_rate = sample_rate
        self.frames = 0
        self._encode_every = sample_rate if encode_every is None else max(1, encode_every)
        self._encoded = 0  # samples handed to the encoder
        self._file: sf.SoundFile | None = _flac_writer(path, sample_rate)
        self._block = _MAX_BLOCK
        # the tail as 16-bit little-endian PCM, from sample ``_tail_start`` to ``frames``;
        # from ``_encoded`` on, the samples the encoder has not had yet
        self._tail = bytearray()
        self._tail_start = 0
        # the tail file: its records hold samples ``_file_start`` to ``_synced_to``
        self._tail_fd: int | None = None
        self._file_start = 0
        self._synced_to = 0
        self._tail_end = 0  # where the records end (older bytes may follow)

    def write(self, pcm: bytes, offset: int) -> None:
        """Append 16-bit little-endian PCM that belongs at sample ``offset``.

        Raises:
            AudioOffsetError: ``offset`` is not the number of samples written so far.
            OSError: the encoder could not write (disk full, I/O error), naming the file.
        """
        if offset != self.frames:
            raise AudioOffsetError(
                f"{self.path}: audio for sample offset {offset} but the file holds "
                f"{self.frames} samples; the capture core's offsets and the archive disagree"
            )
        if self._file is None:
            raise AudioOffsetError(f"{self.path} is already closed")
        self._tail += pcm
        self.frames += len(pcm) // 2
        if self.frames - self._encoded >= self._encode_every:
            self._encode()

    def _encode(self) -> None:
        """Hand the samples the encoder has not had to it; trim the tail behind them."""
        if self._file is None or self._encoded == self.frames:
            return
        pending = self._tail[2 * (self._encoded - self._tail_start) :]
        try:
            # libsndfile reads the bytes as native int16
            self._file.buffer_write(pending if _LITTLE_ENDIAN else _swapped(pending), dtype="int16")
        except sf.LibsndfileError as exc:
            raise _io_error(self.path, exc) from exc
        self._encoded = self.frames
        # The encoder writes each block as it completes (but holds back the last one until
        # a sample follows it): what lies before the last complete block but one is surely
        # in the file.
        keep_from = max(0, (self._encoded // self._block - 1) * self._block)
        if keep_from > self._tail_start:
            del self._tail[: 2 * (keep_from - self._tail_start)]
            self._tail_start = keep_from

    def sync_tail(self) -> None:
        """Bring the tail file up to the last sample written (cheap when nothing changed)."""
        if self._synced_to == self.frames or self._file is None:
            return
        if self._tail_fd is None:
            self._tail_fd = os.open(self.tail_path, os.O_RDWR | os.O_CREAT, 0o644)
        if self._tail_end and self._file_start == self._tail_start:
            # the usual call: one record of the samples since the last one, appended
            at = self._tail_end
            data = _tail_record(
                self._synced_to, self._tail[2 * (self._synced_to - self._tail_start) :]
            )
        else:
            # Once a second, after an encoder call moved the start. A kill in the middle of
            # this write tears the only record, and repair then keeps what the FLAC has:
            # the same exposure the single overwritten record had at every batch.
            at = 0
            data = _tail_record(self._tail_start, self._tail)
        # Older records may lie beyond the new end: never truncated (a file that keeps its
        # size costs the kernel less per write), they are never read, as each holds samples
        # from before the end of the records before them (see ``read_tail``).
        os.pwrite(self._tail_fd, data, at)
        self._tail_end = at + len(data)
        self._file_start = self._tail_start
        self._synced_to = self.frames

    def close(self) -> None:
        """Finish the file (the header gets its real length) and drop the tail file."""
        if self._file is not None:
            try:
                self._encode()
                self._file.close()
            except sf.LibsndfileError as exc:
                raise _io_error(self.path, exc) from exc
            finally:
                self._file = None
        if self._tail_fd is not None:
            os.close(self._tail_fd)
            self._tail_fd = None
        self.tail_path.unlink(missing_ok=True)

    @property
    def closed(self) -> bool:
        """Whether ``close`` ran."""
        return self._file is None


def _tail_record(start: int, pcm: bytes | bytearray) -> bytes:
    """One record of a tail file: (first sample, count) header, the PCM, CRC-32 of both."""
    body = _TAIL_HEAD.pack(start, len(pcm) // 2) + pcm
    return body + _TAIL_CRC.pack(zlib.crc32(body))


def _swapped(pcm: bytes | bytearray) -> bytes:
    """Little-endian 16-bit PCM in this (big-endian) machine's byte order."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.int16).tobytes()


def read_tail(path: Path) -> tuple[int, Samples] | None:
    """The tail file beside a FLAC: (offset of its first sample, samples), or None if unusable.

    Records are read in order while each is whole, passes its checksum and continues the
    one before: a record torn by a kill in the middle of writing it ends the tail there, and
    so do the older records a rewrite left beyond the end (their samples start before it).
    """
    try:
        data = path.with_name(path.name + ".tail").read_bytes()
    except FileNotFoundError:
        return None
    start: int | None = None
    end = 0
    parts: list[bytes] = []
    pos = 0
    while pos + _TAIL_HEAD.size + _TAIL_CRC.size <= len(data):
        first, count = _TAIL_HEAD.unpack_from(data, pos)
        stop = pos + _TAIL_HEAD.size + 2 * count
        if stop + _TAIL_CRC.size > len(data) or (start is not None and first != end):
            break
        (crc,) = _TAIL_CRC.unpack_from(data, stop)
        if zlib.crc32(data[pos:stop]) != crc:
            break
        if start is None:
            start = first
        parts.append(data[pos + _TAIL_HEAD.size : stop])
        end = first + count
        pos = stop + _TAIL_CRC.size
    if start is None:
        return None
    return start, np.frombuffer(b"".join(parts), dtype="<i2").astype(np.int16)


def _with_tail(path: Path, samples: Samples) -> Samples:
    """``samples`` decoded from a torn FLAC, extended by its tail file where they agree."""
    tail = read_tail(path)
    if tail is None:
        return samples
    start, extra = tail
    if start > len(samples):
        return samples  # a gap between the two: not from the same moment
    overlap = min(len(samples), start + len(extra)) - start
    if not np.array_equal(samples[start : start + overlap], extra[:overlap]):
        return samples
    if start + len(extra) <= len(samples):
        return samples
    return np.concatenate([samples[:start], extra])


def _read_until_error(path: Path, skip: int, block: int) -> tuple[list[Samples], int, bool]:
    """Read a possibly torn FLAC: (chunks after the first ``skip`` samples, their count, clean).

    ``clean`` is True when the decoder reached the end without an error.
    """
    chunks: list[Samples] = []
    count = 0
    with sf.SoundFile(str(path)) as f:
        while skip:
            # these samples decoded fine before, so these reads cannot fail
            skipped = len(f.read(min(skip, _READ_BLOCK), dtype="int16"))
            if skipped == 0:
                return chunks, count, True
            skip -= skipped
        try:
            while True:
                data = f.read(block, dtype="int16")
                if len(data) == 0:
                    return chunks, count, True
                chunks.append(np.asarray(data, dtype=np.int16).reshape(-1))
                count += len(data)
        except sf.LibsndfileError:
            return chunks, count, False


def _decode_torn(path: Path) -> Samples:
    """Every sample the decoder reaches in a FLAC that was never closed."""
    chunks: list[Samples] = []
    count = 0
    # A failing read loses the whole block it asked for, so go back and creep up on the
    # torn end with smaller blocks; decoding the prefix again is cheap next to the tail.
    for block in (_READ_BLOCK, 1024, 1):
        more, n, clean = _read_until_error(path, count, block)
        chunks.extend(more)
        count += n
        if clean:
            break
    return np.concatenate(chunks) if chunks else empty_samples()


def read_flac(path: Path) -> tuple[Samples, int, bool]:
    """Read a FLAC written by the archive, whole or torn: (samples, sample rate, complete).

    ``complete`` is False for a file that was never closed (a live session, or a crash):
    then the samples are every one the decoder could reach, plus the tail file's.

    libsndfile writes nothing at all for a FLAC without samples, so an empty file is an
    empty stream (its rate is then 0: take it from ``audio_streams``), or, with a tail file
    beside it, a stream whose first second had not reached the encoder yet.

    Raises:
        sf.LibsndfileError: the file has no readable FLAC header at all.
    """
    if path.stat().st_size == 0:
        # killed (or still live) before the encoder wrote anything: the tail is all there is
        if read_tail(path) is None:
            return empty_samples(), 0, True
        return _with_tail(path, empty_samples()), 0, False
    info = sf.info(str(path))
    rate = int(info.samplerate)
    if info.frames != _SF_COUNT_MAX:
        data, _ = sf.read(str(path), dtype="int16", always_2d=False)
        return np.asarray(data, dtype=np.int16).reshape(-1), rate, True
    return _with_tail(path, _decode_torn(path)), rate, False


def _with_total_samples(path: Path, total: int) -> Path | None:
    """A temporary copy of a FLAC whose header claims ``total`` samples (None: no STREAMINFO)."""
    data = bytearray(path.read_bytes())
    # "fLaC", then the first metadata block: 4-byte header, STREAMINFO (type 0), 34 bytes.
    if len(data) < 42 or data[:4] != b"fLaC" or data[4] & 0x7F != 0:
        return None
    field = int.from_bytes(data[18:26], "big")  # rate(20) channels(3) bps(5) total(36)
    field = (field >> 36 << 36) | (total & ((1 << 36) - 1))
    data[18:26] = field.to_bytes(8, "big")
    blocksize = int.from_bytes(data[10:12], "big")  # max block size
    if blocksize == 0:
        return None
    fd, name = tempfile.mkstemp(suffix=".flac", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


def _recover_complete_frames(path: Path, recovered: Samples) -> Samples:
    """Try to get back the last sample(s) of the last complete FLAC frame (see module doc)."""
    head = path.read_bytes()[:42]
    if len(head) < 42:
        return recovered
    blocksize = int.from_bytes(head[10:12], "big")
    if blocksize == 0 or len(recovered) % blocksize == 0:
        return recovered
    candidate = -(-len(recovered) // blocksize) * blocksize
    patched = _with_total_samples(path, candidate)
    if patched is None:
        return recovered
    try:
        data, _ = sf.read(str(patched), dtype="int16", always_2d=False)
        full = np.asarray(data, dtype=np.int16).reshape(-1)
    except sf.LibsndfileError:
        return recovered
    finally:
        patched.unlink(missing_ok=True)
    if len(full) == candidate and np.array_equal(full[: len(recovered)], recovered):
        return full
    return recovered


def write_flac(path: Path, samples: Samples, sample_rate: int) -> None:
    """Write a whole FLAC atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=".flac.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        with _flac_writer(tmp, sample_rate) as f:
            f.write(samples)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def repair_flac(path: Path, sample_rate: int) -> tuple[int, bool]:
    """Make a FLAC left by a killed writer readable; returns (frames, rewritten).

    A complete file is left alone. A torn one is rewritten with every recoverable sample:
    all complete FLAC frames, then what its tail file adds; a file without even a header
    becomes a FLAC of the tail's samples, or an empty one, at ``sample_rate``. The broken
    original is kept beside it as ``*.flac.broken`` until the rewrite is in place, so a
    crash during repair loses nothing.
    """
    tail = path.with_name(path.name + ".tail")
    if path.stat().st_size == 0 and read_tail(path) is None:
        return 0, False
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        samples, rate = _with_tail(path, empty_samples()), sample_rate
    else:
        rate = int(info.samplerate)
        if info.frames != _SF_COUNT_MAX:
            tail.unlink(missing_ok=True)  # closed, then killed before the tail was removed
            return int(info.frames), False
        samples = _decode_torn(path)
        if len(samples):
            samples = _recover_complete_frames(path, samples)
        samples = _with_tail(path, samples)
    backup = path.with_name(path.name + ".broken")
    shutil.copyfile(path, backup)
    write_flac(path, samples, rate)
    backup.unlink()
    tail.unlink(missing_ok=True)
    return len(samples), True
