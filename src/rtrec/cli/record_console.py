"""``rtrec record``'s console: one line per session opened and closed, errors in red.

It follows the recorder through a ``TappedSink`` (``rtrec.store.sink``): it sees every
message once the log writer has it, counts each session's events and audio seconds, and
prints, on stderr (stdout's first line is the base URL, for scripts):

    06:21:52 01a244dd-be0b open    ga    gpt-realtime  AsyncOpenAI/Python 2.8.1
    06:21:55 01a244dd-be0b closed  3.1 s  362 events  22.2 s audio  1000 by client

A server ``error`` event gets a red line of its own; a session that ends otherwise than
with a normal close (1000, 1001, or no code from a client that just hung up) or that the
upstream rejected is red too. The tap runs on the proxy's path for every frame, so it only
counts; it prints on opens, closes and errors.
"""

from __future__ import annotations

import time
from typing import Final

import attrs
import orjson
from rich.console import Console
from rich.markup import escape

from rtrec.schemas.storage import (
    Direction,
    FrameRecord,
    LogMessage,
    SessionClose,
    SessionRecord,
    SessionStatus,
)

__all__ = ["SessionConsole"]

#: Close codes of a session that ended as it should (RFC 6455: normal, going away).
NORMAL_CLOSES: Final = frozenset({1000, 1001})
#: How much of an id the lines show: the UUIDv7's 48-bit millisecond timestamp.
SHORT_ID: Final = 13


@attrs.define
class _Open:
    started_wall_ns: int
    events: int = 0
    audio_s: float = 0.0


def _user_agent(headers_json: str) -> str:
    try:
        headers = orjson.loads(headers_json)
    except orjson.JSONDecodeError:
        return "?"
    if not isinstance(headers, dict):
        return "?"
    found = next((v for k, v in headers.items() if str(k).lower() == "user-agent"), None)
    return str(found) if found else "(no user agent)"


class SessionConsole:
    """Prints sessions as they open and close (``tap`` is the ``TappedSink`` tap)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._open: dict[str, _Open] = {}

    def _line(self, session_id: str, text: str, *, error: bool = False) -> None:
        clock = time.strftime("%H:%M:%S")
        style = "red" if error else "default"
        self.console.print(
            f"[dim]{clock}[/dim] [bold]{session_id[:SHORT_ID]}[/bold] [{style}]{text}[/{style}]",
            soft_wrap=True,
            highlight=False,
        )

    def tap(self, message: LogMessage) -> None:
        """See one message the log writer has taken."""
        if isinstance(message, FrameRecord):
            state = self._open.get(message.session_id)
            if state is None:
                return
            state.events += 1
            if message.audio is not None and message.audio.sample_rate:
                state.audio_s += message.audio.samples / message.audio.sample_rate
            if message.type == "error" and message.direction is Direction.SERVER:
                self._error(message)
        elif isinstance(message, SessionRecord):
            self._open[message.session_id] = _Open(message.started_wall_ns)
            agent = escape(_user_agent(message.request_headers))
            model = escape(message.model or "-")
            self._line(message.session_id, f"open    {message.protocol:<5} {model}  {agent}")
        elif isinstance(message, SessionClose):
            self._close(message)

    def _error(self, frame: FrameRecord) -> None:
        try:
            error = orjson.loads(frame.payload or "{}").get("error") or {}
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        what = " ".join(str(error[k]) for k in ("type", "code") if error.get(k))
        message = escape(str(error.get("message", "")))
        self._line(frame.session_id, f"error   {escape(what)}: {message}", error=True)

    def _close(self, close: SessionClose) -> None:
        state = self._open.pop(close.session_id, None)
        seconds = counts = ""
        if state is not None:
            seconds = f"{(close.ended_wall_ns - state.started_wall_ns) / 1e9:.1f} s  "
            counts = f"{state.events} events  {state.audio_s:.1f} s audio  "
        side = f" by {close.closed_by.value}" if close.closed_by is not None else ""
        code = f"{close.close_code}{side}" if close.close_code is not None else f"no code{side}"
        reason = f" ({escape(close.close_reason)})" if close.close_reason else ""
        status = close.status.value
        hung_up = close.close_code in (None, 1005) and close.closed_by is Direction.CLIENT
        error = close.status is not SessionStatus.CLOSED or not (
            close.close_code in NORMAL_CLOSES or hung_up
        )
        self._line(close.session_id, f"{status:<7} {seconds}{counts}{code}{reason}", error=error)
