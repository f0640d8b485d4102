"""Hypothesis strategies that build any schema object from its type annotations."""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs
from hypothesis import strategies as st

from rtrec.schemas import UNSET, SchemaObject, UnknownObject, Unset

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=3)


def _unknown_object() -> st.SearchStrategy[UnknownObject]:
    # A tag no union knows, so that it stays unknown after a round trip.
    raw = st.fixed_dictionaries(
        {"type": st.text(min_size=1, max_size=8).map(lambda s: f"x-unknown-{s}")},
        optional={"payload": json_values},
    )
    return raw.map(lambda r: UnknownObject(raw=r))


def for_type(t: Any) -> st.SearchStrategy[Any]:
    """A strategy for values of schema type ``t``."""
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_type(m) for m in typing.get_args(t)])
    if t is Unset:
        return st.just(UNSET)
    if t is type(None):
        return st.none()
    if t is str:
        return st.text(max_size=12)
    if t is bool:
        return st.booleans()
    if t is int:
        return st.integers(min_value=-(2**53), max_value=2**53)
    if t is float:
        return st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(min_value=-1000, max_value=1000),
        )
    if t is Any:
        return json_values
    if origin is tuple:
        return st.lists(for_type(typing.get_args(t)[0]), max_size=3).map(tuple)
    if origin in (Mapping, dict, typing.Mapping):
        return json_objects
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return st.sampled_from(list(t))
    if t is UnknownObject:
        return _unknown_object()
    if isinstance(t, type) and attrs.has(t):
        return st.deferred(lambda: for_class(t))
    raise NotImplementedError(f"no strategy for {t!r}")


def for_class(cls: type[SchemaObject]) -> st.SearchStrategy[Any]:
    """Instances of ``cls`` with every field drawn, plus unknown extra keys."""
    hints = typing.get_type_hints(cls)
    fields = [a for a in attrs.fields(cls) if a.name != "extra"]
    known = {a.name for a in fields}
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    # GPT-Live classes may carry several tags and no default, or be chosen by role alone
    tags = [t for t in cls.TAGS if t and "/" not in t]
    roles = [t.partition("/")[2] for t in cls.TAGS if "/" in t]
    for a in fields:
        if a.name == "type" and a.default is attrs.NOTHING and tags:
            kwargs[a.name] = st.sampled_from(tags)
        elif a.name == "role" and a.default is attrs.NOTHING and roles:
            kwargs[a.name] = st.sampled_from(sorted(set(roles)))
        elif a.name in ("type", "role") and (a.default is not attrs.NOTHING or cls.TAGS):
            continue  # the discriminators keep their class defaults
        else:
            kwargs[a.name] = for_type(hints[a.name])
    # an unknown key must not act as a discriminator of its own
    extra = st.dictionaries(
        st.text(min_size=1, max_size=6).filter(lambda k: k not in known | {"type", "role"}),
        json_values,
        max_size=2,
    )
    return st.builds(cls, **kwargs, extra=extra)
