"""Real peers for the lake tests: a throw-away PostgreSQL cluster and an S3-compatible server.

``running_postgres`` makes a cluster with Debian's PostgreSQL binaries (``initdb`` +
``pg_ctl``) in a temporary folder, listening on 127.0.0.1 only, and removes it afterwards.
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
(``runuser``), as anyone else to that user. ``running_s3`` is moto's S3 server in a thread on
127.0.0.1 (offline; it keeps the buckets in memory). Both are what ``.ci/run`` relies on:
nothing here is a mock of the catalog or of S3; the lake code talks to them over sockets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import attrs

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def pg_bin() -> Path | None:
    """Debian's newest PostgreSQL binaries folder, if PostgreSQL is installed."""
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@attrs.frozen
class Postgres:
    """A running cluster: its URL has no password (trust on 127.0.0.1 only)."""

    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (stopped and deleted on exit)."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = os.geteuid() == 0
    owner = "postgres" if root else pwd.getpwuid(os.geteuid()).pw_name
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if root else []
    work = Path(tempfile.mkdtemp(prefix="rtrec-pg-"))
    data = work / "data"
    if root:
        shutil.chown(work, user="postgres")
    try:
        subprocess.run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                owner,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        for _attempt in range(5):
            port = _free_port()
            started = subprocess.run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-t",
                    "30",
                    "-l",
                    str(work / "server.log"),
                    "-o",
                    f"-h 127.0.0.1 -p {port} -k {work} -c fsync=off -c max_connections=100",
                    "start",
                ],
                capture_output=True,
            )
            if started.returncode == 0:
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start: {(work / 'server.log').read_text()}")
        try:
            yield Postgres(host="127.0.0.1", port=port, user=owner)
        finally:
            subprocess.run(
                [
                    *prefix,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def create_database(pg: Postgres, name: str) -> str:
    """A new empty database on ``pg``; returns its URL."""
    import psycopg

    with psycopg.connect(pg.url("postgres"), autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return pg.url(name)


@attrs.frozen
class S3:
    """A running S3-compatible server: its endpoint and the (dummy) keys it accepts."""

    endpoint: str

    #: What a process needs in its environment to reach it (moto accepts any keys).
    env: ClassVar[dict[str, str]] = {
        "AWS_ACCESS_KEY_ID": "rtrec-test-key",
        "AWS_SECRET_ACCESS_KEY": "rtrec-test-secret",
        "AWS_REGION": "us-east-1",
    }

    def create_bucket(self, name: str) -> None:
        from pyarrow import fs

        scheme, _, address = self.endpoint.partition("://")
        s3 = fs.S3FileSystem(
            endpoint_override=address,
            scheme=scheme,
            access_key=self.env["AWS_ACCESS_KEY_ID"],
            secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region=self.env["AWS_REGION"],
            allow_bucket_creation=True,
        )
        s3.create_dir(name)


@contextlib.contextmanager
def running_s3() -> Iterator[S3]:
    """moto's S3 server on 127.0.0.1 in a thread (stopped on exit)."""
    from moto.server import ThreadedMotoServer

    # one line per request otherwise, in every failing test's captured log
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()
