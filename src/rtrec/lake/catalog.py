"""The lake itself: Apache Iceberg tables in a SQL catalog on PostgreSQL (pyiceberg).

Each of ``LAKE_TABLES`` is one Iceberg table in the namespace ``rtrec``, its files under
``<data>/rtrec/<table>/``; the FLACs sit beside them under ``<data>/audio/<session id>/``
and ``audio_streams.path`` in the lake is their full location (the catalog holds
references, never audio). The catalog is pyiceberg's ``SqlCatalog``: two tables in the
PostgreSQL database, one row per Iceberg table pointing at its current metadata file; a
commit swaps that pointer with a compare-and-set, so a racing commit fails cleanly
(``CommitFailedException``) and is retried by the publisher (docs/fleet.md says why the
lake is Iceberg and measures those races).

pyiceberg, SQLAlchemy and psycopg are the ``rtrec[lake]`` extra: they are imported here,
inside functions, so that importing ``rtrec.lake`` costs nothing and a missing extra is
one clear line.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from rtrec.lake.config import LakeConfig
from rtrec.schemas.errors import RtrecError

if TYPE_CHECKING:
    import pyarrow.fs
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import BooleanExpression
    from pyiceberg.io import FileIO
    from pyiceberg.table import Table

__all__ = [
    "NAMESPACE",
    "Lake",
    "LakeError",
    "connect_lake",
    "open_lake",
    "sessions_filter",
]

NAMESPACE: Final = "rtrec"

#: Table properties: appends merge small manifests (so planning a scan reads few files as
#: commits accumulate), and pyiceberg does not retry a failed commit by itself: the
#: publisher retries, counts the conflicts, and first checks whether its batch is there.
TABLE_PROPERTIES: Final = {
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "20",
    "commit.retry.num-retries": "0",
    "write.parquet.compression-codec": "zstd",
}


class LakeError(RtrecError):
    """The lake cannot be reached or used (catalog, storage, or the extra is missing)."""


def _require_extra() -> None:
    missing = [
        m for m in ("pyiceberg", "sqlalchemy", "psycopg") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise LakeError(f"the lake needs {', '.join(missing)}: pip install 'rtrec[lake]'")


class Lake:
    """An open lake: its catalog, its tables and its file I/O. Get one from ``open_lake``."""

    def __init__(self, config: LakeConfig, catalog: SqlCatalog) -> None:
        self.config = config
        self.catalog = catalog
        self.io: FileIO = catalog._load_file_io(location=config.data)

    def table(self, name: str) -> Table | None:
        """The Iceberg table ``name``, or None before anything was published to it."""
        from pyiceberg.exceptions import NoSuchTableError

        try:
            return self.catalog.load_table((NAMESPACE, name))
        except NoSuchTableError:
            return None

    def create_table(self, name: str, schema: Any) -> Table:
        """The table ``name``, created with ``schema`` (an Arrow schema) when missing."""
        from pyiceberg.exceptions import TableAlreadyExistsError

        try:
            return self.catalog.create_table(
                (NAMESPACE, name),
                schema=schema,
                location=self.config.location(NAMESPACE, name),
                properties=TABLE_PROPERTIES,
            )
        except TableAlreadyExistsError:  # another recorder created it meanwhile
            return self.catalog.load_table((NAMESPACE, name))

    def audio_location(self, session_id: str, name: str) -> str:
        """Where a session's FLAC goes in the lake: under the name it has in the log
        (``input.flac``, ``input-8000.flac``: src/rtrec/store/audio.py), so a session checked out
        of the lake exports the same bundle as from its own log."""
        return self.config.location("audio", session_id, name)

    def filesystem(self, location: str) -> tuple[pyarrow.fs.FileSystem, str]:
        """A pyarrow file system for ``location`` and the path within it.

        The same file system pyiceberg writes with (endpoint, region, keys from the
        environment), so queries read what publishing wrote.
        """
        from pyiceberg.io.pyarrow import PyArrowFileIO

        io = self.io if isinstance(self.io, PyArrowFileIO) else PyArrowFileIO(self.io.properties)
        scheme, netloc, path = io.parse_location(location)
        return io.fs_by_scheme(scheme, netloc), path

    def close(self) -> None:
        self.catalog.engine.dispose()


def sessions_filter(session_ids: Sequence[str]) -> BooleanExpression:
    """An Iceberg row filter: ``session_id IN (session_ids)``."""
    from pyiceberg.expressions import In

    # In's own __init__ takes (term, literals); mypy sees only its pydantic fields
    return In("session_id", tuple(session_ids))  # type: ignore[call-arg, arg-type]


def _properties(config: LakeConfig) -> dict[str, str]:
    """pyiceberg's catalog properties: no key or password ever goes in here (see config)."""
    url = config.catalog.replace("postgresql://", "postgresql+psycopg://", 1).replace(
        "postgres://", "postgresql+psycopg://", 1
    )
    props = {"uri": url, "warehouse": config.data, "init_catalog_tables": "true"}
    if config.on_s3:
        props["s3.region"] = config.s3_region
        if config.s3_endpoint:
            props["s3.endpoint"] = config.s3_endpoint
    return props


def connect_lake(config: LakeConfig) -> Lake:
    """Connect to a lake's catalog (creating its catalog tables and namespace if new);
    ``Lake.close`` disconnects. Blocking.

    Raises:
        LakeError: the extra is missing, or the catalog cannot be reached (one line).
    """
    _require_extra()
    import sqlalchemy.exc
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    if not config.on_s3:
        os.makedirs(config.data, mode=0o700, exist_ok=True)  # conversations: owner only
    try:
        try:
            catalog = SqlCatalog(NAMESPACE, **_properties(config))
        except sqlalchemy.exc.IntegrityError:
            # two processes created the catalog's own tables at once: they exist now
            catalog = SqlCatalog(NAMESPACE, **_properties(config))
        with contextlib.suppress(NamespaceAlreadyExistsError, sqlalchemy.exc.IntegrityError):
            catalog.create_namespace_if_not_exists(NAMESPACE)
    except sqlalchemy.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise LakeError(f"cannot reach the lake's catalog {config.catalog}: {reason}") from None
    return Lake(config, catalog)


@contextlib.contextmanager
def open_lake(config: LakeConfig) -> Iterator[Lake]:
    """``connect_lake`` for the duration of a block.

    Raises:
        LakeError: see ``connect_lake``.
    """
    lake = connect_lake(config)
    try:
        yield lake
    finally:
        lake.close()
