"""From a relay's event to ``chat.Inbound``: verify, address, decrypt, normalise.

:func:`to_inbound` is pure (no I/O): it either returns the Inbound of a
verified event addressed to the bot, ``None`` for an event that is valid but
not for us (another kind, no ``p`` tag of ours, our own event), or raises
:class:`Dropped` saying why the event was refused (``invalid`` id, signature
or shape; ``undecryptable`` DM). The Inbound's ``raw`` keeps what a reply
needs: the protocol it came in and the event (or NIP-17 rumor) to answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from protocols import Inbound
from protocols.nostr import (
    KIND_GIFT_WRAP,
    KIND_PRIVATE_MESSAGE,
    DecryptError,
    Event,
    InvalidEvent,
    InvalidKey,
    nip04_decrypt,
    parse_event,
    unwrap,
    verify,
)

__all__ = ["PLATFORM", "Dropped", "Protocol", "cut_utf8", "to_inbound"]

PLATFORM = "nostr"
Protocol = Literal["note", "nip04", "nip17"]
KIND_NOTE = 1
KIND_DM = 4


class Dropped(Exception):
    """An event refused on arrival; ``reason`` is ``invalid`` or ``undecryptable``."""

    def __init__(self, reason: Literal["invalid", "undecryptable"], detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def cut_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def _when(seconds: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _open(event: Event, secret: bytes) -> tuple[Protocol, str, str, Event, dict[str, Any]]:
    """(protocol, sender, text, the event to answer, raw) of an event for us."""
    match event.kind:
        case 1:
            return "note", event.pubkey, event.content, event, {"event": event.to_dict()}
        case 4:
            text = nip04_decrypt(secret, event.pubkey, event.content)
            return "nip04", event.pubkey, text, event, {"event": event.to_dict()}
        case _:
            inner, sender = unwrap(secret, event)
            raw = {"wrap_id": event.id, "rumor": inner.to_dict()}
            return "nip17", sender, inner.content, inner, raw


def to_inbound(data: Any, secret: bytes, me: str, max_text_bytes: int) -> Inbound | None:
    """The Inbound of one event from a relay (see the module docstring)."""
    try:
        event = verify(parse_event(data))
    except InvalidEvent as exc:
        raise Dropped("invalid", str(exc)) from None
    if event.kind not in (KIND_NOTE, KIND_DM, KIND_GIFT_WRAP) or me not in event.tag_values("p"):
        return None
    if event.pubkey == me:
        return None  # our own reply, seen again
    try:
        protocol, sender, text, answer, raw = _open(event, secret)
    except (DecryptError, InvalidEvent, InvalidKey) as exc:
        raise Dropped("undecryptable", str(exc)) from None
    if protocol == "nip17" and (answer.kind != KIND_PRIVATE_MESSAGE or sender == me):
        return None  # a gift-wrapped something else (NIP-59 carries any kind)
    try:
        return Inbound(
            platform=PLATFORM,
            chat_id=sender,
            user_id=sender,
            message_id=event.id,
            text=cut_utf8(text, max_text_bytes),
            sent_at=_when(answer.created_at),
            raw={"protocol": protocol, **raw},
        )
    except ValidationError as exc:  # NUL or lone surrogates: not storable
        problem = exc.errors()[0].get("msg", "invalid")
        raise Dropped("invalid", f"cannot be stored: {problem}") from None
