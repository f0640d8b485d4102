"""The responses while a fold runs."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final, final

import attrs

from rtrec.replay import _rules as rules
from rtrec.replay._findings import Findings, Where
from rtrec.replay._lenient import as_str, frozen
from rtrec.replay._rules import AnomalyKind
from rtrec.replay._state import ConversationState, ResponseState
from rtrec.schemas.storage import FrameRecord

__all__ = ["ResponsesDraft"]

_RESPONSE_KEYS: Final = frozenset(
    {"id", "object", "status", "status_details", "usage", "metadata", "conversation_id", "output"}
)


@final
class ResponsesDraft:
    """Owns the state's ``responses`` while a fold runs.

    ``delta_seen`` caches the hot check of every delta: the responses known to have their
    first delta time, so that only a response's first delta reaches ``first_delta``.
    """

    __slots__ = ("by_id", "delta_seen", "findings")

    def __init__(self, base: ConversationState, findings: Findings) -> None:
        self.findings = findings
        self.by_id: dict[str, ResponseState] = dict(base.responses)
        #: never rebound: the draft keeps a reference for its hot paths
        self.delta_seen: set[str] = set()

    def get(self, at: Where, response_id: str, *, announce: bool = False) -> ResponseState:
        """The response, created at row ``at`` if the log has not shown it (an anomaly
        unless the row ``announce``s it)."""
        resp = self.by_id.get(response_id)
        if resp is None:
            if not announce:
                self.findings.anomaly(at, AnomalyKind.RESPONSE_NOT_SEEN, response_id)
            resp = self.by_id[response_id] = ResponseState(id=response_id, first_seq=at.seq)
        return resp

    def put(self, resp: ResponseState) -> None:
        """Store a new version of a response."""
        self.by_id[resp.id] = resp

    def first_delta(self, at: Where, response_id: str) -> None:
        """Note a delta of ``response_id`` at row ``at``: the first one sets its time."""
        resp = self.get(at, response_id)
        if resp.first_delta_t_ns is None:
            self.by_id[response_id] = attrs.evolve(resp, first_delta_t_ns=at.t_ns)
        self.delta_seen.add(response_id)

    def merge(self, rec: FrameRecord, data: Any, *, done: bool) -> ResponseState | None:
        """Merge a response as ``response.created`` or (``done``) ``response.done`` states
        it (its JSON object); None if it has no id. Its output items are the caller's."""
        response_id = as_str(data.get("id")) if isinstance(data, dict) else None
        if not isinstance(data, dict) or response_id is None:
            self.findings.anomaly(rec, AnomalyKind.MALFORMED, "response without an id")
            return None
        resp = self.get(rec, response_id, announce=not done)
        changes: dict[str, Any] = {}
        status = rules.final_status(resp.status, as_str(data.get("status")))
        if status != resp.status:
            changes["status"] = status
        for key in ("status_details", "usage", "metadata"):
            value = data.get(key)
            if isinstance(value, dict):
                changes[key] = frozen(value)
        conversation_id = as_str(data.get("conversation_id"))
        if conversation_id is not None:
            changes["conversation_id"] = conversation_id
        output = data.get("output")
        if isinstance(output, list) and output:
            ids = [as_str(o.get("id")) for o in output if isinstance(o, dict)]
            changes["output"] = tuple(i for i in ids if i is not None)
        params = {k: v for k, v in data.items() if k not in _RESPONSE_KEYS}
        if params:
            changes["params"] = frozen({**resp.params, **params})
        if done:
            changes["done_seq"], changes["done_t_ns"] = rec.seq, rec.t_ns
        elif resp.created_seq is None:
            changes["created_seq"], changes["created_t_ns"] = rec.seq, rec.t_ns
        resp = attrs.evolve(resp, **changes)
        self.by_id[response_id] = resp
        return resp

    def freeze(self) -> MappingProxyType[str, ResponseState]:
        """The responses as they stand; the draft stays usable."""
        return MappingProxyType(dict(self.by_id))
