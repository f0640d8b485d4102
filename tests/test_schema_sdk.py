"""The schema layer covers the official SDK's protocol, and its docs table is true."""

from __future__ import annotations

import re
from pathlib import Path

import rtrec.schemas as schemas
from rtrec.schemas import ClientEvent, ServerEvent, event_types

from .sdk_types import sdk_event_types

DOCS = Path(__file__).parent.parent / "docs" / "schema.md"


def test_every_sdk_event_type_is_known() -> None:
    """Every type literal of the SDK's GA and beta client and server unions has a class of
    the right direction."""
    ours = event_types()
    for (protocol, direction), types in sorted(sdk_event_types().items()):
        missing = sorted(set(types) - set(ours))
        assert not missing, f"{protocol} {direction}: no class for {missing}"
        base = ClientEvent if direction == "client" else ServerEvent
        wrong = sorted(t for t in types if not issubclass(ours[t], base))
        assert not wrong, f"{protocol} {direction}: {wrong} are not {base.__name__}s"
        print(f"{protocol:4} {direction:6}: {len(types)} SDK types, all covered")
    print(f"rtrec.schemas knows {len(ours)} wire names")


def test_known_types_exist_in_some_sdk_union() -> None:
    """No invented event names: each name the schema knows is in an SDK union."""
    sdk_names = {name for types in sdk_event_types().values() for name in types}
    assert set(event_types()) <= sdk_names


def test_client_and_server_names_are_disjoint() -> None:
    """A wire name alone tells the direction, so from_dict needs no direction argument."""
    by_direction: dict[str, set[str]] = {"client": set(), "server": set()}
    for (_, direction), types in sdk_event_types().items():
        by_direction[direction] |= set(types)
    assert not by_direction["client"] & by_direction["server"]


def test_docs_table_names_exist() -> None:
    """Every class named in the right column of docs/schema.md's SDK table exists."""
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| ")][2:]
    assert len(rows) >= 20
    for row in rows:
        right = row.rstrip(" |").rsplit(" | ", 1)[1]
        for name in re.findall(r"`(\w+)`", right):
            assert hasattr(schemas, name), f"docs/schema.md names {name}, which does not exist"
