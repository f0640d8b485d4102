"""A protocol-faithful simulator of the OpenAI Realtime API (GA and beta).

The zero-setup upstream for recording, replay, demos and tests: ``serve_simulator`` (trio)
or ``rtrec sim`` serves it over WebSocket; ``SimSession`` is the sans-IO session core;
scenarios (TOML) script what the simulated model hears and says. docs/simulator.md has the
details.
"""

from rtrec.simulator.responses import Timing
from rtrec.simulator.scenario import (
    DEFAULT_SCENARIO,
    Call,
    Defaults,
    Scenario,
    ScenarioError,
    Turn,
    load_scenario,
    parse_scenario,
)
from rtrec.simulator.server import Pace, serve_simulator
from rtrec.simulator.session import SimSession
from rtrec.simulator.synth import Speech, Synthesizer, synthesize
from rtrec.simulator.tools import WEATHER_TOOL

__all__ = [
    "DEFAULT_SCENARIO",
    "WEATHER_TOOL",
    "Call",
    "Defaults",
    "Pace",
    "Scenario",
    "ScenarioError",
    "SimSession",
    "Speech",
    "Synthesizer",
    "Timing",
    "Turn",
    "load_scenario",
    "parse_scenario",
    "serve_simulator",
    "synthesize",
]
