"""What installing rtrec costs a pytest run that does not use it (issue #19, item 8).

Runs ``python -m pytest`` on a throwaway project with one trivial test, with rtrec's plugin
(loaded through its ``pytest11`` entry point, as in any project where rtrec is installed)
and without it (``-p no:rtrec``), interleaved round by round so that load on the machine
hits both alike, and prints the wall time and the CPU time (user + system, of the child:
the figure to trust on a loaded machine) of each. A third row runs one playback test
(the ``rtrec_playback`` fixture with the committed weather-ga bundle, no client), which
pays for the heavy imports the others must not.

    python bench/bench_plugin_startup.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BUNDLE = Path(__file__).resolve().parent.parent / "fixtures" / "sessions" / "weather-ga"

PLAIN = "def test_nothing():\n    assert 1 + 1 == 2\n"
PLAYBACK = textwrap.dedent(
    f"""
    import pytest

    @pytest.mark.rtrec_playback({str(BUNDLE)!r}, check=False)
    def test_playback(rtrec_playback):
        assert rtrec_playback.url.startswith("ws://")
    """
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(project: Path, test: str, *extra: str) -> tuple[float, float]:
    """Wall and CPU seconds of one pytest run."""
    start, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test, *extra],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed, used = time.perf_counter() - start, _cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"pytest {test} {' '.join(extra)} failed:\n{done.stdout}{done.stderr}")
    return elapsed, used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {
        "one plain test, -p no:rtrec": [],
        "one plain test, rtrec installed": [],
        "one rtrec_playback test": [],
    }
    with tempfile.TemporaryDirectory(prefix="rtrec-bench-") as tmp:
        project = Path(tmp)
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "test_plain.py").write_text(PLAIN)
        (project / "test_playback.py").write_text(PLAYBACK)
        run(project, "test_plain.py")  # warm the page cache and the bytecode
        run(project, "test_playback.py")
        for _ in range(args.rounds):
            rows["one plain test, -p no:rtrec"].append(
                run(project, "test_plain.py", "-p", "no:rtrec")
            )
            rows["one plain test, rtrec installed"].append(run(project, "test_plain.py"))
            rows["one rtrec_playback test"].append(run(project, "test_playback.py"))
    table = Table(title=f"one pytest run, {args.rounds} rounds (seconds)")
    columns = ("run", "wall min", "wall median", "CPU min", "CPU median")
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, times in rows.items():
        wall, cpu = [t[0] for t in times], [t[1] for t in times]
        table.add_row(
            name,
            f"{min(wall):.2f}",
            f"{statistics.median(wall):.2f}",
            f"{min(cpu):.2f}",
            f"{statistics.median(cpu):.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
