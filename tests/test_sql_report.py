"""`rtrec report`: a real SDK recording rendered as one HTML page, opened in headless
Chromium (Debian's ``chromium``): the page's script draws every element the data calls for,
and a screenshot is saved."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.replay.threaded import run_in_thread
from rtrec.store.reader import open_log_reader

from .browser import chromium, needs_chromium
from .test_record_sdk import run_sdk, serve_recording
from .test_sql_recorded import conversation

pytestmark = needs_chromium


def count(dom: str, css_class: str) -> int:
    """Elements whose class attribute is exactly ``css_class``."""
    return len(re.findall(rf'class="{re.escape(css_class)}"', dom))


def test_the_report_draws_the_session_in_a_browser(tmp_path: Path) -> None:
    """Waveforms, bubbles, a marker per response, latency, call and interruption, and a row
    per event are in the rendered page; the screenshot is a real image."""
    db = tmp_path / "log.duckdb"
    with run_in_thread(functools.partial(serve_recording, db), timeout=30) as server:
        run_sdk(server.url, "ga", conversation)
    with open_log_reader(db) as log:
        (sid,) = [r["session_id"] for r in log.rows("SELECT session_id FROM sessions")]
        turns = log.rows("SELECT * FROM turns")
        calls = log.rows("SELECT * FROM function_calls")
        stops = log.rows("SELECT count(*) AS n FROM interruptions")[0]["n"]
        events = log.rows("SELECT count(*) AS n FROM events")[0]["n"]
    page = tmp_path / "report.html"
    done = CliRunner().invoke(cli, ["report", sid[:8], "--db", str(db), "-o", str(page)])
    assert done.exit_code == 0, done.output
    assert "http" not in re.sub(r"http://www\.w3\.org/2000/svg", "", page.read_text())

    rendered = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = rendered.stdout
    assert 'data-ready="yes"' in dom, rendered.stderr[-2000:]
    assert count(dom, "wave user") == 1
    assert count(dom, "wave assistant") == 1
    assert count(dom, "marker response") == len(turns) == 3
    latencies = [t for t in turns if t["speech_end_to_first_audio_ms"] is not None]
    assert count(dom, "marker latency") == len(latencies) >= 2
    assert count(dom, "marker call") == len(calls) == 1
    assert count(dom, "marker interruption") == stops
    assert count(dom, "bubble user") == 2
    assert count(dom, "bubble assistant") >= 2
    assert count(dom, "event") == events
    assert "get_weather" in dom

    shot = tmp_path / "report.png"
    taken = chromium(
        tmp_path / "profile-shot", "--window-size=1280,1000", f"--screenshot={shot}", page.as_uri()
    )
    assert shot.exists(), taken.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # drawn content, not a blank page
