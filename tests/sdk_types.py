"""Helpers that walk the official ``openai`` SDK's Realtime event unions.

The SDK (``openai.types.realtime`` for GA, ``openai.types.beta.realtime`` for the legacy
``OpenAI-Beta: realtime=v1`` protocol) ships one ``Annotated[Union[...], PropertyInfo(
discriminator="type")]`` per protocol and direction; every member is a pydantic model whose
``type`` field is a single ``Literal``. Tests use these helpers to check recorded wire examples
and rtrec's own schemas against the SDK.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Final, Literal, Union, get_args, get_origin

import pydantic
from openai.types import realtime as ga_realtime
from openai.types.beta import realtime as beta_realtime

Protocol = Literal["ga", "beta"]
Direction = Literal["client", "server"]

# Examples whose name contains this marker are real wire shapes that the SDK's pydantic union
# rejects (a gap in the SDK types, not in the example); see tests/test_wire_examples_sdk.py.
SDK_REJECTS_MARKER: Final = "sdk-rejects"

SDK_UNIONS: Final[dict[tuple[str, str], Any]] = {
    ("ga", "client"): ga_realtime.RealtimeClientEvent,
    ("ga", "server"): ga_realtime.RealtimeServerEvent,
    ("beta", "client"): beta_realtime.RealtimeClientEvent,
    ("beta", "server"): beta_realtime.RealtimeServerEvent,
}


def _union_members(annotation: Any) -> tuple[Any, ...]:
    """Return the members of a (possibly ``Annotated``) union, or the type itself."""
    if get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _type_literal(model: type[pydantic.BaseModel]) -> str:
    """Return the single ``Literal`` value of a member model's ``type`` field."""
    field = model.model_fields.get("type")
    if field is None:
        raise TypeError(f"{model.__qualname__} has no 'type' field")
    values = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
    if len(values) != 1 or not isinstance(values[0], str):
        raise TypeError(f"{model.__qualname__}.type is not a single string Literal")
    return values[0]


@functools.cache
def _event_types() -> dict[tuple[str, str], dict[str, type[pydantic.BaseModel]]]:
    result: dict[tuple[str, str], dict[str, type[pydantic.BaseModel]]] = {}
    for key, union in SDK_UNIONS.items():
        by_type: dict[str, type[pydantic.BaseModel]] = {}
        for member in _union_members(union):
            if not (isinstance(member, type) and issubclass(member, pydantic.BaseModel)):
                raise TypeError(f"{key}: union member {member!r} is not a pydantic model")
            literal = _type_literal(member)
            if literal in by_type:
                raise TypeError(f"{key}: type {literal!r} appears twice in the union")
            by_type[literal] = member
        result[key] = by_type
    return result


def sdk_event_types() -> dict[tuple[str, str], dict[str, type[pydantic.BaseModel]]]:
    """Map (protocol, direction) to {event ``type`` literal: SDK pydantic model class}.

    protocol is ``"ga"`` or ``"beta"``, direction ``"client"`` or ``"server"``. A fresh copy is
    returned on each call, so callers may mutate it.
    """
    return {key: dict(members) for key, members in _event_types().items()}


@functools.cache
def sdk_adapter(protocol: str, direction: str) -> pydantic.TypeAdapter[Any]:
    """Return a cached ``TypeAdapter`` for the SDK event union of a protocol and direction."""
    return pydantic.TypeAdapter(SDK_UNIONS[(protocol, direction)])


def undeclared_fields(value: object, path: str = "$") -> list[str]:
    """List JSON paths of keys that a validated SDK model tree kept as undeclared extras.

    The SDK models allow extra keys (``model_extra``); this walks models, lists and dicts and
    reports e.g. ``$.response.usage.input_token_details.cached_tokens_details``.
    """
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found.extend(f"{path}.{key}" for key in sorted(value.model_extra or {}))
        for name in type(value).model_fields:
            found.extend(undeclared_fields(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(undeclared_fields(item, f"{path}[{index}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(undeclared_fields(item, f"{path}.{key}"))
    return found
