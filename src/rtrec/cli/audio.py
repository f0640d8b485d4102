"""``rtrec audio``: one session's audio as a FLAC or WAV file (the library is
``rtrec.store.session_audio``, which says what each choice holds)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import click
import soundfile as sf

from rtrec.cli.common import session_log, trouble
from rtrec.cli.lake import lake_session
from rtrec.cli.options import db_option
from rtrec.store.session_audio import AudioChoice, extract_audio

__all__ = ["audio_command"]

_FORMATS: Final = {".flac": "FLAC", ".wav": "WAV"}


@click.command("audio")
@click.argument("session")
@click.option(
    "--stream",
    "choice",
    type=click.Choice([c.value for c in AudioChoice]),
    default=AudioChoice.MIX.value,
    show_default=True,
    help="input (what the client sent), output (what the server sent), or a stereo mix "
    "(user left, assistant right) on the session's timeline.",
)
@click.option(
    "--item",
    default=None,
    help="Only this conversation item's audio, from the stream it is on (--stream input or "
    "output must be that one).",
)
@click.option(
    "-o",
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: .flac or .wav (16-bit PCM).",
)
@db_option()
@lake_session
def audio_command(session: str, choice: str, item: str | None, out: Path, db: Path) -> None:
    """Write the audio of SESSION (an id, a unique prefix, or a bundle directory) to a FLAC
    or WAV file: a stream, the stereo mix on the session's timeline, or one item's audio
    (item ids: `rtrec show`)."""
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise click.BadParameter(f"{out.name}: the file must end in .flac or .wav", param_hint="-o")
    with session_log(session, db) as (log_path, sid), trouble(ValueError):
        samples, rate = extract_audio(log_path, sid, AudioChoice(choice), item)
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out), samples, rate, format=fmt, subtype="PCM_16")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    click.echo(
        f"wrote {out}: {len(samples) / rate:.2f} s, {rate} Hz, "
        f"{'stereo' if channels == 2 else 'mono'}"
    )
