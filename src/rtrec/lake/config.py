"""Which lake: the ``--lake FILE`` TOML file (or the file ``RTREC_LAKE`` names).

The file is small and holds no secret::

    catalog = "postgresql://rtrec@db.internal:5432/lake"
    data = "s3://recordings/lake"          # or "/srv/lake", a folder every recorder mounts
    s3_endpoint = "http://127.0.0.1:9000"  # optional: an S3-compatible server
    s3_region = "us-east-1"                # optional; else AWS_REGION, else us-east-1

The PostgreSQL password comes from ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads them), the
S3 keys from the AWS variables (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) or the
AWS credentials file. A password in ``catalog`` is refused, so a secret never sits in a
config file that is copied to every host, and never reaches the lake or the logs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import attrs

from rtrec.schemas.errors import RtrecError

__all__ = ["LAKE_ENV", "LakeConfig", "LakeConfigError", "load_lake_config"]

#: The environment variable that names the lake file when ``--lake`` is not given.
LAKE_ENV: Final = "RTREC_LAKE"

_KEYS: Final = {"catalog", "data", "s3_endpoint", "s3_region"}


class LakeConfigError(RtrecError, ValueError):
    """The lake file is missing, not TOML, or says something rtrec cannot use."""


@attrs.frozen
class LakeConfig:
    """Where the catalog and the files of one lake are.

    Attributes:
        catalog: the PostgreSQL URL of the Iceberg catalog, without a password.
        data: the root of the lake's files: an absolute folder or ``s3://bucket/prefix``.
        s3_endpoint: the URL of an S3-compatible server, or None for AWS itself.
        s3_region: the bucket's region.
    """

    catalog: str
    data: str
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"

    @property
    def on_s3(self) -> bool:
        return self.data.startswith("s3://")

    def location(self, *parts: str) -> str:
        """A location under ``data`` (a path or an ``s3://`` URI)."""
        return "/".join([self.data.rstrip("/"), *parts])

    def describe(self) -> str:
        """A one-line description for messages (the catalog URL has no secret in it)."""
        return f"catalog {self.catalog}, data {self.data}"


def load_lake_config(path: Path | str | None) -> LakeConfig:
    """Read the lake file ``path``, or the one ``RTREC_LAKE`` names when ``path`` is None.

    Raises:
        LakeConfigError: no file given, unreadable, not TOML, or a bad value (one line
            naming the key and what to do).
    """
    if path is None:
        named = os.environ.get(LAKE_ENV)
        if not named:
            raise LakeConfigError(f"no lake: pass --lake FILE or set {LAKE_ENV}")
        path = named
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LakeConfigError(f"cannot read the lake file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LakeConfigError(f"{path} is not TOML: {exc}") from None
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise LakeConfigError(
            f"{path}: unknown key {unknown[0]!r} (a lake file has {', '.join(sorted(_KEYS))})"
        )
    for key in ("catalog", "data"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise LakeConfigError(f"{path}: {key!r} is missing (a string)")
    for key in ("s3_endpoint", "s3_region"):
        if key in raw and not isinstance(raw[key], str):
            raise LakeConfigError(f"{path}: {key!r} must be a string")
    catalog = _catalog_url(path, raw["catalog"])
    data = _data_root(path, raw["data"])
    region = raw.get("s3_region") or os.environ.get("AWS_REGION") or "us-east-1"
    return LakeConfig(
        catalog=catalog, data=data, s3_endpoint=raw.get("s3_endpoint"), s3_region=region
    )


def _catalog_url(path: Path, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise LakeConfigError(
            f"{path}: catalog must be a postgresql://user@host:port/db URL, not {parts.scheme!r}"
        )
    if parts.password is not None:
        raise LakeConfigError(
            f"{path}: the catalog URL holds a password; remove it and use PGPASSWORD or "
            "~/.pgpass instead (a lake file must hold no secret)"
        )
    if not parts.path.strip("/"):
        raise LakeConfigError(f"{path}: the catalog URL names no database (…/DBNAME)")
    return url


def _data_root(path: Path, data: str) -> str:
    if data.startswith("s3://"):
        parts = urlsplit(data)
        if parts.username or parts.password:
            raise LakeConfigError(f"{path}: data must not hold credentials; use AWS variables")
        if not parts.netloc:
            raise LakeConfigError(f"{path}: data {data!r} names no bucket (s3://BUCKET/prefix)")
        return data.rstrip("/")
    if "://" in data:
        raise LakeConfigError(f"{path}: data must be a folder or s3://bucket/prefix, not {data!r}")
    folder = Path(data)
    if not folder.is_absolute():
        folder = path.resolve().parent / folder  # relative to the lake file, like the log's audio
    return str(folder)
