"""`rtrec report` on the demo at both paces, opened in headless Chromium: every bubble sits
on its own audio in the mix, markers sit where the log puts them, the legend and the item
ids are there, and the embedded audio decodes in the browser.

At ``--pace fast`` the simulator sends every reply at once, so the wire time of the whole
session is ~0.2 s while its audio lasts ~15 s: the report must use the session's timeline
(``rtrec.store.session_audio.session_timeline``), not the wire time.
"""

from __future__ import annotations

import functools
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.cli.demo import run_demo
from rtrec.store.reader import open_log_reader
from rtrec.store.session_audio import MIX_RATE, AudioChoice, extract_audio

from .browser import chromium, needs_chromium

pytestmark = needs_chromium


class Tags(HTMLParser):
    """Every start tag of a page, in order, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def parse(dom: str) -> list[tuple[str, dict[str, str]]]:
    """The start tags of ``dom``."""
    tags = Tags()
    tags.feed(dom)
    return tags.tags


def first_after(tags: list[tuple[str, dict[str, str]]], n: int, name: str) -> dict[str, str]:
    """The attributes of the first ``name`` tag after tag ``n`` (a group's first shape)."""
    return next(attrs for tag, attrs in tags[n + 1 :] if tag == name)


@pytest.fixture(scope="module", params=["fast", "realtime"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The demo recorded at one pace: (log, session id, pace)."""
    db = tmp_path_factory.mktemp(f"demo-{request.param}") / "demo.duckdb"
    session_id = trio.run(run_demo, db, request.param)
    return db, session_id, request.param


def at_offset(channel: np.ndarray, start: int, samples: np.ndarray) -> bool:
    """Whether ``samples`` are in ``channel`` at ``start`` (within rounding: 2 samples)."""
    return any(
        np.array_equal(channel[s : s + len(samples)], samples)
        for s in range(max(0, start - 2), start + 3)
    )


def test_the_report_draws_the_demo_on_its_timeline(demo: Any, tmp_path: Path) -> None:
    """Bubbles on their audio, response and latency markers where the log puts them, a
    legend, item ids and playable audio, at the fast and the realtime pace."""
    db, sid, pace = demo
    page = tmp_path / "report.html"
    done = CliRunner().invoke(cli, ["report", sid, "--db", str(db), "-o", str(page)])
    assert done.exit_code == 0, done.output
    rendered = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = rendered.stdout
    assert 'data-ready="yes"' in dom, rendered.stderr[-2000:]
    tags = parse(dom)

    svg = next(attrs for tag, attrs in tags if tag == "svg" and attrs.get("id") == "timeline")
    span, left, right = (float(svg[k]) for k in ("data-span", "data-left", "data-right"))

    def x(t_ms: float) -> float:
        return left + (right - left) * t_ms / span

    mix, rate = extract_audio(db, sid, AudioChoice.MIX)
    assert rate == MIX_RATE
    # the timeline spans the audio, not the wire time (0.2 s at the fast pace)
    assert span == pytest.approx(len(mix) * 1000 / MIX_RATE, abs=50)
    assert span > 12_000

    with open_log_reader(db) as log:
        events = log.rows(
            "SELECT seq, t_ns, type, item_id, response_id, "
            "json_extract(payload, '$.audio_start_ms')::INT AS start_ms, "
            "json_extract(payload, '$.audio_end_ms')::INT AS end_ms "
            "FROM events WHERE session_id = ? ORDER BY seq",
            [sid],
        )

    vad = {e["item_id"]: e for e in events if e["type"] == "input_audio_buffer.speech_started"}

    # every bubble is drawn at its time, and sits on its own audio in the mix
    bubbles = {}
    for n, (tag, attrs) in enumerate(tags):
        if tag == "g" and attrs.get("class", "").startswith("bubble "):
            t_ms = float(attrs["data-t-ms"])
            assert float(first_after(tags, n, "rect")["x"]) == pytest.approx(x(t_ms), abs=0.01)
            bubbles[attrs["data-item"]] = (attrs["class"].split()[1], t_ms)
    items = {e["item_id"] for e in events if e["type"] == "conversation.item.added"}
    assert set(bubbles) == items
    heard = 0
    for item, (role, t_ms) in bubbles.items():
        if role not in ("user", "assistant"):
            continue
        try:
            samples, _ = extract_audio(db, sid, AudioChoice.MIX, item)
        except Exception:  # the text turn has no audio
            assert role == "user"
            continue
        # Each chunk is whole on the timeline, but one that came late starts after a gap,
        # so the bubble must sit on its item's audio up to where a gap can be. The
        # simulator sends 100 ms deltas: an answer's first delta. The demo's client sends
        # its speech in one burst of 100 ms appends, which the timeline places end to
        # end: a user's speech from where VAD heard it start until it is audible.
        audible = int(np.argmax(np.abs(samples) > 100))
        assert audible > 0 or np.abs(samples[0]) > 100  # speech, not only silence
        first = 2400 if role == "assistant" else audible + 2400
        channel = mix[:, 0 if role == "user" else 1]
        start = round(t_ms * MIX_RATE / 1000)
        assert at_offset(channel, start, samples[:first]), (item, t_ms)
        heard += 1
    assert heard == 6  # two spoken questions, four spoken answers

    # a user's speech ends, on the timeline, as long after it starts as VAD measured, or
    # later: an append that reached the proxy after the audio before it had played (a
    # stalled client, a loaded machine) starts after a gap, and the timeline keeps the gap
    stops = {e["item_id"]: e for e in events if e["type"] == "input_audio_buffer.speech_stopped"}
    latencies = [
        (float(attrs["data-t-ms"]), float(attrs["data-end-ms"]))
        for tag, attrs in tags
        if tag == "g" and attrs.get("class") == "marker latency"
    ]
    assert len(latencies) == len(vad) == 2
    for (end_ms, first_audio_ms), item in zip(latencies, vad, strict=True):
        said = stops[item]["end_ms"] - vad[item]["start_ms"]
        assert end_ms >= bubbles[item][1] + said - 1
        assert first_audio_ms > end_ms  # the answer is heard after the question ends

    # response markers: never before the wire saw response.created; the first one, before
    # any audio was sent, exactly there; each answer is heard after its response began
    created = [e for e in events if e["type"] == "response.created"]
    markers = [
        (attrs["data-response"], float(attrs["data-t-ms"]))
        for tag, attrs in tags
        if tag == "g" and attrs.get("class") == "marker response"
    ]
    assert [r for r, _ in markers] == [e["response_id"] for e in created]
    for (_, t_ms), event in zip(markers, created, strict=True):
        assert t_ms >= event["t_ns"] / 1e6 - 1e-6
    assert markers[0][1] == pytest.approx(created[0]["t_ns"] / 1e6, abs=1e-3)
    answers = {
        e["response_id"]: e["item_id"]
        for e in events
        if e["type"] == "response.output_item.added" and bubbles[e["item_id"]][0] == "assistant"
    }
    for response, t_ms in markers:
        if response in answers:
            assert bubbles[answers[response]][1] >= t_ms

    # a legend, the item ids in the items table, and audio the browser decodes
    legend = dom[dom.index('id="legend"') :]
    for entry in ("user audio", "assistant audio", "response created", "interruption"):
        assert entry in legend
    listed = [attrs["data-item"] for tag, attrs in tags if tag == "tr" and "data-item" in attrs]
    assert sorted(listed) == sorted(items)
    for item in items:
        assert f">{item}</td>" in dom
    players = {attrs["id"]: attrs for tag, attrs in tags if tag == "audio"}
    assert set(players) == {"audio-mix", "audio-input", "audio-output"}
    for attrs in players.values():
        assert "data-error" not in attrs
    assert float(players["audio-mix"]["data-duration"]) == pytest.approx(
        len(mix) / MIX_RATE, abs=0.05
    )
    output, _ = extract_audio(db, sid, AudioChoice.OUTPUT)
    assert float(players["audio-output"]["data-duration"]) == pytest.approx(
        len(output) / MIX_RATE, abs=0.05
    )

    shot = tmp_path / f"report-{pace}.png"
    taken = chromium(
        tmp_path / "profile-shot", "--window-size=1280,1100", f"--screenshot={shot}", page.as_uri()
    )
    assert shot.exists(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_audio_beside_the_page_and_none(tmp_path: Path) -> None:
    """--audio beside writes the FLACs next to the page and links them relatively; none
    leaves the players out; both pages stay free of data: URIs."""
    db = tmp_path / "demo.duckdb"
    sid = trio.run(functools.partial(run_demo, db, "fast"))
    page = tmp_path / "out" / "r.html"
    done = CliRunner().invoke(
        cli, ["report", sid[:13], "--db", str(db), "-o", str(page), "--audio", "beside"]
    )
    assert done.exit_code == 0, done.output
    text = page.read_text()
    assert "data:audio" not in text
    assert sorted(p.name for p in (tmp_path / "out" / "r.audio").iterdir()) == [
        "input.flac",
        "mix.flac",
        "output.flac",
    ]
    assert '"mix":"r.audio/mix.flac"' in text
    done = CliRunner().invoke(
        cli, ["report", sid[:13], "--db", str(db), "-o", str(page), "--audio", "none"]
    )
    assert done.exit_code == 0, done.output
    assert '"sources":{}' in page.read_text()
