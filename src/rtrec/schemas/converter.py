"""All (un)structuring of Realtime JSON: one cattrs converter, dispatching on ``type``.

Rules this module enforces (STYLE.md principles 4-5), so that ``to_dict(from_dict(x)) == x``
for every JSON object ``x``:

- Primitive fields are checked, never coerced (cattrs would turn ``1`` into ``"1"``). An int
  in a float field stays an int, so it is written back as it came.
- Keys a class does not declare are kept in ``extra`` (cattrs drops them by default).
- Absent fields are ``UNSET`` and are omitted again; ``null`` stays ``None``.
- A union picks its member by the object's ``type`` (``message/<role>`` for messages); an
  unknown ``type`` becomes ``UnknownObject`` / ``UnknownEvent`` holding the raw object.

Strict parsing raises ``SchemaError`` naming every problem by JSON path. Lenient parsing
never raises for an object: a field that cannot be typed moves, raw, into ``extra`` (a
required one is then left ``UNSET``), so the typed view stays honest and the round trip
stays exact.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar

import attrs
import cattrs
import orjson
from cattrs.errors import ClassValidationError, IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from rtrec.schemas.base import UNSET, Event, SchemaObject, UnknownEvent, UnknownObject, Unset
from rtrec.schemas.errors import SchemaError
from rtrec.schemas.events import CLIENT_EVENTS, SERVER_EVENTS

__all__ = [
    "REALTIME_EVENTS",
    "EventTypes",
    "event_types",
    "from_dict",
    "from_json",
    "make_converter",
    "to_dict",
    "to_json",
]

_NoneType: Final = type(None)
_JSON_NAMES: Final = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    dict: "object",
    list: "array",
    _NoneType: "null",
}

E = TypeVar("E", bound=Event)


class _WrongValue(TypeError):
    """A value of the wrong JSON type or outside an enumeration; the message is final."""


def _got(value: Any) -> str:
    return _JSON_NAMES.get(value.__class__, type(value).__name__)


def _wrong(expected: str, value: Any) -> _WrongValue:
    return _WrongValue(f"expected {expected}, got {_got(value)}")


# --------------------------------------------------------------------------- primitives


def _structure_str(value: Any, _: Any) -> str:
    if value.__class__ is str:
        return value
    raise _wrong("str", value)


def _structure_int(value: Any, _: Any) -> int:
    if value.__class__ is int:
        return value
    raise _wrong("int", value)


def _structure_float(value: Any, _: Any) -> float:
    # An int stays an int: JSON's 1 and 1.0 are different texts.
    if value.__class__ is float or value.__class__ is int:
        return typing.cast(float, value)
    raise _wrong("float", value)


def _structure_bool(value: Any, _: Any) -> bool:
    if value.__class__ is bool:
        return value
    raise _wrong("bool", value)


def _structure_enum(value: Any, t: type[enum.StrEnum]) -> enum.StrEnum:
    try:
        return t(value)
    except ValueError:
        expected = ", ".join(repr(m.value) for m in t)
        raise _WrongValue(f"expected one of {expected}; got {value!r}") from None


def _structure_any(value: Any, _: Any) -> Any:
    return value


def _structure_json_object(value: Any, _: Any) -> Mapping[str, Any]:
    if value.__class__ is dict:
        return typing.cast(Mapping[str, Any], value)
    raise _wrong("object", value)


def _is_mapping(t: Any) -> bool:
    return typing.get_origin(t) in (Mapping, dict, typing.Mapping)


def _is_tuple(t: Any) -> bool:
    return typing.get_origin(t) is tuple


def _is_union(t: Any) -> bool:
    return typing.get_origin(t) in (typing.Union, types.UnionType)


def _is_enum(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, enum.Enum) and t is not Unset


def _is_schema_class(t: Any) -> typing.TypeGuard[type[SchemaObject]]:
    return isinstance(t, type) and issubclass(t, SchemaObject)


def _tag(obj: Mapping[str, Any]) -> str:
    tag = obj.get("type")
    if tag == "message":
        return f"message/{obj.get('role')}"
    if tag is None:
        # GPT-Live lets a message (or a text part) leave out its type, or send it as null;
        # a message is then selected by its role alone
        role = obj.get("role")
        return f"/{role}" if role.__class__ is str else ""
    return tag if tag.__class__ is str else repr(tag)


# --------------------------------------------------------------------------- the converter


def make_converter() -> cattrs.Converter:
    """Build the converter holding every rule of how protocol objects map to JSON."""
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)

    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(bool, _structure_bool)
    # Class hooks dispatch along the MRO, so without this every StrEnum would take the str
    # hook above and accept values outside the enumeration.
    conv.register_structure_hook(enum.StrEnum, _structure_enum)
    # Write enum members back as plain strings: to_dict gives plain JSON values.
    conv.register_unstructure_hook(enum.StrEnum, lambda v: v.value)
    conv.register_structure_hook(Any, _structure_any)
    conv.register_structure_hook_func(_is_mapping, _structure_json_object)
    conv.register_unstructure_hook_func(_is_mapping, lambda v: v)

    def tuple_hook(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        elem = typing.get_args(t)[0]
        structure_elem = conv.get_structure_hook(elem)

        def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
            if value.__class__ is not list:
                raise _wrong("array", value)
            out = []
            errors: list[Exception] = []
            for index, x in enumerate(value):
                try:
                    out.append(structure_elem(x, elem))
                except Exception as exc:
                    exc.add_note(IterableValidationNote(f"@ index {index}", index, elem))
                    errors.append(exc)
            if errors:
                raise IterableValidationError(f"While structuring {t!r}", errors, t)
            return tuple(out)

        return structure_tuple

    conv.register_structure_hook_factory(_is_tuple, tuple_hook)

    def unstructure_tuple(value: tuple[Any, ...]) -> list[Any]:
        return [conv.unstructure(x) for x in value]

    conv.register_unstructure_hook_func(_is_tuple, lambda _t: unstructure_tuple)
    conv.register_unstructure_hook(tuple, unstructure_tuple)
    conv.register_unstructure_hook_factory(_is_tuple, lambda _t: unstructure_tuple)

    conv.register_structure_hook_factory(_is_union, lambda t: _union_hook(conv, t))

    def unknown_hook(value: Any, _: Any) -> UnknownObject:
        if value.__class__ is dict:
            return UnknownObject(raw=value)
        raise _wrong("object", value)

    conv.register_structure_hook(UnknownObject, unknown_hook)
    conv.register_unstructure_hook(UnknownObject, lambda v: dict(v.raw))
    conv.register_unstructure_hook(UnknownEvent, lambda v: dict(v.raw))

    conv.register_structure_hook_factory(
        lambda t: attrs.has(t) and t not in (UnknownObject, UnknownEvent),
        lambda t: _attrs_structure_hook(conv, t),
    )
    conv.register_unstructure_hook_factory(
        lambda t: attrs.has(t) and t not in (UnknownObject, UnknownEvent),
        lambda t: _attrs_unstructure_hook(conv, t),
    )
    return conv


def _attrs_structure_hook(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    base = make_dict_structure_fn(cls, conv, extra=override(omit=True))
    known = frozenset(a.name for a in attrs.fields(cls)) - {"extra"}

    def structure_object(value: Any, _: Any) -> Any:
        if value.__class__ is not dict:
            raise _wrong("object", value)
        inst = base(value, cls)
        if not value.keys() <= known:
            # attrs itself initialises frozen classes this way; doing it here spares a
            # second construction for the rare object that carries unknown keys.
            object.__setattr__(inst, "extra", {k: v for k, v in value.items() if k not in known})
        return inst

    return structure_object


_PLAIN: Final = frozenset({str, int, float, bool, type(None), Unset, Any})


def _is_plain(t: Any) -> bool:
    """A type whose values are already plain JSON (or UNSET): no hook needed."""
    if _is_union(t):
        return all(_is_plain(m) for m in typing.get_args(t))
    return t in _PLAIN or _is_mapping(t)


def _attrs_unstructure_hook(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any], Any]:
    """Generate ``unstructure_<Class>(inst) -> dict`` for one class.

    Every field is written unless it is UNSET (absent on the wire, or a required field that
    the lenient parser could not type), then ``extra`` is merged back. The service writes
    ``type`` first, then ``event_id``; so do we, so that the simulator's frames read like the
    real ones.
    """
    hints = typing.get_type_hints(cls)
    fields = sorted(
        (a for a in attrs.fields(cls) if a.name != "extra"),
        key=lambda a: (a.name != "type", a.name != "event_id"),
    )
    namespace: dict[str, Any] = {"UNSET": UNSET, "unstructure": conv.unstructure}
    lines = [f"def unstructure_{cls.__name__}(inst):", "    res = {}"]
    for a in fields:
        lines.append(f"    v = inst.{a.name}")
        if _is_plain(hints[a.name]):
            lines.append(f"    if v is not UNSET: res[{a.name!r}] = v")
        else:
            lines.append(
                f"    if v is not UNSET: res[{a.name!r}] = None if v is None else unstructure(v)"
            )
    lines += ["    if inst.extra:", "        res.update(inst.extra)", "    return res"]
    exec(compile("\n".join(lines), f"<rtrec unstructure {cls.__qualname__}>", "exec"), namespace)
    return typing.cast(Callable[[Any], Any], namespace[f"unstructure_{cls.__name__}"])


def _union_hook(conv: cattrs.Converter, t: Any) -> Callable[[Any, Any], Any]:
    """Structure a union by the JSON type of the value, and objects by their ``type``."""
    members = [m for m in typing.get_args(t) if m is not Unset]
    allow_none = _NoneType in members
    classes: list[type[SchemaObject]] = [
        m for m in members if _is_schema_class(m) and m is not UnknownObject
    ]
    keep_unknown = UnknownObject in members
    by_tag: dict[str, type[Any]] = {tag: c for c in classes for tag in c.TAGS}
    untagged = classes[0] if len(classes) == 1 and not classes[0].TAGS else None
    mapping = next((m for m in members if _is_mapping(m)), None)
    scalars = {m for m in members if m in (str, int, float, bool)}
    enums = [m for m in members if _is_enum(m)]
    sequence = next((m for m in members if _is_tuple(m)), None)
    expected = " or ".join(
        sorted(
            {
                "object"
                if attrs.has(m) or _is_mapping(m)
                else _JSON_NAMES.get(m, "") or ("array" if _is_tuple(m) else "str")
                for m in members
            }
        )
    )

    # "message/user" tags select by role; a reader knows the type as "message"
    known_tags = " or ".join(sorted({repr(t.partition("/")[0]) for t in by_tag if t[:1] != "/"}))

    def structure_union(value: Any, _: Any) -> Any:
        cls = value.__class__
        if cls is dict:
            if by_tag:
                target = by_tag.get(_tag(value))
                if target is not None:
                    return conv.get_structure_hook(target)(value, target)
            elif untagged is not None:
                return conv.get_structure_hook(untagged)(value, untagged)
            if mapping is not None:
                return value
            if keep_unknown:
                return UnknownObject(raw=value)
            if not by_tag:  # an object where only scalars or arrays fit
                raise _wrong(expected, value)
            if "type" not in value:
                raise _WrongValue(f"missing 'type' (expected {known_tags})")
            shown = _tag(value) if value["type"] is not None else None
            raise _WrongValue(f"unknown type {shown!r} (expected {known_tags})")
        if value is None and allow_none:
            return None
        if cls in scalars:
            return value
        if cls is int and float in scalars:
            return value
        if cls is str and enums:
            return conv.get_structure_hook(enums[0])(value, enums[0])
        if cls is list and sequence is not None:
            return conv.get_structure_hook(sequence)(value, sequence)
        raise _wrong(expected, value)

    return structure_union


# Built once at import: the converter is configuration (it only caches generated hooks),
# shared by every caller.
_CONVERTER: Final = make_converter()


class EventTypes(Mapping[str, type[Event]]):
    """The event classes one connection uses in one direction, by wire ``type``.

    A dialect (``rtrec.schemas.dialects``) holds one per direction, so a frame of any dialect
    is parsed through one lookup: ``dialect.events(direction).from_dict(obj)``. Realtime's
    client and server names are disjoint, so one set serves both directions (and the
    module-level ``from_dict``).
    """

    def __init__(self, classes: Iterable[type[Event]]) -> None:
        by_name: dict[str, type[Event]] = {}
        for cls in classes:
            name = attrs.fields_dict(cls)["type"].default
            if not isinstance(name, str):
                raise TypeError(f"{cls.__qualname__}.type has no wire name as its default")
            if by_name.setdefault(name, cls) is not cls:
                raise ValueError(f"two classes for {name!r}: {by_name[name]} and {cls}")
        self._classes: Final = types.MappingProxyType(by_name)
        # Hooks are generated on first use: a process that never parses a dialect's events
        # (a recorder only relays them) does not pay for generating them at import.
        self._structure: Final[dict[str, Callable[[Any, Any], Any]]] = {}

    def __getitem__(self, name: str) -> type[Event]:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"EventTypes({len(self)} types)"

    def from_dict(self, obj: Mapping[str, Any], *, lenient: bool = False) -> Event:
        """Turn one decoded JSON event into its typed event.

        An unknown ``type`` gives an ``UnknownEvent`` holding ``obj``. Keys the class does
        not declare are kept in ``extra``.

        Args:
            obj: the JSON object, as decoded.
            lenient: never raise; what cannot be typed is kept raw (see the module docstring).

        Raises:
            SchemaError: (strict mode) the object does not fit its event type; every problem
                is named by its JSON path.
        """
        name = obj.get("type")
        structure = self._structure.get(name) if name.__class__ is str else None
        if structure is None and name.__class__ is str and name in self._classes:
            cls = self._classes[name]
            structure = self._structure[name] = _CONVERTER.get_structure_hook(cls)
        if structure is None:
            if name.__class__ is str or lenient:
                return UnknownEvent(type=name if name.__class__ is str else "", raw=obj)
            if name is None:
                raise SchemaError([("$.type", "missing required field")])
            raise SchemaError([("$.type", f"expected str, got {_got(name)}")])
        cls = self._classes[name]  # type: ignore[index]
        try:
            return typing.cast(Event, structure(obj, cls))
        except (ClassValidationError, IterableValidationError, _WrongValue) as exc:
            if lenient:
                return typing.cast(Event, _lenient_object(cls, obj))
            raise SchemaError(_problems(exc)) from None

    def from_json(self, data: str | bytes, *, lenient: bool = False) -> Event:
        """Parse one JSON text frame into its typed event (see ``from_dict``).

        Raises:
            SchemaError: the text is not a JSON object, or (strict mode) does not fit its type.
        """
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SchemaError([("$", f"invalid JSON: {exc}")]) from None
        if obj.__class__ is not dict:
            raise SchemaError([("$", f"expected object, got {_got(obj)}")])
        return self.from_dict(obj, lenient=lenient)


#: The Realtime API's events, GA and beta, both directions.
REALTIME_EVENTS: Final = EventTypes((*CLIENT_EVENTS, *SERVER_EVENTS))
_UNSTRUCTURE: dict[type[Any], Callable[[Any], Any]] = {}


def event_types() -> Mapping[str, type[Event]]:
    """Every Realtime wire ``type`` name this schema knows, GA and beta, mapped to its class
    (GPT-Live's are per connection and direction: ``Dialect.events``)."""
    return REALTIME_EVENTS


def from_dict(obj: Mapping[str, Any], *, lenient: bool = False) -> Event:
    """Turn one decoded Realtime JSON event into its typed event.

    An unknown ``type`` gives an ``UnknownEvent`` holding ``obj``. Keys the class does not
    declare are kept in ``extra``. Other dialects: ``Dialect.events(direction).from_dict``.

    Args:
        obj: the JSON object, as decoded.
        lenient: never raise; what cannot be typed is kept raw (see the module docstring).

    Raises:
        SchemaError: (strict mode) the object does not fit its event type; every problem is
            named by its JSON path.
    """
    return REALTIME_EVENTS.from_dict(obj, lenient=lenient)


def from_json(data: str | bytes, *, lenient: bool = False) -> Event:
    """Parse one Realtime JSON text frame into its typed event (see ``from_dict``).

    Raises:
        SchemaError: the text is not a JSON object, or (strict mode) does not fit its type.
    """
    return REALTIME_EVENTS.from_json(data, lenient=lenient)


def to_dict(event: SchemaObject) -> dict[str, Any]:
    """The JSON object of an event (or any schema object), exactly as it came if parsed.

    Nested JSON that the schema leaves open (JSON schemas, metadata, ``extra`` values) is
    shared with the event, not copied: treat the result as read-only or copy it.
    """
    cls = event.__class__
    hook = _UNSTRUCTURE.get(cls)
    if hook is None:
        hook = _UNSTRUCTURE[cls] = _CONVERTER.get_unstructure_hook(cls)
    return typing.cast(dict[str, Any], hook(event))


def to_json(event: SchemaObject) -> bytes:
    """The compact JSON text of an event, as UTF-8 bytes."""
    return orjson.dumps(to_dict(event))


def structure(obj: Any, cls: type[E] | Any) -> Any:
    """Structure any JSON value as schema type ``cls`` (strict), e.g. ``Item`` or ``Session``.

    Raises:
        SchemaError: the value does not fit ``cls``.
    """
    try:
        return _CONVERTER.structure(obj, cls)
    except (ClassValidationError, IterableValidationError, _WrongValue, KeyError) as exc:
        raise SchemaError(_problems(exc)) from None


# --------------------------------------------------------------------------- errors


def _describe(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, KeyError):
        return "missing required field"
    if isinstance(exc, _WrongValue):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _problems(exc: BaseException) -> list[tuple[str, str]]:
    lines = cattrs.transform_error(exc, path="$", format_exception=_describe)
    out = []
    for line in lines:
        message, _, path = line.rpartition(" @ ")
        out.append((path, message))
    return out


# --------------------------------------------------------------------------- lenient


_FAILED: Final = object()


def _lenient_object(cls: type[Any], obj: Mapping[str, Any]) -> Any:
    fields = {a.name: a for a in attrs.fields(cls) if a.name != "extra"}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in obj.items():
        field = fields.get(key)
        if field is None:
            extra[key] = value
            continue
        try:
            kwargs[key] = _CONVERTER.structure(value, field.type)
        except Exception:
            typed = _lenient_value(field.type, value)
            if typed is _FAILED:
                extra[key] = value
            else:
                kwargs[key] = typed
    for name, field in fields.items():
        if name not in kwargs and field.default is attrs.NOTHING:
            kwargs[name] = UNSET  # a required field that was missing or untypable
    inst = cls(**kwargs)
    if extra:
        object.__setattr__(inst, "extra", extra)
    return inst


def _lenient_value(t: Any, value: Any) -> Any:
    """Type what can be typed inside a malformed object, or return ``_FAILED``."""
    if value.__class__ is not dict:
        return _FAILED
    candidates: list[type[SchemaObject]] = [
        m for m in (typing.get_args(t) if _is_union(t) else (t,)) if _is_schema_class(m)
    ]
    tag = _tag(value)
    for cls in candidates:
        if cls is not UnknownObject and (not cls.TAGS or tag in cls.TAGS):
            return _lenient_object(cls, value)
    return _FAILED
