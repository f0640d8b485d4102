"""The simulator's parts: synthetic speech, the energy VAD, scenario files and ids."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrec.simulator import ScenarioError, load_scenario, parse_scenario, synthesize
from rtrec.simulator.ids import IdFactory
from rtrec.simulator.synth import split_pieces
from rtrec.simulator.vad import EnergyVad, IdleTimeout, SpeechStarted, SpeechStopped, VadSettings

from .simkit import SCENARIOS, speech_samples

# --------------------------------------------------------------------------- synthesis


def test_synthesis_is_pinned_to_the_byte() -> None:
    """Integer synthesis gives these exact samples on every machine and numpy version
    (golden hashes: a change here changes every recording made with the simulator)."""
    a = synthesize("Hello there, how are you today?", rate=24000, voice="alloy")
    b = synthesize("Hello there, how are you today?", rate=8000, voice="cedar", speed=1.25)
    assert (len(a.samples), hashlib.sha256(a.samples.tobytes()).hexdigest()) == (
        54720,
        "19e179dc47fe51d521c0333d8d333b7f02c58a919bc0b0f1ce47df458cc735e5",
    )
    assert (len(b.samples), hashlib.sha256(b.samples.tobytes()).hexdigest()) == (
        14592,
        "59265d8be4e950950034aa33c05d0ef8b006cd2e70b9494fae84d069103cd837",
    )


def test_duration_follows_text_length_and_speed() -> None:
    """Twice the text is about twice the audio; speed 2.0 halves it; 8 kHz lasts as long."""
    one = synthesize("The quick brown fox jumps over the lazy dog.", rate=24000)
    two = synthesize("The quick brown fox jumps over the lazy dog. " * 2, rate=24000)
    fast = synthesize("The quick brown fox jumps over the lazy dog.", rate=24000, speed=2.0)
    narrow = synthesize("The quick brown fox jumps over the lazy dog.", rate=8000)
    assert 1.9 < two.duration_ms / one.duration_ms < 2.1
    assert abs(fast.duration_ms * 2 - one.duration_ms) <= 10
    assert abs(narrow.duration_ms - one.duration_ms) <= 5


def test_pieces_map_onto_the_audio() -> None:
    """Transcript pieces concatenate to the text; their spans are ordered and in range."""
    text = "  Sure! Checkout is at 11 a.m., and late checkout until 1 p.m. is free. "
    speech = synthesize(text, rate=24000)
    assert "".join(speech.pieces) == text
    assert list(speech.starts) == sorted(speech.starts)
    assert all(
        s <= e <= len(speech.samples) for s, e in zip(speech.starts, speech.ends, strict=True)
    )


@given(st.text(max_size=60))
@settings(max_examples=50, deadline=None)
def test_split_pieces_is_lossless(text: str) -> None:
    """Any text splits into pieces that concatenate back to it."""
    assert "".join(split_pieces(text)) == text


def test_synthetic_speech_is_speech_to_the_vad() -> None:
    """The VAD hears a synthesised sentence as one stretch of speech, so simulator output
    looped back as input makes sense."""
    speech = synthesize("Hello there, how are you today?", rate=24000)
    padded = np.concatenate([np.zeros(7200, np.int16), speech.samples, np.zeros(24000, np.int16)])
    vad = EnergyVad(VadSettings(silence_duration_ms=500))
    events = vad.feed(padded, 24000)
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]
    assert events[0].tick == 0  # speech at 300 ms, 300 ms prefix padding


# --------------------------------------------------------------------------- VAD


@pytest.mark.parametrize(
    ("name", "start_ms", "stop_ms"),
    [("weather", 0, 2780), ("hello", 10, 2390), ("joke", 0, 2820), ("stop", 0, 3490)],
)
def test_vad_on_fixture_speech(name: str, start_ms: int, stop_ms: int) -> None:
    """Each fixture utterance is one turn at a 500 ms silence window, at these offsets."""
    vad = EnergyVad(VadSettings(silence_duration_ms=500))
    events = vad.feed(speech_samples(name), 24000)
    assert events == [SpeechStarted(start_ms * 24), SpeechStopped(stop_ms * 24)]


@given(st.lists(st.integers(min_value=1, max_value=9000), min_size=1, max_size=40))
@settings(max_examples=40, deadline=None)
def test_vad_events_do_not_depend_on_chunking(sizes: list[int]) -> None:
    """Feeding the same audio in any chunk sizes gives the same events as feeding it whole."""
    samples = speech_samples("hello")
    whole = EnergyVad(VadSettings()).feed(samples, 24000)
    vad, events, position, index = EnergyVad(VadSettings()), [], 0, 0
    while position < len(samples):
        size = sizes[index % len(sizes)]
        events += vad.feed(samples[position : position + size], 24000)
        position += size
        index += 1
    assert events == whole
    assert vad.tick == len(samples)


def test_threshold_maps_onto_loudness() -> None:
    """threshold 1.0 (-10 dBFS) hears nothing in normal speech; 0.0 hears it."""
    samples = speech_samples("weather")
    assert EnergyVad(VadSettings(threshold=1.0)).feed(samples, 24000) == []
    assert len(EnergyVad(VadSettings(threshold=0.0)).feed(samples, 24000)) >= 1


def test_prefix_padding_never_reaches_before_the_buffer() -> None:
    """audio_start is clamped to the start of the current buffer."""
    vad = EnergyVad(VadSettings(prefix_padding_ms=300))
    vad.feed(np.zeros(2400, np.int16), 24000)
    vad.set_floor(2400)
    (started,) = vad.feed(speech_samples("weather")[7200:9600], 24000)
    assert started == SpeechStarted(2400)


def test_idle_alarm_rings_in_silence_only() -> None:
    """An armed alarm rings on the first frame that reaches it while nobody speaks, and
    speech disarms it."""
    vad = EnergyVad(VadSettings())
    vad.arm(0, 4800)
    assert vad.feed(np.zeros(4790, np.int16), 24000) == []
    assert vad.feed(np.zeros(10, np.int16), 24000) == [IdleTimeout(0, 4800)]
    vad.arm(4800, 4800 + 9000)  # speech begins 7200 samples in, before the alarm
    events = vad.feed(speech_samples("weather")[:24000], 24000)
    assert [type(e) for e in events] == [SpeechStarted]


# --------------------------------------------------------------------------- scenarios


def test_fixture_scenarios_load() -> None:
    """Every scenario in src/rtrec/fixtures/scenarios parses."""
    files = sorted(SCENARIOS.glob("*.toml"))
    assert files
    for path in files:
        assert load_scenario(path).name == path.stem


def test_readme_example_is_a_valid_scenario() -> None:
    """The TOML example in src/rtrec/fixtures/scenarios/README.md parses and means what it says."""
    readme = (SCENARIOS / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", readme, re.S)
    scenario = parse_scenario(block)
    assert scenario.turns[0].calls[0].arguments == '{"city":"Paris","unit":"celsius"}'
    assert scenario.match_text("what TIME is it") is scenario.turns[1]
    assert scenario.ordered(0) is scenario.turns[0]
    assert scenario.ordered(1) is None


def test_text_matching_ignores_case_punctuation_and_spacing() -> None:
    """A text turn matches its words, whatever the case, punctuation or spacing."""
    scenario = parse_scenario('[[turn]]\ntext = "Tell me a joke!"\nreply = "ha"')
    assert scenario.match_text("  tell ME a   joke") is scenario.turns[0]
    assert scenario.match_text("tell me a joke please") is None


def test_arguments_may_be_a_json_string() -> None:
    """arguments given as a string are sent verbatim."""
    scenario = parse_scenario('[[turn]]\n[[turn.call]]\nname = "f"\narguments = \'{"a": 1}\'')
    assert scenario.turns[0].calls[0].arguments == '{"a": 1}'


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("[[turn]]\nrepyl = 'x'", "unknown key 'repyl'"),
        ("[[turn]]\nreply = 3", "turn[0].reply: expected a string"),
        ("[[turn]]\nreply = 'hi {name}'", "unknown placeholder {name}"),
        ("[[turn]]\nreply = 'hi {output}'", "unknown placeholder {output}"),
        ("[[turn]]\n[[turn.call]]\narguments = {}", "call[0].name: required"),
        ("[[turn]]\ntext = '?!'", "nothing left to match"),
        ("[default]\nreply = 'a {'", "bad template"),
        ("turn = 'x'", "array of tables"),
        ("[[turn]\n", "invalid TOML"),
    ],
)
def test_scenario_errors_name_the_problem(source: str, message: str) -> None:
    """Invalid scenarios raise ScenarioError naming the origin and the offending key."""
    with pytest.raises(ScenarioError, match=re.escape(message)) as info:
        parse_scenario(source, origin="bad.toml")
    assert str(info.value).startswith("bad.toml")


def test_missing_scenario_file_is_a_scenario_error(tmp_path: Path) -> None:
    """A file that cannot be read is reported as such."""
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


# --------------------------------------------------------------------------- ids


def test_ids_have_the_service_formats_and_follow_the_seed() -> None:
    """Ids look like the service's; a seed repeats them; prefixes draw independently."""
    ids = IdFactory(3)
    event, item, call = ids.new("event"), ids.new("item"), ids.new("call", 16)
    assert re.fullmatch(r"event_[A-Za-z0-9]{21}", event)
    assert re.fullmatch(r"item_[A-Za-z0-9]{21}", item)
    assert re.fullmatch(r"call_[A-Za-z0-9]{16}", call)
    again = IdFactory(3)
    for _ in range(5):
        again.new("event")  # more events first: the item stream does not move
    assert again.new("item") == item
    assert IdFactory(4).new("item") != item


def test_docs_layout_table_lists_every_module() -> None:
    """docs/simulator.md's layout table names exactly the simulator's modules."""
    docs = (Path(__file__).parent.parent / "docs" / "simulator.md").read_text()
    table = docs.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| `(\w+\.py)` \|", table, re.M))
    package = Path(__file__).parent.parent / "src" / "rtrec" / "simulator"
    assert named == {p.name for p in package.glob("*.py")} - {"__init__.py"}
