"""What a user installs: the lock is the one pyproject.toml resolves to, and the built wheel
installs into an empty venv, from the lock, and runs the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")


def _env() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE makes setuptools warn that it skips byte-compiling; a user's
    # shell does not set it, and the test is about the warnings a user sees.
    return {
        k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")
    }


@pytest.mark.skipif(UV is None, reason="uv is in the test extra; this environment lacks it")
@pytest.mark.parametrize(
    ("target", "extra"),
    [("requirements/run.txt", []), ("requirements/test.txt", ["--extra", "test"])],
)
def test_requirement_files_are_the_lock_exported(target: str, extra: list[str]) -> None:
    """The README's commands install requirements/*.txt; they must say what uv.lock says."""
    assert UV is not None
    exported = subprocess.run(
        [
            UV,
            "export",
            "--frozen",
            "--no-emit-project",
            "--no-dev",
            "--no-header",
            *extra,
            "--format",
            "requirements-txt",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert exported == (ROOT / target).read_text(), f"{target} is stale: run scripts/lock"


def test_lock_pins_every_requirement_with_hashes() -> None:
    lines = (ROOT / "requirements/test.txt").read_text().splitlines()
    pins = [ln for ln in lines if ln and not ln.startswith((" ", "#"))]
    assert pins, "no pins"
    for i, line in enumerate(lines):
        if line in pins:
            assert "==" in line, line
            assert lines[i + 1].strip().startswith("--hash=sha256:"), f"{line} has no hash"


def test_requires_python_and_classifiers_agree() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.11"
    versions = {c.rsplit(":: ", 1)[1] for c in meta["classifiers"] if "Python :: 3." in c}
    assert "3.11" in versions
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in versions


def test_wheel_and_sdist_build_without_warnings_and_the_wheel_runs_the_demo(
    tmp_path: Path,
) -> None:
    """Build (no isolation: setuptools comes from the lock), then install the wheel into an
    empty venv from requirements/run.txt, as a user of `pip install rtrec` would get it."""
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        env=_env(),
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-3000:]
    warnings = [ln for ln in output.splitlines() if "warning" in ln.lower()]
    assert warnings == [], "\n".join(warnings)
    wheels = list(dist.glob("rtrec-*-py3-none-any.whl"))
    assert len(wheels) == 1
    assert len(list(dist.glob("rtrec-*.tar.gz"))) == 1

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin/python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "-r", str(ROOT / "requirements/run.txt")], check=True, env=_env())
    subprocess.run([*pip, "--no-deps", str(wheels[0])], check=True, env=_env())

    rtrec = str(venv / "bin/rtrec")
    helped = subprocess.run([rtrec, "demo", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: rtrec demo" in helped.stdout
    work = tmp_path / "work"
    work.mkdir()
    # From an empty folder, so the demo finds its speech and scenario in the wheel, not here.
    demo = subprocess.run([rtrec, "demo"], cwd=work, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (work / "rtrec.duckdb").is_file()
    flacs = sorted(p.name for p in (work / "rtrec.audio").rglob("*.flac"))
    assert flacs == ["input.flac", "output.flac"], flacs
