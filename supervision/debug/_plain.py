"""Results as data msgpack can carry: messages by their registered type name,
pydantic models dumped, anything else a short repr (never an exception)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from protocols import REGISTRY, Message, Registry, UnknownType

__all__ = ["node_name", "plain", "short_repr", "type_name"]

_REPR_LIMIT = 200


def node_name(path: str) -> str:
    """The name the tree shows for the actor at ``path``: its last part, ``/`` for the root."""
    return path.rsplit("/", 1)[-1] or "/"


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to 200 characters; never raises."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the request
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def type_name(msg: Any, registry: Registry = REGISTRY) -> str:
    """A message's registered name, else its class's qualified name."""
    if isinstance(msg, Message):
        try:
            return registry.name_of(msg)
        except UnknownType:
            pass
    cls = type(msg)
    return f"{cls.__module__}.{cls.__qualname__}"


def plain(value: Any, registry: Registry = REGISTRY) -> Any:
    """``value`` as data msgpack can carry: messages as ``{"type", "body"}``,
    other pydantic models dumped, containers walked, anything else its repr."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 63:
            return str(value)
        return value
    if isinstance(value, Message):
        return {"type": type_name(value, registry), "body": value.model_dump(mode="json")}
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): plain(v, registry) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, registry) for v in value]
    return short_repr(value)
