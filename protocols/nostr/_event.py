"""NIP-01 events: the shape, the id, BIP-340 signatures; NIP-10 reply tags.

:func:`parse_event` turns untrusted JSON (already decoded) into an
:class:`Event` or raises :class:`InvalidEvent`; :func:`verify` checks the id
and the signature. :func:`sign` makes a new event; :func:`rumor` an unsigned
one (NIP-59's rumor: it has an id, never a signature).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from coincurve import PrivateKey, PublicKeyXOnly

from .._clock import system_clock
from ._errors import InvalidEvent, InvalidKey
from ._keys import public_key_of

__all__ = ["Event", "event_id", "parse_event", "reply_tags", "rumor", "sign", "verify"]

_HEX = frozenset("0123456789abcdef")
#: Tags past this many, or content past this many characters, are refused unread.
MAX_TAGS = 2000
MAX_CONTENT = 1 << 20


@dataclass(frozen=True)
class Event:
    """One Nostr event. ``sig`` is ``""`` for a rumor (NIP-59: unsigned)."""

    id: str
    pubkey: str
    created_at: int
    kind: int
    tags: tuple[tuple[str, ...], ...]
    content: str
    sig: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The event as NIP-01 JSON (``sig`` left out of a rumor)."""
        out: dict[str, Any] = {
            "id": self.id,
            "pubkey": self.pubkey,
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": [list(t) for t in self.tags],
            "content": self.content,
        }
        if self.sig:
            out["sig"] = self.sig
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def tag_values(self, name: str) -> list[str]:
        """The first value of every tag called ``name``, in order."""
        return [t[1] for t in self.tags if len(t) >= 2 and t[0] == name]


def event_id(pubkey: str, created_at: int, kind: int, tags: Any, content: str) -> str:
    """The NIP-01 id: sha256 of the compact JSON array, non-ASCII kept as UTF-8."""
    data = [0, pubkey, created_at, kind, [list(t) for t in tags], content]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _int(value: Any, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise InvalidEvent(f"{name} must be an integer in 0..{high}")
    return value


def parse_event(data: Any, *, signed: bool = True) -> Event:
    """An :class:`Event` from decoded JSON; InvalidEvent naming the first bad field.

    Only the shape is checked here; call :func:`verify` for the id and signature.
    ``signed=False`` accepts a rumor (no ``sig``).
    """
    if not isinstance(data, dict):
        raise InvalidEvent("an event must be a JSON object")
    for name, length in (("id", 64), ("pubkey", 64)):
        if not _is_hex(data.get(name), length):
            raise InvalidEvent(f"{name} must be {length} lowercase hex characters")
    sig = data.get("sig", "")
    if (signed or sig) and not _is_hex(sig, 128):
        raise InvalidEvent("sig must be 128 lowercase hex characters")
    created_at = _int(data.get("created_at"), "created_at", (1 << 53) - 1)
    kind = _int(data.get("kind"), "kind", 65535)
    content = data.get("content")
    if not isinstance(content, str) or len(content) > MAX_CONTENT:
        raise InvalidEvent(f"content must be a string of at most {MAX_CONTENT} characters")
    tags = data.get("tags")
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise InvalidEvent(f"tags must be a list of at most {MAX_TAGS} lists")
    if not all(isinstance(t, list) and all(isinstance(v, str) for v in t) for t in tags):
        raise InvalidEvent("every tag must be a list of strings")
    return Event(
        id=data["id"],
        pubkey=data["pubkey"],
        created_at=created_at,
        kind=kind,
        tags=tuple(tuple(t) for t in tags),
        content=content,
        sig=sig,
    )


def verify(event: Event) -> Event:
    """Return ``event`` if its id is the hash of its fields and its BIP-340 signature is
    the author's over that id; raise InvalidEvent otherwise (also for a rumor)."""
    if event_id(event.pubkey, event.created_at, event.kind, event.tags, event.content) != event.id:
        raise InvalidEvent("id does not match the event's fields")
    if not event.sig:
        raise InvalidEvent("the event is not signed")
    try:
        key = PublicKeyXOnly(bytes.fromhex(event.pubkey))
        good = key.verify(bytes.fromhex(event.sig), bytes.fromhex(event.id))
    except (ValueError, TypeError):
        raise InvalidEvent("pubkey is not a point on secp256k1") from None
    if not good:
        raise InvalidEvent("bad signature")
    return event


def unix_now() -> int:
    """Now in Unix seconds, by the system clock (``protocols.system_clock``): the
    default ``created_at`` of events built without one. The door passes its own."""
    return int(system_clock().timestamp())


def rumor(
    pubkey: str, kind: int, content: str, tags: Any = (), created_at: int | None = None
) -> Event:
    """An unsigned event with its id (NIP-59's rumor)."""
    at = unix_now() if created_at is None else created_at
    tag_tuple = tuple(tuple(t) for t in tags)
    return Event(
        event_id(pubkey, at, kind, tag_tuple, content), pubkey, at, kind, tag_tuple, content
    )


def sign(
    secret: bytes, kind: int, content: str, tags: Any = (), created_at: int | None = None
) -> Event:
    """A new event by the owner of ``secret``, signed (BIP-340, fresh auxiliary randomness)."""
    base = rumor(public_key_of(secret), kind, content, tags, created_at)
    try:
        sig = PrivateKey(secret).sign_schnorr(bytes.fromhex(base.id), os.urandom(32))
    except (ValueError, TypeError):
        raise InvalidKey("secret key is not valid for secp256k1") from None
    return Event(
        base.id, base.pubkey, base.created_at, base.kind, base.tags, base.content, sig.hex()
    )


def reply_tags(parent: Event, me: str) -> list[list[str]]:
    """NIP-10 tags of a reply to ``parent``: the thread's root and the parent as marked
    ``e`` tags, and ``p`` tags for the parent's author and everyone it tagged (not ``me``)."""
    root = next((t[1] for t in parent.tags if len(t) >= 4 and t[0] == "e" and t[3] == "root"), None)
    tags: list[list[str]] = []
    if root is not None and root != parent.id:
        tags.append(["e", root, "", "root"])
        tags.append(["e", parent.id, "", "reply"])
    else:
        tags.append(["e", parent.id, "", "root"])
    people = [parent.pubkey, *parent.tag_values("p")]
    seen: set[str] = set()
    for person in people:
        if person != me and person not in seen and _is_hex(person, 64):
            seen.add(person)
            tags.append(["p", person])
    return tags
