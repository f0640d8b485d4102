"""Every rtrec server survives what is not a WebSocket client, and listens with TLS.

A health check, ``curl http://HOST:PORT/v1/realtime``, a POST or bytes that are not HTTP
get an HTTP answer and leave the server serving the next client (issue 14: a single plain
request used to end ``rtrec playback``). ``--tls`` serves ``wss://`` with a certificate made
on first use, which the official SDK trusts through ``SSL_CERT_FILE``.

Rules: real servers on 127.0.0.1 port 0 (in the test's trio loop, or as the command in a
subprocess), raw TCP for the requests a WebSocket client never sends, a ``fail_after`` cap.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from rtrec.recorder.proxy import ProxyOptions, Recorder
from rtrec.replay.playback import PlaybackReports, load_recording, serve_playback
from rtrec.simulator import serve_simulator
from rtrec.store.sink import MemorySink
from rtrec.transport.tls import TlsError, load_tls
from rtrec.transport.ws import connect

from .playkit import SESSIONS, conversation
from .test_record_sdk import Tap, run_sdk
from .test_sim_cli import first_line

RTREC = Path(sys.executable).parent / "rtrec"
BUNDLE = SESSIONS / "weather-ga"

NOT_WEBSOCKET = [
    # (what a non-WebSocket client sends, the status it gets)
    (b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\n\r\n", 426),
    (b"POST /v1/realtime HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    (b"GET /v1/realtime HTTP/1.0\r\n\r\n", 505),
    (b"\x16\x03\x01 this is not http\r\n\r\n", 400),
]


async def http_answer(url: str, request: bytes) -> bytes:
    """Send ``request`` on a raw TCP connection to ``url``'s host; what comes back."""
    host, port = re.fullmatch(r"wss?://([\d.]+):(\d+)/v1", url).groups()  # type: ignore[union-attr]
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        answer = b""
        while b"\r\n" not in answer:
            try:
                data = await stream.receive_some(4096)
            except trio.BrokenResourceError:
                break  # reset by the server: that is an answer too
            if not data:
                break
            answer += data
    return answer


async def poke(url: str) -> None:
    """A plain-HTTP request, given one second for an answer."""
    with trio.move_on_after(1):
        await http_answer(url, NOT_WEBSOCKET[0][0])


async def http_status(url: str, request: bytes) -> int:
    """The status of the HTTP answer to ``request``."""
    return int((await http_answer(url, request)).split(b" ", 2)[1])


@asynccontextmanager
async def serving(start: Callable[..., Any]) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(start)
        yield url
        nursery.cancel_scope.cancel()


async def _playback(task_status: trio.TaskStatus[str]) -> None:
    await serve_playback(load_recording(BUNDLE), reports=PlaybackReports(), task_status=task_status)


async def _sim(task_status: trio.TaskStatus[str]) -> None:
    await serve_simulator(task_status=task_status)


async def _recorder(task_status: trio.TaskStatus[str]) -> None:
    async with trio.open_nursery() as nursery:
        sim_url = await nursery.start(functools.partial(serve_simulator))
        recorder = Recorder(MemorySink(), ProxyOptions(upstream=sim_url))
        await recorder.serve("127.0.0.1", 0, task_status=task_status)


@pytest.mark.parametrize("start", [_playback, _sim, _recorder], ids=["playback", "sim", "record"])
async def test_plain_http_is_answered_and_the_server_serves_on(
    start: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A plain GET (curl), a POST, HTTP/1.0 and bytes that are not HTTP each get an HTTP
    error, logged with the client's address (rtrec's own servers); then a WebSocket client
    still opens a session (session.created arrives)."""
    caplog.set_level(logging.WARNING, logger="rtrec")
    with trio.fail_after(20):
        async with serving(start) as url:
            for request, status in NOT_WEBSOCKET:
                assert await http_status(url, request) == status, request
            ws = await connect(
                f"{url}/realtime?model=gpt-realtime",
                headers=[("Authorization", "Bearer sk-test")],
                max_size=None,
            )
            assert '"session.created"' in str(await ws.receive())
            await ws.close()
    logged = [r.getMessage() for r in caplog.records if "not a WebSocket" in r.getMessage()]
    assert len(logged) == len(NOT_WEBSOCKET)
    assert re.search(r": not a WebSocket handshake: 426 \(.*\) from 127\.0\.0\.1:\d+$", logged[0])


def test_generated_certificate_is_private_and_reused(tmp_path: Path) -> None:
    """--tls makes a CA and a server certificate once, in a 0700 folder, as 0600 files; the
    second use loads the same files; --tls-key alone is refused with a message."""
    first = load_tls(folder=tmp_path / "tls")
    assert first.ca_file is not None
    assert stat.S_IMODE(os.stat(tmp_path / "tls").st_mode) == 0o700
    for name in ("ca.pem", "server.pem"):
        assert stat.S_IMODE(os.stat(tmp_path / "tls" / name).st_mode) == 0o600
    before = first.ca_file.read_bytes()
    again = load_tls(folder=tmp_path / "tls")
    assert again.ca_file == first.ca_file
    assert again.ca_file.read_bytes() == before
    with pytest.raises(TlsError, match="--tls-key needs --tls-cert"):
        load_tls(None, tmp_path / "key.pem")
    with pytest.raises(TlsError, match="cannot use the TLS certificate"):
        load_tls(first.ca_file)  # a certificate without its key


async def configure(sdk: Tap) -> None:
    await sdk.conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
    await sdk.until("session.updated")


@pytest.mark.parametrize("command", ["playback", "sim", "record"])
def test_tls_serves_the_official_sdk_over_wss(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rtrec playback BUNDLE --serve ... --tls` (and `rtrec sim`, `rtrec record`) print a
    wss:// URL
    and the CA file with the hints for Node and Python; the official SDK, trusting that CA
    through SSL_CERT_FILE, plays the whole conversation over TLS; a plain-HTTP request on
    the TLS port (a TLS failure) leaves the server serving."""
    args = (
        [command, str(BUNDLE), "--serve", "127.0.0.1:0", "--pace", "instant"]
        if command == "playback"
        else [command, "--listen", "127.0.0.1:0", "--pace", "fast"]
        if command == "sim"
        else [command, "--listen", "127.0.0.1:0", "--upstream", "sim", "--db", str(tmp_path / "l")]
    )
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = subprocess.Popen(
        [str(RTREC), *args, "--tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = first_line(proc)
        assert re.fullmatch(r"wss://127\.0\.0\.1:\d+/v1", url)
        # plain text on the TLS port: a failed TLS handshake, dropped at once
        trio.run(poke, url)
        ca = tmp_path / "config" / "rtrec" / "tls" / "ca.pem"
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        tap = run_sdk(url, "ga", conversation("ga") if command == "playback" else configure)
        assert tap.received[-1].startswith(
            '{"type":"response.done"' if command == "playback" else '{"type":"session.updated"'
        )
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert f"NODE_EXTRA_CA_CERTS={ca}" in err
    assert f"SSL_CERT_FILE={ca}" in err
    assert "Traceback" not in err


@pytest.fixture
def tls_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-user TLS folder, in the test's own directory."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "rtrec" / "tls"


@pytest.mark.rtrec_playback("fixtures/sessions/weather-ga", tls=True)
def test_the_pytest_fixture_serves_wss_with_its_ca_file(
    tls_home: Path, rtrec_playback: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``tls=True`` in the marker the fixture serves wss:// and names the CA file; the
    official SDK trusting it plays the conversation (the teardown checks every event)."""
    assert rtrec_playback.url.startswith("wss://127.0.0.1:")
    assert rtrec_playback.ca_file == tls_home / "ca.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(rtrec_playback.ca_file))
    tap = run_sdk(rtrec_playback.url, "ga", conversation("ga"))
    assert tap.received[-1].startswith('{"type":"response.done"')
