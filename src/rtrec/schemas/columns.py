"""One session's log rows column by column: ``FrameRecord``s without an object per row.

A one-hour voice session is ~130 k rows, and building a frozen ``FrameRecord`` (plus its
``AudioSpan``) per row costs more than folding the row. Most rows are audio appends and
deltas whose effect on the conversation needs only a few columns, so a reader can hand
replay the columns as plain lists instead (``rtrec.store.reader.read_frame_columns``
fills them from Arrow), and the reducer builds a ``FrameRecord`` only for a row that needs
its whole payload.

``FrameColumns`` is also a read-only ``Sequence[FrameRecord]``: ``columns[i]`` is the row
as the record the row reader would give, built on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast, overload

from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import AudioSpan, Direction, FrameKind, FrameRecord, Stream

__all__ = ["FrameColumns"]

#: the ``FrameRecord`` fields that are columns as they are, in field order
RECORD_FIELDS = (
    "seq",
    "direction",
    "t_ns",
    "wall_ns",
    "kind",
    "wire_size",
    "payload",
    "payload_bin",
    "type",
    "event_id",
    "item_id",
    "response_id",
    "parse_error",
)
#: the ``AudioSpan`` fields, in field order (the ``audio_*`` columns below, renamed)
SPAN_FIELDS = ("stream", "offset", "samples", "encoding", "sample_rate", "cut_at")
#: every column, in ``FrameRecord`` field order with the audio span flattened
COLUMNS = (
    *RECORD_FIELDS,
    "audio_stream",
    "audio_offset",
    "audio_samples",
    "audio_encoding",
    "audio_rate",
    "audio_cut_at",
)


class FrameColumns(Sequence[FrameRecord]):
    """The rows of one session's log as one list per column, in ``seq`` order.

    The lists are the caller's and must not change afterwards (states and replays keep
    them). ``audio_*`` are all None on a row without audio, as in the table.

    Raises:
        ValueError: (constructor) the columns differ in length.
    """

    __slots__ = ("session_id", *COLUMNS)

    session_id: str
    seq: Sequence[int]
    direction: Sequence[Direction]
    t_ns: Sequence[int]
    wall_ns: Sequence[int]
    kind: Sequence[FrameKind]
    wire_size: Sequence[int]
    payload: Sequence[str | None]
    payload_bin: Sequence[bytes | None]
    type: Sequence[str | None]
    event_id: Sequence[str | None]
    item_id: Sequence[str | None]
    response_id: Sequence[str | None]
    parse_error: Sequence[str | None]
    audio_stream: Sequence[Stream | None]
    audio_offset: Sequence[int | None]
    audio_samples: Sequence[int | None]
    audio_encoding: Sequence[AudioEncoding | None]
    audio_rate: Sequence[int | None]
    audio_cut_at: Sequence[int | None]

    def __init__(self, session_id: str, **columns: Sequence[Any]) -> None:
        missing = [name for name in COLUMNS if name not in columns]
        extra = sorted(set(columns) - set(COLUMNS))
        if missing or extra:
            raise ValueError(f"FrameColumns columns: missing {missing}, unknown {extra}")
        lengths = {name: len(columns[name]) for name in COLUMNS}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"the columns of a FrameColumns differ in length: {lengths}")
        self.session_id = session_id
        for name in COLUMNS:
            setattr(self, name, columns[name])

    @classmethod
    def from_records(cls, records: Iterable[FrameRecord], session_id: str = "") -> FrameColumns:
        """The columns of ``records`` (rows of one session; ``session_id`` names an empty one)."""
        rows = tuple(records)
        if rows:
            session_id = rows[0].session_id
        spans = [r.audio for r in rows]
        return cls(
            session_id,
            seq=[r.seq for r in rows],
            direction=[r.direction for r in rows],
            t_ns=[r.t_ns for r in rows],
            wall_ns=[r.wall_ns for r in rows],
            kind=[r.kind for r in rows],
            wire_size=[r.wire_size for r in rows],
            payload=[r.payload for r in rows],
            payload_bin=[r.payload_bin for r in rows],
            type=[r.type for r in rows],
            event_id=[r.event_id for r in rows],
            item_id=[r.item_id for r in rows],
            response_id=[r.response_id for r in rows],
            parse_error=[r.parse_error for r in rows],
            audio_stream=[None if a is None else a.stream for a in spans],
            audio_offset=[None if a is None else a.offset for a in spans],
            audio_samples=[None if a is None else a.samples for a in spans],
            audio_encoding=[None if a is None else a.encoding for a in spans],
            audio_rate=[None if a is None else a.sample_rate for a in spans],
            audio_cut_at=[None if a is None else a.cut_at for a in spans],
        )

    def record(self, i: int) -> FrameRecord:
        """Row ``i`` (0-based, not a ``seq``) as a ``FrameRecord``."""
        stream = self.audio_stream[i]
        audio = None
        if stream is not None:
            # a row's audio columns are all set or all null (readers check it)
            audio = AudioSpan(
                stream=stream,
                offset=cast(int, self.audio_offset[i]),
                samples=cast(int, self.audio_samples[i]),
                encoding=cast(AudioEncoding, self.audio_encoding[i]),
                sample_rate=cast(int, self.audio_rate[i]),
                cut_at=self.audio_cut_at[i],
            )
        return FrameRecord(
            session_id=self.session_id,
            seq=self.seq[i],
            direction=self.direction[i],
            t_ns=self.t_ns[i],
            wall_ns=self.wall_ns[i],
            kind=self.kind[i],
            wire_size=self.wire_size[i],
            payload=self.payload[i],
            payload_bin=self.payload_bin[i],
            type=self.type[i],
            event_id=self.event_id[i],
            item_id=self.item_id[i],
            response_id=self.response_id[i],
            parse_error=self.parse_error[i],
            audio=audio,
        )

    def __len__(self) -> int:
        return len(self.seq)

    @overload
    def __getitem__(self, index: int) -> FrameRecord: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[FrameRecord, ...]: ...

    def __getitem__(self, index: int | slice) -> FrameRecord | tuple[FrameRecord, ...]:
        if isinstance(index, slice):
            return tuple(self.record(i) for i in range(*index.indices(len(self))))
        return self.record(range(len(self))[index])  # IndexError as a list gives it

    def __iter__(self) -> Iterator[FrameRecord]:
        return (self.record(i) for i in range(len(self)))

    def __repr__(self) -> str:
        return f"FrameColumns({self.session_id!r}, {len(self)} rows)"
