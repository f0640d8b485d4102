"""Golden files: compare a canonical state with the file that pins it, or rewrite the file."""

from __future__ import annotations

import difflib
import enum
from pathlib import Path

import attrs

__all__ = ["GoldenResult", "GoldenStatus", "check_golden"]


class GoldenStatus(enum.StrEnum):
    """What ``check_golden`` found (or did)."""

    EQUAL = "equal"
    DIFFERENT = "different"
    MISSING = "missing"
    WRITTEN = "written"


@attrs.frozen(kw_only=True)
class GoldenResult:
    """The outcome of ``check_golden``; ``diff`` is a unified diff golden -> rebuilt."""

    path: Path
    status: GoldenStatus
    diff: str = ""

    @property
    def ok(self) -> bool:
        """True unless the rebuilt state disagrees with the file (or the file is missing)."""
        return self.status in (GoldenStatus.EQUAL, GoldenStatus.WRITTEN)


def check_golden(state_json: str, path: str | Path, *, update: bool = False) -> GoldenResult:
    """Compare ``state_json`` (from ``canonical_json``) with the golden file at ``path``.

    Args:
        state_json: the canonical JSON text of the rebuilt state.
        path: the golden file.
        update: write ``state_json`` to ``path`` when it differs or is missing (creating
            parent folders) instead of reporting a difference.

    Returns:
        ``EQUAL``; ``DIFFERENT`` or ``MISSING`` with a unified diff from the file's text to
        ``state_json``; or ``WRITTEN`` when ``update`` changed the file (with the diff of the
        change).

    Raises:
        OSError: the file cannot be read or written.
    """
    path = Path(path)
    try:
        golden: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        golden = None
    if golden == state_json:
        return GoldenResult(path=path, status=GoldenStatus.EQUAL)
    diff = "".join(
        difflib.unified_diff(
            (golden or "").splitlines(keepends=True),
            state_json.splitlines(keepends=True),
            fromfile=f"{path} (golden)" if golden is not None else f"{path} (missing)",
            tofile="rebuilt",
        )
    )
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(state_json, encoding="utf-8", newline="\n")
        return GoldenResult(path=path, status=GoldenStatus.WRITTEN, diff=diff)
    status = GoldenStatus.MISSING if golden is None else GoldenStatus.DIFFERENT
    return GoldenResult(path=path, status=status, diff=diff)
