"""The HTML report survives a transcript that looks like markup (issue 15, defect 6)."""

from __future__ import annotations

import re
from pathlib import Path

import trio
from click.testing import CliRunner

from rtrec.cli import cli
from rtrec.schemas.storage import Direction
from tests.browser import chromium, needs_chromium
from tests.logdata import SessionScript
from tests.test_sql_views import write

HOSTILE = "<!--<script>alert(1)</script><b>bold</b>"


@needs_chromium
def test_markup_in_a_transcript_does_not_blank_the_report(tmp_path: Path) -> None:
    """A user message and an assistant delta holding `<!--<script>`: the page's script still
    runs (data-ready), draws a row per event, and shows the text as text, not markup."""
    script = SessionScript()
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": HOSTILE}]}
    script.event(Direction.CLIENT, {"type": "conversation.item.create", "item": item})
    delta = {
        "type": "response.output_text.delta",
        "event_id": "e1",
        "response_id": "r1",
        "item_id": "i1",
        "output_index": 0,
        "content_index": 0,
        "delta": HOSTILE,
    }
    script.event(Direction.SERVER, delta)
    script.close()
    db = tmp_path / "log.duckdb"
    trio.run(write, db, script)
    page = tmp_path / "report.html"
    done = CliRunner().invoke(
        cli, ["report", script.session_id[:8], "--db", str(db), "-o", str(page)]
    )
    assert done.exit_code == 0, done.output
    html = page.read_text()
    data = html.split('<script id="data" type="application/json">', 1)[1].split("</script>")[0]
    assert "<" not in data  # nothing in the data block the HTML parser could take as markup
    rendered = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = rendered.stdout
    assert 'data-ready="yes"' in dom, rendered.stderr[-2000:]
    assert len(re.findall(r'class="event"', dom)) == 2
    assert "<b>bold</b>" not in dom.split('id="events"', 1)[1]  # shown as text, escaped
