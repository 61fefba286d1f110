"""NIP-17 private messages in NIP-59 gift wraps: rumor (kind 14), seal (13), wrap (1059).

The rumor is the real message, unsigned, by the sender; the seal is it
NIP-44-encrypted to the recipient and signed by the sender; the wrap is the
seal NIP-44-encrypted again and signed by a throwaway key, so relays see
neither sender nor time (both seal and wrap get a ``created_at`` up to two
days in the past, as NIP-59 advises).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from coincurve import PrivateKey

from ._errors import DecryptError, InvalidEvent
from ._event import Event, parse_event, rumor, sign, unix_now, verify
from ._keys import public_key_of
from ._nip44 import conversation_key, nip44_decrypt, nip44_encrypt

__all__ = [
    "KIND_GIFT_WRAP",
    "KIND_PRIVATE_MESSAGE",
    "KIND_SEAL",
    "make_private_message",
    "seal",
    "unwrap",
    "wrap",
]

KIND_PRIVATE_MESSAGE = 14
KIND_SEAL = 13
KIND_GIFT_WRAP = 1059
#: NIP-59: timestamps are randomised up to two days into the past.
TWO_DAYS = 2 * 24 * 3600


def _past(now: int | None) -> int:
    now = unix_now() if now is None else now
    return now - secrets.randbelow(TWO_DAYS)


def seal(secret: bytes, recipient: str, inner: Event, *, now: int | None = None) -> Event:
    """The kind-13 seal of ``inner`` (a rumor) from ``secret``'s owner to ``recipient``."""
    content = nip44_encrypt(inner.to_json(), conversation_key(secret, recipient))
    return sign(secret, KIND_SEAL, content, (), _past(now))


def wrap(sealed: Event, recipient: str, *, now: int | None = None) -> Event:
    """The kind-1059 gift wrap of a seal, signed by a fresh one-time key."""
    throwaway = PrivateKey().secret
    content = nip44_encrypt(sealed.to_json(), conversation_key(throwaway, recipient))
    return sign(throwaway, KIND_GIFT_WRAP, content, [["p", recipient]], _past(now))


def make_private_message(
    secret: bytes,
    recipient: str,
    text: str,
    *,
    reply_to: str | None = None,
    now: int | None = None,
) -> tuple[Event, Event]:
    """(rumor, gift wrap) of a NIP-17 message ``text`` to ``recipient``; the wrap is what
    relays get. ``reply_to``: the id of the rumor this answers (an ``e`` tag). ``now``
    (Unix seconds; default the system clock) stamps the rumor; seal and wrap are
    back-dated from it at random, as NIP-59 asks."""
    tags: list[list[str]] = [["p", recipient]]
    if reply_to is not None:
        tags.append(["e", reply_to, "", "reply"])
    inner = rumor(public_key_of(secret), KIND_PRIVATE_MESSAGE, text, tags, now)
    return inner, wrap(seal(secret, recipient, inner, now=now), recipient, now=now)


def _open(payload: str, secret: bytes, author: str, what: str) -> Any:
    text = nip44_decrypt(payload, conversation_key(secret, author))
    try:
        return json.loads(text)
    except ValueError:
        raise DecryptError(f"the {what} does not hold JSON") from None


def unwrap(secret: bytes, gift: Event) -> tuple[Event, str]:
    """(rumor, sender's public key) inside a gift wrap addressed to ``secret``'s owner.

    The wrap itself must have been verified by the caller. DecryptError when a
    layer does not open; InvalidEvent when the seal is not a validly signed
    kind 13, or the rumor's author is not the seal's signer (an impersonation).
    """
    if gift.kind != KIND_GIFT_WRAP:
        raise InvalidEvent(f"a gift wrap has kind {KIND_GIFT_WRAP}, not {gift.kind}")
    sealed = verify(parse_event(_open(gift.content, secret, gift.pubkey, "gift wrap")))
    if sealed.kind != KIND_SEAL:
        raise InvalidEvent(f"a seal has kind {KIND_SEAL}, not {sealed.kind}")
    inner = parse_event(_open(sealed.content, secret, sealed.pubkey, "seal"), signed=False)
    if inner.pubkey != sealed.pubkey:
        raise InvalidEvent("the rumor's author is not the seal's signer")
    expected = rumor(inner.pubkey, inner.kind, inner.content, inner.tags, inner.created_at)
    if expected.id != inner.id:
        raise InvalidEvent("the rumor's id does not match its fields")
    return inner, sealed.pubkey
