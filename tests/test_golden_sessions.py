"""Golden tests over the recorded fixture sessions (fixtures/sessions/), and the commands
that check them: ``rtrec replay`` and ``rtrec diff``.

The bundles were recorded from the simulator through the recorder by
fixtures/make_sessions.py; each holds a ``golden.json``. Commands run in-process through
click's CliRunner; bundles that a test alters are copies in ``tmp_path``.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import orjson
import pytest
from click.testing import CliRunner, Result

from rtrec.cli import cli
from rtrec.cli.replay import load_session
from rtrec.replay import canonical_state, diff_conversations
from rtrec.store.bundle import import_bundle

FIXTURES = Path(__file__).parent.parent / "fixtures"
SESSIONS = FIXTURES / "sessions"
NAMES = [
    "barge_in",
    "function_call",
    "function_call_beta",
    "mcp_approval",
    "text_turn",
    "transcription",
    "voice_turn",
    # GPT-Live
    "live_client_delegation",
    "live_responses_delegation",
    "live_voice",
]
# recorded with the official SDK for the playback tests (tests/test_playback_plugin.py)
PLAYBACK_ONLY = ["weather-ga"]


def rtrec(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(SESSIONS / name, target)
    return target


def test_the_fixture_sessions_are_all_there() -> None:
    """Every fixture the issue asks for is a bundle with its golden file, and no more."""
    found = sorted(p.name for p in SESSIONS.iterdir() if p.is_dir())
    assert found == sorted(NAMES + PLAYBACK_ONLY)
    for name in NAMES:
        for part in ("session.json", "events.jsonl", "golden.json"):
            assert (SESSIONS / name / part).is_file(), f"{name}/{part}"


@pytest.mark.parametrize("name", NAMES)
def test_fixture_replays_to_its_golden_file(name: str) -> None:
    """`rtrec replay BUNDLE --stable-ids --golden golden.json` exits 0: the recorded
    conversation rebuilds to exactly what the golden file pins, audio checksums included."""
    bundle = SESSIONS / name
    result = rtrec("replay", bundle, "--stable-ids", "--golden", bundle / "golden.json")
    assert result.exit_code == 0, result.output
    assert result.output == f"{bundle / 'golden.json'}: equal\n"


def test_golden_files_pin_audio_as_checksums_not_samples() -> None:
    """Golden files hold audio as duration + SHA-256 of the samples, never base64."""
    doc = orjson.loads((SESSIONS / "voice_turn" / "golden.json").read_bytes())
    user, assistant = doc["items"]
    heard = user["content"][0]["audio"]
    assert set(heard) == {"duration_s", "samples", "sample_rate", "sha256"}
    assert heard["sample_rate"] == 24000
    assert len(heard["sha256"]) == 64
    assert assistant["content"][0]["audio"]["duration_s"] > 1
    assert b'"audio":"' not in (SESSIONS / "voice_turn" / "golden.json").read_bytes()


def test_a_changed_conversation_fails_its_golden_file(tmp_path: Path) -> None:
    """Altering what the assistant said in a copy of a bundle makes `--golden` exit 1 with a
    unified diff showing the old and the new text."""
    bundle = copy("text_turn", tmp_path)
    events = bundle / "events.jsonl"
    text = events.read_text()
    assert text.count("always the same time") > 0
    events.write_text(text.replace("always the same time", "never the same time"))

    result = rtrec("replay", bundle, "--stable-ids", "--golden", bundle / "golden.json")
    assert result.exit_code == 1
    assert "(golden)" in result.output
    assert "+++ rebuilt" in result.output
    assert '-          "text": "I am a simulator, so it is always the same time' in result.output
    assert '+          "text": "I am a simulator, so it is never the same time' in result.output
    assert result.output.rstrip().endswith("--update rewrites it)")


def test_another_scenario_fails_a_golden_file() -> None:
    """A voice turn checked against the function call's golden file exits 1 and the diff
    shows the call that is missing."""
    golden = SESSIONS / "function_call" / "golden.json"
    result = rtrec("replay", SESSIONS / "voice_turn", "--stable-ids", "--golden", golden)
    assert result.exit_code == 1
    assert '-      "name": "get_weather",' in result.output


def test_a_different_audio_checksum_fails_the_golden_file(tmp_path: Path) -> None:
    """The same words over different samples differ too: a golden file whose user audio
    checksum is changed no longer matches."""
    bundle = copy("voice_turn", tmp_path)
    golden = bundle / "golden.json"
    doc = orjson.loads(golden.read_bytes())
    digest = doc["items"][0]["content"][0]["audio"]["sha256"]
    golden.write_text(golden.read_text().replace(digest, "0" * 64))
    result = rtrec("replay", bundle, "--stable-ids", "--golden", golden)
    assert result.exit_code == 1
    assert f'+            "sha256": "{digest}"' in result.output


def test_update_writes_the_golden_file_and_then_it_is_equal(tmp_path: Path) -> None:
    """`--golden FILE --update` writes a missing file; comparing again exits 0; without
    `--update` a missing file is a failure."""
    golden = tmp_path / "new" / "golden.json"
    bundle = SESSIONS / "function_call"
    missing = rtrec("replay", bundle, "--stable-ids", "--golden", golden)
    assert missing.exit_code == 1
    assert "missing" in missing.output
    written = rtrec("replay", bundle, "--stable-ids", "--golden", golden, "--update")
    assert written.exit_code == 0, written.output
    assert golden.read_bytes() == (bundle / "golden.json").read_bytes()
    assert rtrec("replay", bundle, "--stable-ids", "--golden", golden).exit_code == 0


def test_ga_and_beta_recordings_rebuild_to_the_same_conversation() -> None:
    """The function call round trip recorded in GA and in beta gives the same items (texts,
    transcripts, audio checksums, the call and its output) and response outcomes; only the
    protocol's own names and shapes (session config, usage fields) differ."""
    ga = load_session(SESSIONS / "function_call")
    beta = load_session(SESSIONS / "function_call_beta")
    with ga.audio, beta.audio:
        doc_ga = canonical_state(ga.replay.state, stable_ids=True, audio=ga.audio)
        doc_beta = canonical_state(beta.replay.state, stable_ids=True, audio=beta.audio)
    assert (doc_ga["protocol"], doc_beta["protocol"]) == ("ga", "beta")
    for key in ("items", "detached_items", "deleted_items", "errors", "anomalies"):
        assert doc_ga[key] == doc_beta[key], key
    outcomes = [[(r["status"], r["output"]) for r in d["responses"]] for d in (doc_ga, doc_beta)]
    assert outcomes[0] == outcomes[1]
    assert diff_conversations(ga.replay.state, beta.replay.state).equal
    result = rtrec("diff", SESSIONS / "function_call", SESSIONS / "function_call_beta")
    assert result.exit_code == 0, result.output


def test_replay_prints_the_transcript_of_a_barge_in() -> None:
    """The transcript shows both speakers with their audio, the interruption, the truncation
    with what was generated, and the response outcomes with tokens."""
    result = rtrec("replay", SESSIONS / "barge_in")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("session sess_")
    assert "GA" in lines[0]
    said = [line for line in lines if "  user  " in line or "  assistant " in line]
    assert len(said) == 4
    assert '"Tell me a short joke about computers."' in said[0]
    assert "[audio 0.25s of " in said[1]
    assert '✂ truncated at 250 ms (generated: "Why did the' in said[1]
    assert "⚡ interrupted (turn_detected)" in said[1]
    assert '"Wait, stop. Actually, never mind."' in said[2]
    assert '"Okay, no problem."' in said[3]
    assert "cancelled (turn_detected) · tokens in " in result.output
    assert "completed · tokens in " in result.output


def test_replay_prints_a_function_call_round_trip() -> None:
    """The call with its arguments, the tool output and the answer that uses it."""
    result = rtrec("replay", SESSIONS / "function_call")
    assert result.exit_code == 0, result.output
    assert 'assistant call get_weather({"city":"Paris","unit":"celsius"})' in result.output
    assert '→ {"temperature_c": 14, "sky": "light rain"}' in result.output
    assert '"Here is what the weather service says: ' in result.output


def test_replay_prints_mcp_calls_with_the_approval() -> None:
    """The listed tools, the approval request with its tool and arguments, the client's
    decision, the approved call with its output, and the failed call with its error."""
    result = rtrec("replay", SESSIONS / "mcp_approval", "--stable-ids")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    expected = [
        "[mcp_list_tools] docs: search_docs, read_changelog",
        '[mcp_approval_request] approve? docs.search_docs({"query":"weather in Paris"})',
        "user      [mcp_approval_response] approved item#4",
        'mcp docs.search_docs({"query":"weather in Paris"}) → The docs have no weather',
        "mcp docs.read_changelog({}) ✗ failed: The changelog server timed out.",
    ]
    found = [next((n for n, line in enumerate(lines) if e in line), -1) for e in expected]
    assert -1 not in found, result.output
    assert found == sorted(found)


def test_replay_of_a_transcription_session() -> None:
    """A transcription-only session replays as the user's transcribed audio turns, and its
    golden file keeps the transcriptions' logprobs and languages."""
    result = rtrec("replay", SESSIONS / "transcription")
    assert result.exit_code == 0, result.output
    assert "transcription only" in result.output.splitlines()[0]
    assert '"Hello! Can you hear me?"' in result.output
    assert "response" not in result.output
    golden = orjson.loads((SESSIONS / "transcription" / "golden.json").read_bytes())
    transcription = golden["items"][0]["content"][0]["transcription"]
    assert transcription["languages"] == [{"code": "en"}]
    tokens = "".join(p["token"] for p in transcription["logprobs"])
    assert tokens == "Hello! Can you hear me?"


def test_sql_counts_the_mcp_calls_of_an_imported_session(tmp_path: Path) -> None:
    """`rtrec sql "SELECT kind, count(*) FROM function_calls GROUP BY kind"` counts the
    MCP calls of the recorded MCP session (one approved, one failed); the failed one is in
    `errors`."""
    db = tmp_path / "log.duckdb"
    assert rtrec("import", SESSIONS / "mcp_approval", "--db", db).exit_code == 0
    query = "SELECT kind, count(*) AS n FROM function_calls GROUP BY kind"
    result = rtrec("sql", "--db", db, "--format", "csv", query)
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["kind,n", "mcp,2"]
    errors = rtrec("sql", "--db", db, "--format", "csv", "SELECT source, message FROM errors")
    assert errors.output.split("\n")[1:3] == ["mcp,The changelog server timed out.", ""]


def test_diff_of_a_bundle_with_itself_is_empty() -> None:
    """`rtrec diff A A` says the conversations are equal and exits 0."""
    bundle = SESSIONS / "barge_in"
    result = rtrec("diff", bundle, bundle)
    assert result.exit_code == 0
    assert result.output == f"{bundle} and {bundle}: the conversations are equal\n"


def test_diff_of_different_conversations_exits_1(tmp_path: Path) -> None:
    """A changed word is one change naming the item and both texts; another scenario differs
    item by item."""
    bundle = copy("text_turn", tmp_path)
    events = bundle / "events.jsonl"
    events.write_text(events.read_text().replace("always the same time", "never the same time"))
    result = rtrec("diff", SESSIONS / "text_turn", bundle)
    assert result.exit_code == 1
    assert "differ in 1 place:" in result.output
    assert "item 2 (assistant message): content[0].text" in result.output
    assert "never the same time" in result.output

    other = rtrec("diff", SESSIONS / "voice_turn", SESSIONS / "function_call")
    assert other.exit_code == 1
    assert "get_weather" in other.output


def test_replay_reads_a_session_from_the_log_by_id_prefix(tmp_path: Path) -> None:
    """A bundle imported into a log replays from the log (id prefix, `--db`) to the same
    golden file, its audio read through the log's FLAC archive."""
    db = tmp_path / "log.duckdb"
    session_id = import_bundle(db, SESSIONS / "barge_in")
    golden = SESSIONS / "barge_in" / "golden.json"
    result = rtrec("replay", session_id[:13], "--db", db, "--stable-ids", "--golden", golden)
    assert result.exit_code == 0, result.output
    from_log = rtrec("replay", session_id, "--db", db)
    assert from_log.output == rtrec("replay", SESSIONS / "barge_in").output
    assert rtrec("diff", session_id, SESSIONS / "barge_in", "--db", db).exit_code == 0


def test_json_and_time_travel() -> None:
    """`--json` prints the canonical state with real ids, `--at SEQ` and `--at 12.5s` the
    state at that point: nothing before the first event, everything after the last."""
    bundle = SESSIONS / "function_call"
    whole = orjson.loads(rtrec("replay", bundle, "--json").output)
    assert whole["items"][0]["id"].startswith("item_")
    assert len(whole["items"]) == 5
    start = orjson.loads(rtrec("replay", bundle, "--json", "--at", "0").output)
    assert start["items"] == []
    assert start["frames"]["last_seq"] <= 0
    last = whole["frames"]["last_seq"]
    half = orjson.loads(rtrec("replay", bundle, "--json", "--at", str(last // 2)).output)
    assert 0 < len(half["items"]) < 5
    late = orjson.loads(rtrec("replay", bundle, "--json", "--at", str(last)).output)
    assert late == whole
    past = rtrec("replay", bundle, "--json", "--at", "3600s")  # not the final state, silently
    assert past.exit_code == 2
    assert "3600s is past the session's end" in past.output
    past = rtrec("replay", bundle, "--at", str(last + 1))
    assert past.exit_code == 2
    assert f"seq {last + 1} is past the session's last seq, {last}" in past.output
    stable = rtrec("replay", bundle, "--json", "--stable-ids", "--at", str(last)).output
    assert stable == (bundle / "golden.json").read_text()


def test_bad_references_exit_2_with_the_reason(tmp_path: Path) -> None:
    """No such session, a damaged bundle, a path that is not a bundle directory and an
    unreadable `--at` are trouble (exit 2), never a silent "equal" or "different"."""
    none = rtrec("replay", "0192", "--db", tmp_path / "missing.duckdb")
    assert none.exit_code == 2
    assert "missing.duckdb" in none.output

    bundle = copy("voice_turn", tmp_path)
    flac = bundle / "input.flac"
    flac.write_bytes(flac.read_bytes()[:-10])
    damaged = rtrec("diff", bundle, SESSIONS / "voice_turn")
    assert damaged.exit_code == 2
    assert "input.flac does not match its checksum" in damaged.output

    shuffled = copy("text_turn", tmp_path)
    lines = (shuffled / "events.jsonl").read_text().splitlines(keepends=True)
    lines[3], lines[4] = lines[4], lines[3]
    (shuffled / "events.jsonl").write_text("".join(lines))
    out_of_order = rtrec("replay", shuffled)
    assert out_of_order.exit_code == 2
    assert "events.jsonl: log rows must come in increasing seq order" in out_of_order.output

    file = rtrec("replay", SESSIONS / "voice_turn" / "events.jsonl")
    assert file.exit_code == 2
    assert "events.jsonl is a file: give a bundle directory" in file.output
    gone = rtrec("diff", SESSIONS / "voice_turn", tmp_path / "nowhere")
    assert gone.exit_code == 2
    assert "nowhere is not there" in gone.output

    at = rtrec("replay", SESSIONS / "voice_turn", "--at", "soon")
    assert at.exit_code == 2
    assert "cannot read 'soon'" in at.output

    update = rtrec("replay", SESSIONS / "voice_turn", "--update")
    assert update.exit_code == 2
    assert "--update needs --golden" in update.output


def _make_sessions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sessions", FIXTURES / "make_sessions.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_make_sessions_rerecords_the_same_golden_file(name: str, tmp_path: Path) -> None:
    """fixtures/make_sessions.py re-records a fixture (a new session, through the recorder)
    whose golden file is byte-equal to the committed one: the fixtures are reproducible."""
    make_sessions = _make_sessions()
    assert make_sessions.main(["--out", str(tmp_path), name]) == 0
    new = tmp_path / name
    assert (new / "golden.json").read_bytes() == (SESSIONS / name / "golden.json").read_bytes()
    old_id = orjson.loads((SESSIONS / name / "session.json").read_bytes())["session"]
    new_id = orjson.loads((new / "session.json").read_bytes())["session"]
    assert old_id["session_id"] != new_id["session_id"]
    assert "sk-fixture" not in (new / "session.json").read_text()
    assert "sk-fixture" not in (new / "events.jsonl").read_text()


def test_stable_ids_in_the_transcript_match_the_golden_file() -> None:
    """`rtrec replay --stable-ids` shows the ordinals the golden file uses, and no generated
    session, response, item or call id."""
    result = rtrec("replay", SESSIONS / "function_call", "--stable-ids")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("session session#1 · GA")
    assert "call get_weather(" in result.output
    assert "[call#1]" in result.output
    assert "response resp#1 completed" in result.output
    assert "response resp#2 completed" in result.output
    for prefix in ("sess_", "resp_", "item_", "call_"):
        assert prefix not in result.output
    golden = orjson.loads((SESSIONS / "function_call" / "golden.json").read_bytes())
    call = next(i for i in golden["items"] if i["type"] == "function_call")
    assert (call["call_id"], call["response"]) == ("call#1", "resp#1")


def test_replay_of_a_live_session_shows_both_speakers_on_the_timeline() -> None:
    """A GPT-Live voice session replays as its placed instructions, the user's words and
    the spoken answer, in timeline order, and how the session ended."""
    result = rtrec("replay", SESSIONS / "live_voice")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "GPT-Live session, model gpt-live-1, audio audio/pcm 24000"
    assert lines[1].endswith("] instructions: The user is testing their microphone.")
    assert lines[2].endswith("] user: Hello! Can you hear me?")
    assert lines[3].endswith("] assistant: Yes, I can hear you clearly. How can I help you today?")
    assert lines[1] < lines[2] < lines[3]  # [mm:ss.mmm] stamps sort as text
    assert lines[-1] == "closed: close_requested"


def test_replay_of_live_delegations_shows_the_call_and_the_answer() -> None:
    """Client delegation: the delegation, the client's thinking and commentary placed on
    the timeline, the answer that uses them. Responses delegation: the backend's
    get_weather call with its arguments, completed, and the answer."""
    client = rtrec("replay", SESSIONS / "live_client_delegation").output
    assert "] user: What is the weather like in Paris today?" in client
    assert " to client" in client
    assert "] thinking: Asking the weather service." in client
    assert '] commentary: {"temperature_c": 14, "sky": "light rain"}' in client
    answer = 'Here is what the weather service says: {"temperature_c": 14, "sky": "light rain"}'
    assert answer in client
    backend = rtrec("replay", SESSIONS / "live_responses_delegation").output
    assert ' to responses calls get_weather({"city":"Paris","unit":"celsius"}) [completed]' in (
        backend
    )
    assert answer in backend


def test_a_changed_live_conversation_fails_its_golden_file(tmp_path: Path) -> None:
    """A word the assistant said, changed in a copy of a Live bundle, makes `--golden`
    exit 1 with the old and new transcript in the diff."""
    bundle = copy("live_voice", tmp_path)
    events = bundle / "events.jsonl"
    text = events.read_text()
    assert text.count("clearly") == 1  # one output transcript fragment
    events.write_text(text.replace("clearly", "faintly"))
    manifest = orjson.loads((bundle / "session.json").read_bytes())
    del manifest["events"]  # its checksum would refuse the edited bundle before the replay
    (bundle / "session.json").write_bytes(orjson.dumps(manifest))
    result = rtrec("replay", bundle, "--stable-ids", "--golden", bundle / "golden.json")
    assert result.exit_code == 1
    assert "I can hear you clearly." in result.output
    assert "I can hear you faintly." in result.output
