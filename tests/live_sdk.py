"""Walk the official SDK's GPT-Live models (``openai.types.live``) beside rtrec's classes.

Three tools for tests/test_live_schema_sdk.py:

- ``SDK_LIVE_UNIONS``: the SDK's client and server unions per connection (primary, fork,
  sideband), each an ``Annotated[Union[...], PropertyInfo(discriminator="type")]``.
- ``compare(sdk_model, our_class)``: the differences in field names, required/optional,
  nullability and JSON kinds, recursing into nested models paired by their ``type`` (or
  ``message/<role>``) tag.
- ``examples(sdk_model)``: JSON objects the SDK's models accept, one per variant, together
  choosing every member of every union and every ``Literal`` value at least once.

Both walk the SDK programmatically, so a model a future SDK adds (an event, a field, a union
member) shows up here without editing this file.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, Literal, get_args, get_origin

import attrs
import pydantic
from openai.types import live

from rtrec.schemas import UNSET, SchemaObject, UnknownObject, Unset

SDK_LIVE_UNIONS: Final[dict[tuple[str, str], Any]] = {
    ("primary", "client"): live.ClientEvent,
    ("primary", "server"): live.ServerEvent,
    ("fork", "client"): live.ForkClientEvent,
    ("fork", "server"): live.ForkServerEvent,
    ("sideband", "client"): live.ConnectClientEvent,
    ("sideband", "server"): live.ConnectServerEvent,
}

_NONE: Final = type(None)
_SCALARS: Final = {str: "str", int: "int", float: "float", bool: "bool"}


def members(annotation: Any) -> tuple[Any, ...]:
    """The members of a (possibly ``Annotated``) union, or the type itself."""
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (typing.Union, types.UnionType):
        out: list[Any] = []
        for m in get_args(annotation):
            out.extend(members(m))
        return tuple(out)
    return (annotation,)


@functools.cache
def sdk_event_models() -> dict[tuple[str, str], dict[str, type[pydantic.BaseModel]]]:
    """(endpoint, direction) -> {wire ``type``: SDK model}."""
    out: dict[tuple[str, str], dict[str, type[pydantic.BaseModel]]] = {}
    for key, union in SDK_LIVE_UNIONS.items():
        by_type: dict[str, type[pydantic.BaseModel]] = {}
        for model in members(union):
            (name,) = get_args(model.model_fields["type"].annotation)
            assert name not in by_type, f"{key}: {name} twice"
            by_type[name] = model
        out[key] = by_type
    return out


@functools.cache
def adapter(endpoint: str, direction: str) -> pydantic.TypeAdapter[Any]:
    """A cached validator of one SDK union."""
    return pydantic.TypeAdapter(SDK_LIVE_UNIONS[(endpoint, direction)])


# --------------------------------------------------------------------------- shapes


@attrs.frozen
class Shape:
    """The JSON a type admits: scalar kinds, null, arrays (of a shape), open objects and
    typed objects (models or classes)."""

    scalars: frozenset[str] = frozenset()
    null: bool = False
    array: Shape | None = None
    open_object: bool = False
    objects: tuple[Any, ...] = ()


def _merge(shapes: list[Shape]) -> Shape:
    arrays = [s.array for s in shapes if s.array is not None]
    return Shape(
        scalars=frozenset().union(*(s.scalars for s in shapes)),
        null=any(s.null for s in shapes),
        array=_merge(arrays) if arrays else None,
        open_object=any(s.open_object for s in shapes),
        objects=tuple(o for s in shapes for o in s.objects),
    )


def sdk_shape(annotation: Any) -> Shape:
    """The shape of an SDK (pydantic) annotation."""
    parts = members(annotation)
    if len(parts) > 1:
        return _merge([sdk_shape(p) for p in parts])
    (t,) = parts
    origin = get_origin(t)
    if t is _NONE:
        return Shape(null=True)
    if origin is Literal:
        return _merge([sdk_shape(type(v)) for v in get_args(t)])
    if t in _SCALARS:
        return Shape(scalars=frozenset({_SCALARS[t]}))
    if origin in (list, typing.List):  # noqa: UP006 (the SDK spells it so)
        return Shape(array=sdk_shape(get_args(t)[0]))
    if origin in (dict, typing.Dict) or t is object:  # noqa: UP006
        return Shape(open_object=True)
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
        return Shape(objects=(t,))
    raise TypeError(f"no shape for SDK annotation {t!r}")


def our_shape(t: Any) -> Shape:
    """The shape of an rtrec schema annotation (``UNSET`` is absence, not a value)."""
    parts = [m for m in members(t) if m is not Unset]
    if len(parts) > 1:
        return _merge([our_shape(p) for p in parts])
    (t,) = parts
    origin = get_origin(t)
    if t is _NONE:
        return Shape(null=True)
    if t in _SCALARS:
        return Shape(scalars=frozenset({_SCALARS[t]}))
    if origin is tuple:
        return Shape(array=our_shape(get_args(t)[0]))
    if origin in (Mapping, dict, typing.Mapping) or t is Any:
        return Shape(open_object=True)
    if t is UnknownObject:
        return Shape()  # the fallback for unknown tags, not a shape of its own
    if isinstance(t, type) and issubclass(t, SchemaObject):
        return Shape(objects=(t,))
    raise TypeError(f"no shape for rtrec annotation {t!r}")


def sdk_tag(model: type[pydantic.BaseModel]) -> str | None:
    """The tag rtrec's unions select this model by: ``type``, or ``message/<role>``."""
    fields = model.model_fields
    role = fields.get("role")
    if role is not None and get_origin(role.annotation) is Literal:
        return f"message/{get_args(role.annotation)[0]}"
    typ = fields.get("type")
    if typ is None:
        return None
    values = [v for m in members(typ.annotation) if get_origin(m) is Literal for v in get_args(m)]
    return values[0] if len(values) == 1 else None


def _required(a: attrs.Attribute[Any]) -> bool:
    # A field with a default other than UNSET (a discriminator) is always written.
    return a.default is not UNSET


def compare(
    model: type[pydantic.BaseModel],
    cls: type[SchemaObject],
    path: str,
    open_paths: set[str],
    seen: set[tuple[Any, Any]] | None = None,
) -> list[str]:
    """The differences between an SDK model and an rtrec class, recursively.

    ``open_paths`` collects the paths where the SDK types an object that rtrec keeps as
    open JSON (the caller checks them against its list).
    """
    seen = set() if seen is None else seen
    if (model, cls) in seen:
        return []
    seen.add((model, cls))
    ours = {a.name: a for a in attrs.fields(cls) if a.name != "extra"}
    hints = typing.get_type_hints(cls)
    problems: list[str] = []
    for name in sorted(set(model.model_fields) ^ set(ours)):
        where = "SDK" if name in model.model_fields else cls.__name__
        problems.append(f"{path}.{name}: only in {where}")
    for name in sorted(set(model.model_fields) & set(ours)):
        field, a = model.model_fields[name], ours[name]
        at = f"{path}.{name}"
        if field.is_required() != _required(a):
            problems.append(f"{at}: SDK required={field.is_required()}, rtrec {a.default!r}")
        problems += _compare_shapes(
            sdk_shape(field.annotation), our_shape(hints[name]), at, open_paths, seen
        )
    return problems


def _compare_shapes(
    sdk: Shape, ours: Shape, at: str, open_paths: set[str], seen: set[tuple[Any, Any]]
) -> list[str]:
    problems: list[str] = []
    if sdk.scalars != ours.scalars:
        problems.append(f"{at}: SDK {sorted(sdk.scalars)}, rtrec {sorted(ours.scalars)}")
    if sdk.null != ours.null:
        problems.append(f"{at}: SDK nullable={sdk.null}, rtrec nullable={ours.null}")
    if (sdk.array is None) != (ours.array is None):
        problems.append(f"{at}: array in one only")
    elif sdk.array is not None and ours.array is not None:
        problems += _compare_shapes(sdk.array, ours.array, f"{at}[]", open_paths, seen)
    if sdk.open_object and not ours.open_object:
        problems.append(f"{at}: SDK leaves it open, rtrec types it")
    if sdk.objects and ours.open_object and not ours.objects:
        open_paths.add(at)
        return problems
    if bool(sdk.objects) != bool(ours.objects):
        problems.append(f"{at}: object in one only")
        return problems
    if len(sdk.objects) == 1 and len(ours.objects) == 1:
        return problems + compare(sdk.objects[0], ours.objects[0], at, open_paths, seen)
    by_tag = {tag: c for c in ours.objects for tag in c.TAGS}
    for model in sdk.objects:
        tag = sdk_tag(model)
        cls = by_tag.get(tag) if tag is not None else None
        if cls is None:
            problems.append(f"{at}: no rtrec class for {model.__qualname__} (tag {tag!r})")
        else:
            problems += compare(model, cls, f"{at}<{tag}>", open_paths, seen)
    return problems


# --------------------------------------------------------------------------- examples


def widest_union(model: type[pydantic.BaseModel]) -> int:
    """How many variants ``examples`` needs to use every union member and Literal value."""
    widest = 1
    todo: list[Any] = [model]
    seen: set[Any] = set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
            todo.extend(f.annotation for f in t.model_fields.values())
            continue
        parts = members(t)
        widest = max(widest, len([p for p in parts if p is not _NONE]))
        for p in parts:
            if get_origin(p) is Literal:
                widest = max(widest, len(get_args(p)))
            todo.extend(a for a in get_args(p) if get_origin(p) is not Literal)
            if p is not t:
                todo.append(p)
    return widest


def example(t: Any, variant: int, full: bool, depth: int = 0, nulls: bool = False) -> Any:
    """A JSON value the SDK accepts for annotation ``t``; ``variant`` picks union members
    and Literal values, ``full`` adds every optional field (``null`` where it may be, with
    ``nulls``)."""
    parts = [p for p in members(t) if p is not _NONE]
    if not parts:
        return None
    t = parts[variant % len(parts)]
    origin = get_origin(t)
    if origin is Literal:
        values = get_args(t)
        return values[variant % len(values)]
    if t is str:
        return f"s{variant}"
    if t is bool:
        return variant % 2 == 0
    if t is int:
        return 16000 + variant
    if t is float:
        return 0.25 + variant
    if origin in (list, typing.List):  # noqa: UP006
        (elem,) = get_args(t)
        return [example(elem, v, full, depth + 1, nulls) for v in (variant, variant + 1)]
    if origin in (dict, typing.Dict) and get_args(t)[1] is not object:  # noqa: UP006
        return {"k": example(get_args(t)[1], variant, full, depth + 1, nulls)}
    if origin in (dict, typing.Dict) or t is object:  # noqa: UP006
        return {"k": f"v{variant}", "n": [variant, {"deep": None}]}
    if isinstance(t, type) and issubclass(t, pydantic.BaseModel):
        out = {}
        for name, field in t.model_fields.items():
            key = field.alias or name
            if nulls and not field.is_required() and _NONE in members(field.annotation):
                out[key] = None
            elif field.is_required() or (full and depth < 8):
                out[key] = example(field.annotation, variant, full, depth + 1, nulls)
        return out
    raise TypeError(f"no example for {t!r}")


def examples(model: type[pydantic.BaseModel]) -> list[dict[str, Any]]:
    """Examples of one SDK event model: the minimal one and a full one per variant."""
    found = [example(model, 0, full=False), example(model, 0, full=True, nulls=True)]
    found += [example(model, v, full=True) for v in range(widest_union(model))]
    return found
