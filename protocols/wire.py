"""One msgpack codec and one registry from stable type names to message models.

The debug socket, injection and any future cross-process hop all speak the
same shape: a msgpack map ``{"type": "kernel.Ping", "body": {...}}`` where
``type`` is a registered name and ``body`` is the model's JSON-mode dump.
Untrusted input never crashes the reader: every failure is a
:class:`~protocols.ProtocolError`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgpack
import pydantic

from ._errors import DecodeError, DuplicateType, InvalidBody, UnknownType
from ._message import Message

__all__ = [
    "FRAME_HEADER",
    "REGISTRY",
    "Registry",
    "decode",
    "decode_message",
    "encode",
    "encode_message",
    "frame",
    "message",
]

M = TypeVar("M", bound=type[Message])

# "<lowercase concern>.<Name>[.<Name>...]", e.g. "kernel.Ping", "chat.Inbound".
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Registry:
    """A two-way map between stable type names and :class:`Message` models.

    Registration happens at import time (via :func:`message`); lookups are
    plain dict reads, so a registry is safe to share once modules are loaded.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, type[Message]] = {}
        self._by_model: dict[type[Message], str] = {}

    def register(self, name: str, model: type[Message]) -> None:
        """Register ``model`` under ``name``.

        Registering the same class under the same name again is a no-op.
        Raises ``ValueError`` if ``name`` is not a valid type name (see
        ``_NAME_RE``), ``TypeError`` if ``model`` is not a ``Message`` subclass,
        and :class:`DuplicateType` if ``name`` already belongs to another class
        or ``model`` is already registered under another name.
        """
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(
                f"message type name must look like 'concern.Name' "
                f"(e.g. 'kernel.Ping'), not {name!r}"
            )
        if not (isinstance(model, type) and issubclass(model, Message)):
            raise TypeError(f"can only register Message subclasses, not {model!r}")
        existing = self._by_name.get(name)
        if existing is model:
            return
        if existing is not None:
            raise DuplicateType(
                name,
                f"message type {name!r} is already registered to {_qualname(existing)}, "
                f"cannot register {_qualname(model)}",
            )
        other_name = self._by_model.get(model)
        if other_name is not None:
            # One class, one name: name_of() must be unambiguous.
            raise DuplicateType(
                name,
                f"{_qualname(model)} is already registered as {other_name!r}, "
                f"cannot also register it as {name!r}",
            )
        self._by_name[name] = model
        self._by_model[model] = name

    def model(self, name: str) -> type[Message]:
        """Return the model registered under ``name``; raises :class:`UnknownType`."""
        try:
            return self._by_name[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name from bad input
            raise UnknownType(str(name)) from None

    def name_of(self, model_or_instance: type[Message] | Message) -> str:
        """Return the registered name of a model class or of a message's class.

        Subclasses of a registered model are not registered by inheritance.
        Raises :class:`UnknownType` if the class is not registered and
        ``TypeError`` if the argument is neither a Message nor a Message class.
        """
        if isinstance(model_or_instance, Message):
            cls: type[Message] = type(model_or_instance)
        elif isinstance(model_or_instance, type) and issubclass(model_or_instance, Message):
            cls = model_or_instance
        else:
            raise TypeError(f"expected a Message or Message subclass, not {model_or_instance!r}")
        try:
            return self._by_model[cls]
        except KeyError:
            raise UnknownType(
                _qualname(cls), f"message class {_qualname(cls)} is not registered"
            ) from None

    def names(self) -> list[str]:
        """Return every registered type name, sorted."""
        return sorted(self._by_name)

    def validate(self, name: str, body: Mapping[str, Any]) -> Message:
        """Build the message of type ``name`` from an untrusted ``body``.

        Raises :class:`UnknownType` for an unregistered name and
        :class:`InvalidBody` if ``body`` is not a mapping or fails validation
        (naming the first failing field). Validation is pydantic's default
        (lax) mode so JSON-mode dumps (datetimes as strings, ...) round-trip.
        """
        model = self.model(name)
        if not isinstance(body, Mapping):
            raise InvalidBody(name, "", f"body must be a map, not {type(body).__name__}")
        try:
            return model.model_validate(dict(body))
        except pydantic.ValidationError as exc:
            errors = exc.errors(include_url=False)
            first = errors[0]
            field = ".".join(str(part) for part in first["loc"])
            reason = first["msg"]
            if first["type"] != "missing" and field:
                reason += f", got {_short_repr(first['input'])}"
            raise InvalidBody(name, field, reason, errors) from None

    def json_schema(self, name: str) -> dict[str, Any]:
        """Return the JSON schema of the model registered under ``name`` (UnknownType)."""
        return self.model(name).model_json_schema()

    def to_wire(self, msg: Message) -> dict[str, Any]:
        """Return ``{"type": name, "body": msg.model_dump(mode="json")}``.

        Raises :class:`UnknownType` if the message's class is not registered.
        """
        return {"type": self.name_of(msg), "body": msg.model_dump(mode="json")}

    def from_wire(self, obj: Any) -> Message:
        """Inverse of :meth:`to_wire` for an untrusted decoded value.

        Raises :class:`DecodeError` unless ``obj`` is a map with exactly a str
        ``"type"`` and a map ``"body"``; then :class:`UnknownType` or
        :class:`InvalidBody` as :meth:`validate` does.
        """
        if not isinstance(obj, Mapping):
            raise DecodeError(f"wire message must be a map, not {type(obj).__name__}")
        extra = sorted(repr(k) for k in obj if k not in ("type", "body"))
        if extra:
            raise DecodeError(f"wire message has unexpected keys: {', '.join(extra)}")
        name, body = obj.get("type"), obj.get("body")
        if not isinstance(name, str):
            raise DecodeError(f"wire message 'type' must be a str, not {type(name).__name__}")
        if not isinstance(body, Mapping):
            raise DecodeError(f"wire message 'body' must be a map, not {type(body).__name__}")
        return self.validate(name, body)


REGISTRY = Registry()
"""The process-wide registry that ``@message`` uses by default."""


def message(name: str, *, registry: Registry | None = None) -> Callable[[M], M]:
    """Class decorator: register a Message subclass under ``name``, return it unchanged.

    Raises what :meth:`Registry.register` raises, at class-definition time.
    """

    def decorate(cls: M) -> M:
        (REGISTRY if registry is None else registry).register(name, cls)
        return cls

    return decorate


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- codec


def encode(obj: Any) -> bytes:
    """Encode ``obj`` (None, bool, int, float, str, bytes, lists, maps) as msgpack.

    Raises ``TypeError`` with a one-line message for a value msgpack cannot
    encode (a set, an object, an int outside 64 bits, nesting too deep).
    """
    try:
        data: bytes = msgpack.packb(obj, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot encode as msgpack: {exc or type(exc).__name__}") from exc
    return data


def _check_pairs(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key, value in pairs:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise DecodeError(f"map keys must be str or int, not {type(key).__name__}")
        if key in result:
            raise DecodeError(f"duplicate map key {_short_repr(key)}")
        _check_value(value)
        result[key] = value
    return result


def _check_list(items: list[Any]) -> list[Any]:
    for item in items:
        _check_value(item)
    return items


def _check_value(value: Any) -> None:
    # msgpack decodes ext type -1 to Timestamp without calling ext_hook.
    if isinstance(value, msgpack.Timestamp):
        raise DecodeError("msgpack ext types (including timestamps) are not accepted")


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack ext types are not accepted (got ext type {code})")


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one msgpack object from ``data``.

    Accepts bytes, bytearray or memoryview. Strings must be UTF-8, map keys
    str or int (unique), and ext types are refused. Raises :class:`DecodeError`
    with a one-line reason for anything else: non-bytes input, malformed or
    truncated msgpack, trailing bytes; msgpack's own exceptions never escape.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"can only decode bytes, not {type(data).__name__}")
    if not data:
        raise DecodeError("empty input: expected one msgpack object")
    try:
        # strict_map_key=False lets int keys through to _check_pairs, which then
        # allows str and int only; msgpack's strict mode would allow bytes, not int.
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            object_pairs_hook=_check_pairs,
            list_hook=_check_list,
            ext_hook=_reject_ext,
        )
    except DecodeError:
        raise
    except msgpack.ExtraData:
        raise DecodeError("trailing bytes after the msgpack object") from None
    except msgpack.StackError:
        raise DecodeError("msgpack nesting too deep") from None
    except msgpack.FormatError:
        raise DecodeError("malformed msgpack (reserved format byte)") from None
    except UnicodeDecodeError:
        raise DecodeError("msgpack string is not valid UTF-8") from None
    except Exception as exc:  # msgpack raises bare ValueError etc.; Cancelled is not caught
        reason = str(exc).replace("\n", " ") or type(exc).__name__
        if "incomplete input" in reason:
            raise DecodeError("truncated msgpack (incomplete input)") from None
        raise DecodeError(f"invalid msgpack: {reason}") from None
    _check_value(obj)
    return obj


def encode_message(msg: Message, *, registry: Registry | None = None) -> bytes:
    """``encode(registry.to_wire(msg))``; raises UnknownType for an unregistered class."""
    return encode((REGISTRY if registry is None else registry).to_wire(msg))


def decode_message(
    data: bytes | bytearray | memoryview, *, registry: Registry | None = None
) -> Message:
    """``registry.from_wire(decode(data))``; raises only :class:`ProtocolError` subclasses."""
    return (REGISTRY if registry is None else registry).from_wire(decode(data))


# --------------------------------------------------------------------------- framing

FRAME_HEADER = struct.Struct(">I")
"""The 4-byte big-endian length prefix in front of every debug-socket frame."""


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """Return ``payload`` prefixed with its length as :data:`FRAME_HEADER`.

    Raises ``ValueError`` if the payload is 4 GiB or longer.
    """
    payload = bytes(payload)  # len() of a memoryview counts items, not bytes
    if len(payload) > 0xFFFFFFFF:
        raise ValueError(f"frame payload too large: {len(payload)} bytes (max 4 GiB - 1)")
    return FRAME_HEADER.pack(len(payload)) + payload
