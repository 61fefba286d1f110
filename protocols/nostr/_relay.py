"""NIP-01 relay messages: what a client sends (REQ, CLOSE, EVENT) and parses back.

:func:`parse_relay_message` turns one text frame from a relay into an
``EVENT``/``OK``/``EOSE``/``NOTICE``/``CLOSED``/``AUTH`` record or raises
:class:`RelayMessageError`. An ``EVENT``'s event is returned as decoded JSON,
not yet checked: that is :func:`parse_event` and :func:`verify`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._errors import RelayMessageError
from ._event import Event

__all__ = [
    "RelayAuth",
    "RelayClosed",
    "RelayEose",
    "RelayEvent",
    "RelayMessage",
    "RelayNotice",
    "RelayOk",
    "close_message",
    "event_message",
    "parse_relay_message",
    "req_message",
]

#: A frame larger than this is refused unparsed (relays send events of <= 64 KiB or so).
MAX_FRAME = 1 << 20


@dataclass(frozen=True)
class RelayEvent:
    subscription: str
    event: Any  # decoded JSON, unchecked


@dataclass(frozen=True)
class RelayOk:
    event_id: str
    accepted: bool
    message: str


@dataclass(frozen=True)
class RelayEose:
    subscription: str


@dataclass(frozen=True)
class RelayNotice:
    message: str


@dataclass(frozen=True)
class RelayClosed:
    subscription: str
    message: str


@dataclass(frozen=True)
class RelayAuth:
    challenge: str


RelayMessage = RelayEvent | RelayOk | RelayEose | RelayNotice | RelayClosed | RelayAuth


def _dump(data: list[Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def req_message(subscription: str, filters: list[dict[str, Any]]) -> str:
    """``["REQ", sub, filter, ...]``."""
    return _dump(["REQ", subscription, *filters])


def close_message(subscription: str) -> str:
    """``["CLOSE", sub]``."""
    return _dump(["CLOSE", subscription])


def event_message(event: Event) -> str:
    """``["EVENT", event]``: a publish."""
    return _dump(["EVENT", event.to_dict()])


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RelayMessageError(f"{what} must be a string")
    return value


def parse_relay_message(frame: str | bytes) -> RelayMessage:
    """One relay frame as a record; RelayMessageError if it is not one of NIP-01's."""
    if len(frame) > MAX_FRAME:
        raise RelayMessageError(f"relay frame is larger than {MAX_FRAME} bytes")
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        raise RelayMessageError("relay frame is not JSON") from None
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise RelayMessageError("relay frame is not a JSON array starting with a string")
    label, args = data[0], data[1:]
    match label, len(args):
        case "EVENT", 2:
            return RelayEvent(_str(args[0], "subscription id"), args[1])
        case "OK", 3 if isinstance(args[1], bool):
            return RelayOk(_str(args[0], "event id"), args[1], _str(args[2], "OK message"))
        case "EOSE", 1:
            return RelayEose(_str(args[0], "subscription id"))
        case "NOTICE", 1:
            return RelayNotice(_str(args[0], "notice"))
        case "CLOSED", 2:
            return RelayClosed(_str(args[0], "subscription id"), _str(args[1], "CLOSED message"))
        case "AUTH", 1:
            return RelayAuth(_str(args[0], "challenge"))
    raise RelayMessageError(f"unknown or malformed relay message {label[:16]!r}")
