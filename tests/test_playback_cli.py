"""``rtrec playback``: a real subprocess serving the committed fixture bundle to the official
SDK (the URL on the first stdout line, reports on stderr, a clean stop on SIGINT), and its
option errors in-process."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed

from rtrec.cli import cli
from rtrec.cli.common import Exit

from .playkit import SESSIONS, Behaviour, conversation
from .test_record_sdk import run_sdk
from .test_server_transport import NOT_WEBSOCKET, http_status
from .test_sim_cli import first_line

RTREC = Path(sys.executable).parent / "rtrec"
BUNDLE = SESSIONS / "weather-ga"


@pytest.mark.parametrize(
    ("command", "stop"),
    [("playback", signal.SIGINT), ("playback", signal.SIGTERM), ("replay", signal.SIGINT)],
)
def test_rtrec_playback_serves_a_bundle_and_reports(command: str, stop: signal.Signals) -> None:
    """The SDK conversation runs against `rtrec playback BUNDLE --serve 127.0.0.1:0` (and the
    same `rtrec replay BUNDLE --serve ...`), after answering a plain HTTP request with 426;
    a changed client on a second connection gets a
    mismatch, which stderr reports; SIGINT or SIGTERM stops it with status 0."""
    proc = subprocess.Popen(
        [str(RTREC), command, str(BUNDLE), "--serve", "127.0.0.1:0", "--pace", "instant"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = first_line(proc)
        assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/v1", url)
        # a health check or curl is answered, and the server serves on
        assert trio.run(http_status, url, NOT_WEBSOCKET[0][0]) == 426
        tap = run_sdk(url, "ga", conversation("ga"))
        assert tap.received[-1].startswith('{"type":"response.done"')
        with pytest.raises(ConnectionClosed, match="1008"):
            run_sdk(url, "ga", conversation("ga", Behaviour(function_output="{}")))
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "5 client events matched" in err
    assert "conversation.item.create differs: payload ($.item.output" in err
    assert err.rstrip().endswith("rtrec playback: stopped")
    assert out == ""  # the URL was the only line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serve", "localhost"], "is not HOST:PORT"),
        (["--serve", "127.0.0.1:0", "--pace", "slow"], "'recorded', 'instant' or a speed"),
        (["--serve", "127.0.0.1:0", "--match", "type,body"], "unknown matcher 'body'"),
        (["--serve", "127.0.0.1:0", "--audio", "loud"], "'loud' is not one of"),
        (["--serve", "127.0.0.1:0", "--tolerance", "audio_end_ms"], "give PATH=MS"),
    ],
)
def test_rtrec_playback_rejects_bad_options(args: list[str], message: str) -> None:
    """Bad options exit with click's usage status and say what is wrong."""
    result = CliRunner().invoke(cli, ["playback", str(BUNDLE), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_rtrec_playback_refuses_an_unusable_certificate() -> None:
    """A key without a certificate, or a file that is not a certificate, is a one-line
    error naming the problem."""
    result = CliRunner().invoke(
        cli, ["playback", str(BUNDLE), "--serve", "127.0.0.1:0", "--tls-key", __file__]
    )
    assert result.exit_code == Exit.TROUBLE
    assert "--tls-key needs --tls-cert" in result.output
    result = CliRunner().invoke(
        cli, ["playback", str(BUNDLE), "--serve", "127.0.0.1:0", "--tls-cert", __file__]
    )
    assert result.exit_code == Exit.TROUBLE
    assert f"Error: cannot use the TLS certificate {__file__}" in result.output
    assert "Traceback" not in result.output


def test_rtrec_playback_reports_a_missing_session_and_a_busy_port(tmp_path: Path) -> None:
    """A session missing from the log, or a port in use, is a message, not a traceback."""
    result = CliRunner().invoke(
        cli, ["playback", "0123", "--db", str(tmp_path / "none.duckdb"), "--serve", "127.0.0.1:0"]
    )
    assert result.exit_code == 2
    assert "Error: no rtrec log at" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["playback", str(BUNDLE), "--serve", f"127.0.0.1:{port}"])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
