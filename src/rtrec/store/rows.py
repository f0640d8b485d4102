"""Storage records <-> Arrow tables and JSON objects: the only code that knows the row layout.

The writer appends ``events`` rows as Arrow tables (``frames_to_arrow``): DuckDB ingests an
Arrow batch at ~100 k rows/s here, where ``executemany`` manages 1-2 k (bench/bench_log_writer.py).
Readers get Arrow back from DuckDB or from a recorder's control socket and turn it into
records (``frames_from_arrow``), or, to rebuild a session, into ``FrameColumns``
(``frame_columns_from_arrow``): one Python list per column, converted a column at a time,
with no object per row. Bundles use the JSON form (``frame_to_json``).

Wall-clock times are stored as DuckDB ``TIMESTAMPTZ``, whose resolution is a microsecond, so
``wall_ns`` comes back truncated to whole microseconds; ``t_ns`` (monotonic) is exact.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rtrec.schemas.columns import RECORD_FIELDS, SPAN_FIELDS, FrameColumns
from rtrec.schemas.enums import AudioEncoding
from rtrec.schemas.storage import AudioSpan, Direction, FrameKind, FrameRecord, Stream

__all__ = [
    "COLUMNS_SELECT",
    "EVENT_SCHEMA",
    "FRAME_COLUMNS",
    "BadRows",
    "frame_columns_from_arrow",
    "frame_from_json",
    "frame_to_json",
    "frames_from_arrow",
    "frames_to_arrow",
    "from_timestamp_us",
    "in_seq_order",
    "timestamp",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

EVENT_SCHEMA: Final = pa.schema(
    [
        ("session_id", pa.string()),
        ("seq", pa.int64()),
        ("direction", pa.string()),
        ("t_ns", pa.int64()),
        ("wall_time", pa.timestamp("us", tz="UTC")),
        ("kind", pa.string()),
        ("wire_size", pa.int64()),
        ("payload", pa.string()),
        ("payload_bin", pa.binary()),
        ("type", pa.string()),
        ("event_id", pa.string()),
        ("item_id", pa.string()),
        ("response_id", pa.string()),
        ("parse_error", pa.string()),
        ("audio_stream", pa.string()),
        ("audio_offset", pa.int64()),
        ("audio_samples", pa.int64()),
        ("audio_encoding", pa.string()),
        ("audio_rate", pa.int32()),
        ("audio_cut_at", pa.int32()),
    ]
)

#: the SELECT list that ``frames_from_arrow`` reads (wall time as integer microseconds)
FRAME_COLUMNS: Final = (
    "session_id, seq, direction, t_ns, epoch_us(wall_time) AS wall_us, kind, wire_size, "
    "payload, payload_bin, type, event_id, item_id, response_id, parse_error, audio_stream, "
    "audio_offset, audio_samples, audio_encoding, audio_rate, audio_cut_at"
)

#: the SELECT list that ``frame_columns_from_arrow`` reads: ``FRAME_COLUMNS`` but the
#: session id, which the query names anyway
COLUMNS_SELECT: Final = FRAME_COLUMNS.removeprefix("session_id, ")

_AUDIO_COLUMNS: Final = ("audio_offset", "audio_samples", "audio_encoding", "audio_rate")
_INT64_MAX: Final = 2**63 - 1


class BadRows(ValueError):
    """Rows that no ``FrameRecord`` can hold (an unknown direction, half an audio span)."""


def timestamp(ns: int) -> datetime:
    """A UTC datetime for DuckDB from Unix nanoseconds (exact to the microsecond)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def from_timestamp_us(us: int | None) -> int | None:
    """Unix nanoseconds from DuckDB's ``epoch_us(...)``."""
    return None if us is None else int(us) * 1000


_FRAME_FIELDS: Final = attrgetter("session_id", *RECORD_FIELDS)
_SPAN_FIELDS: Final = attrgetter(*SPAN_FIELDS)
_NO_SPAN: Final = (None,) * len(SPAN_FIELDS)


def frames_to_arrow(records: Sequence[FrameRecord]) -> pa.Table:
    """An Arrow table of ``events`` rows, in ``EVENT_SCHEMA``.

    Columns are built by C-level loops (``attrgetter`` + ``zip``), not a Python loop per
    record: the log writer calls this for every batch, holding the GIL the relay needs.
    The enums are ``StrEnum`` s, which Arrow takes as the strings they are.
    """
    if not records:
        return EVENT_SCHEMA.empty_table()
    main = list(zip(*map(_FRAME_FIELDS, records), strict=True))
    spans = [r.audio for r in records]
    audio: list[tuple[Any, ...]] = (
        list(zip(*(_NO_SPAN if a is None else _SPAN_FIELDS(a) for a in spans), strict=True))
        if any(a is not None for a in spans)
        else [(None,) * len(records)] * len(SPAN_FIELDS)
    )
    wall_us = [ns // 1000 for ns in main[4]]
    columns = [*main[:4], wall_us, *main[5:], *audio]
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, EVENT_SCHEMA, strict=True)],
        schema=EVENT_SCHEMA,
    )


def in_seq_order(table: pa.Table) -> pa.Table:
    """``table`` (one session's rows) sorted by ``seq``, if it is not already.

    Why not ``ORDER BY seq``: DuckDB keeps insertion order, which is ``seq`` order for
    everything the writer and import write, and a sort costs a fifth of the query; worse,
    it holds every payload of the session in DuckDB's memory at once, where a plain scan
    holds one vector's: a session of 16 MiB frames failed to sort under the recorder's
    memory limit (docs/recorder.md, "Memory").
    """
    seq = table.column("seq").to_numpy()
    if len(seq) > 1 and not bool((seq[1:] > seq[:-1]).all()):
        table = table.take(np.argsort(seq, kind="stable"))
    return table


def frames_from_arrow(batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[FrameRecord]:
    """FrameRecords from Arrow data selected with ``FRAME_COLUMNS``."""
    for batch in batches:
        for row in batch.to_pylist():
            yield _frame_from_row(row)


def _frame_from_row(row: dict[str, Any]) -> FrameRecord:
    audio = None
    if row["audio_stream"] is not None:
        audio = AudioSpan(
            stream=Stream(row["audio_stream"]),
            offset=row["audio_offset"],
            samples=row["audio_samples"],
            encoding=AudioEncoding(row["audio_encoding"]),
            sample_rate=row["audio_rate"],
            cut_at=row["audio_cut_at"],
        )
    return FrameRecord(
        session_id=row["session_id"],
        seq=row["seq"],
        direction=Direction(row["direction"]),
        t_ns=row["t_ns"],
        wall_ns=row["wall_us"] * 1000,
        kind=FrameKind(row["kind"]),
        wire_size=row["wire_size"],
        payload=row["payload"],
        payload_bin=row["payload_bin"],
        type=row["type"],
        event_id=row["event_id"],
        item_id=row["item_id"],
        response_id=row["response_id"],
        parse_error=row["parse_error"],
        audio=audio,
    )


def frame_to_json(record: FrameRecord) -> dict[str, Any]:
    """One ``events.jsonl`` line of a bundle: every FrameRecord field but the session id.

    Fields that are null are left out; binary payloads are base64 (``payload_bin``); the
    audio span is a nested object.
    """
    a = record.audio
    line = {
        "seq": record.seq,
        "direction": record.direction.value,
        "t_ns": record.t_ns,
        "wall_ns": record.wall_ns,
        "kind": record.kind.value,
        "wire_size": record.wire_size,
        "type": record.type,
        "event_id": record.event_id,
        "item_id": record.item_id,
        "response_id": record.response_id,
        "parse_error": record.parse_error,
        "audio": None
        if a is None
        else {
            "stream": a.stream.value,
            "offset": a.offset,
            "samples": a.samples,
            "encoding": a.encoding.value,
            "sample_rate": a.sample_rate,
            "cut_at": a.cut_at,
        },
        "payload": record.payload,
        "payload_bin": None
        if record.payload_bin is None
        else base64.b64encode(record.payload_bin).decode("ascii"),
    }
    return {key: value for key, value in line.items() if value is not None}


def frame_from_json(session_id: str, obj: dict[str, Any]) -> FrameRecord:
    """The inverse of ``frame_to_json``.

    Raises:
        KeyError, ValueError, TypeError: the object is not an events.jsonl line.
    """
    a = obj.get("audio")
    audio = None
    if a is not None:
        audio = AudioSpan(
            stream=Stream(a["stream"]),
            offset=int(a["offset"]),
            samples=int(a["samples"]),
            encoding=AudioEncoding(a["encoding"]),
            sample_rate=int(a["sample_rate"]),
            cut_at=None if a.get("cut_at") is None else int(a["cut_at"]),
        )
    binary = obj.get("payload_bin")
    return FrameRecord(
        session_id=session_id,
        seq=int(obj["seq"]),
        direction=Direction(obj["direction"]),
        t_ns=int(obj["t_ns"]),
        wall_ns=int(obj["wall_ns"]),
        kind=FrameKind(obj["kind"]),
        wire_size=int(obj["wire_size"]),
        payload=obj.get("payload"),
        payload_bin=None if binary is None else base64.b64decode(binary, validate=True),
        type=obj.get("type"),
        event_id=obj.get("event_id"),
        item_id=obj.get("item_id"),
        response_id=obj.get("response_id"),
        parse_error=obj.get("parse_error"),
        audio=audio,
    )


def frame_columns_from_arrow(session_id: str, table: pa.Table) -> FrameColumns:
    """One session's rows, selected with ``COLUMNS_SELECT`` in ``seq`` order, as columns.

    Each column becomes a list in one pass over the column (numpy for integers; every
    distinct value of a repetitive column, such as ``type`` or ``direction``, made a Python
    object once), which is several times cheaper than a ``FrameRecord`` per row.
    ``FrameColumns.record(i)`` gives what ``frames_from_arrow`` gives for row ``i``.

    Raises:
        BadRows: a row has a direction, kind, stream or encoding rtrec does not know, or
            some of its audio columns set and others null; the first such seq is named.
    """
    seq = _ints(table, "seq")
    for column in ("audio_stream", *_AUDIO_COLUMNS):
        if not table.column(column).is_null().equals(table.column("audio_stream").is_null()):
            mismatch = pc.not_equal(
                table.column(column).is_null(), table.column("audio_stream").is_null()
            )
            at = pc.index(mismatch, True).as_py()
            raise BadRows(f"row seq {seq[at]}: audio_stream and {column} are not both set")
    return FrameColumns(
        session_id,
        seq=seq,
        direction=_decoded(table, "direction", Direction, seq),
        t_ns=_ints(table, "t_ns"),
        wall_ns=_ints(table, "wall_us", scale=1000),
        kind=_decoded(table, "kind", FrameKind, seq),
        wire_size=_ints(table, "wire_size"),
        payload=table.column("payload").to_pylist(),
        payload_bin=table.column("payload_bin").to_pylist(),
        type=_decoded(table, "type", str, seq),
        event_id=table.column("event_id").to_pylist(),
        item_id=_decoded(table, "item_id", str, seq),
        response_id=_decoded(table, "response_id", str, seq),
        parse_error=table.column("parse_error").to_pylist(),
        audio_stream=_decoded(table, "audio_stream", Stream, seq),
        audio_offset=table.column("audio_offset").to_pylist(),
        audio_samples=table.column("audio_samples").to_pylist(),
        audio_encoding=_decoded(table, "audio_encoding", AudioEncoding, seq),
        audio_rate=table.column("audio_rate").to_pylist(),
        audio_cut_at=table.column("audio_cut_at").to_pylist(),
    )


def _ints(table: pa.Table, name: str, scale: int = 1) -> list[int]:
    """A column of integers without nulls (NOT NULL in the table) as Python ints."""
    column = table.column(name)
    if column.null_count:
        raise BadRows(f"{column.null_count} rows without {name}")
    values = column.to_numpy()
    if scale == 1:
        return values.tolist()  # type: ignore[no-any-return]
    if len(values) and max(-int(values.min()), int(values.max())) > _INT64_MAX // scale:
        return [v * scale for v in values.tolist()]  # past 2262 in ns: Python ints
    return (values * scale).tolist()  # type: ignore[no-any-return]


def _decoded(
    table: pa.Table, name: str, convert: Callable[[str], Any], seq: Sequence[int]
) -> list[Any]:
    """A repetitive string column as Python values, each distinct value converted once
    (so rows share one object per value); nulls stay None.

    Raises:
        BadRows: ``convert`` rejects a value (an enum that does not have it).
    """
    array = table.column(name).combine_chunks()
    encoded = pc.dictionary_encode(array)
    values = encoded.dictionary.to_pylist()
    lookup = np.empty(len(values) + 1, dtype=object)  # the last slot: null
    for i, value in enumerate(values):
        try:
            lookup[i] = convert(value)
        except ValueError:
            at = pc.index(array, value).as_py()
            raise BadRows(f"row seq {seq[at]}: {name} {value!r} is not one rtrec knows") from None
    indices = encoded.indices.fill_null(len(values)).to_numpy()
    return lookup[indices].tolist()  # type: ignore[no-any-return]
