"""Errors raised by the wire codec and the message registry.

Every error here is a :class:`ProtocolError`, so a server that reads untrusted
bytes (the debug socket, injection) can catch one type and answer with a clean
error instead of crashing::

    ProtocolError                 base: the input broke the protocol
    ├── DecodeError               bytes are not msgpack, or not the expected shape
    ├── UnknownType               a type name (or model) that is not registered
    ├── InvalidBody               the body does not validate against the model
    └── DuplicateType             two models claim one type name (a programming error)

Messages are one line and name the offending type, field or value, because
they travel back to an operator over the debug socket.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import ErrorDetails

__all__ = ["DecodeError", "DuplicateType", "InvalidBody", "ProtocolError", "UnknownType"]


class ProtocolError(Exception):
    """Base of every error raised by ``protocols``."""


class DecodeError(ProtocolError):
    """Bytes that are not valid msgpack, or a decoded value of the wrong shape."""


class UnknownType(ProtocolError):
    """A message type name, or a model class, that no registry entry matches.

    ``type_name`` is the name that was looked up (for a model class, its
    qualified Python name).
    """

    def __init__(self, type_name: str, message: str | None = None) -> None:
        self.type_name = type_name
        super().__init__(message or f"unknown message type {type_name!r}")


class InvalidBody(ProtocolError):
    """A body that does not validate against the model registered for its type.

    ``field`` is the dotted path of the first failing field (``"items.0.name"``),
    or ``""`` when the body as a whole is wrong (not a map, a model-level check).
    ``errors`` is pydantic's full error list (empty when the body is not a map).
    """

    def __init__(
        self,
        type_name: str,
        field: str,
        reason: str,
        errors: Sequence[ErrorDetails] = (),
    ) -> None:
        self.type_name = type_name
        self.field = field
        self.errors = list(errors)
        where = f"field {field!r}: " if field else ""
        super().__init__(f"invalid body for {type_name!r}: {where}{reason}")


class DuplicateType(ProtocolError):
    """Two different models registered under one type name (or one model under two).

    This is a programming error found at import time, not bad input.
    """

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        super().__init__(message)
