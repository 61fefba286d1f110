"""From ``chat.Deliver`` to the Nostr event that carries the reply.

A reply goes back the way its message came: a mention (kind 1) gets a kind-1
reply with NIP-10 tags, a NIP-04 DM a NIP-04 DM, a NIP-17 DM a gift wrap.
The origin is the stored inbound message the reply answers (``reply_to`` on
the outbox record), or else the thread's latest message from the user.

The event is built once and kept in connector state (``out:<message id>``)
before it is published: a re-send after a crash or an outage publishes the
same event (same id), which relays and clients deduplicate, so a reply is
never seen twice even if it is sent twice.
"""

from __future__ import annotations

import json

from protocols import Deliver
from protocols.nostr import (
    Event,
    make_private_message,
    nip04_encrypt,
    parse_event,
    reply_tags,
    sign,
)
from storage import Store, StoredMessage

from ._intake import PLATFORM, cut_utf8

__all__ = ["OK_HINT", "reply_event"]

#: Appended to an ack: on Nostr the OK action is a reply whose text is "OK".
OK_HINT = "Reply OK to go ahead."


async def _origin(store: Store, record: StoredMessage, chat_id: str) -> StoredMessage | None:
    if record.reply_to is not None:
        return await store.get_message(record.reply_to)
    thread = await store.get_thread(PLATFORM, chat_id)
    if thread is None:
        return None
    mine = [m for m in await store.recent_messages(thread.id, 30) if m.role == "user"]
    return mine[-1] if mine else None


def _build(
    secret: bytes, me: str, deliver: Deliver, origin: StoredMessage | None, now: int
) -> Event:
    text = deliver.text if deliver.kind != "ack" else f"{deliver.text}\n\n{OK_HINT}"
    text = cut_utf8(text, 16384)  # a gift wrap of this still fits relays' 64 KiB events
    peer = deliver.chat_id
    raw = origin.raw if origin is not None else {}
    match raw.get("protocol"):
        case "note":
            parent = parse_event(raw["event"])
            return sign(secret, 1, text, reply_tags(parent, me), now)
        case "nip04":
            tags = [["p", peer], ["e", raw["event"]["id"]]]
            return sign(secret, 4, nip04_encrypt(secret, peer, text), tags, now)
        case "nip17":
            return make_private_message(secret, peer, text, reply_to=raw["rumor"]["id"], now=now)[1]
        case _:  # no origin on record: answer privately, in the current standard
            return make_private_message(secret, peer, text, now=now)[1]


async def reply_event(store: Store, secret: bytes, me: str, deliver: Deliver) -> Event:
    """The event of this reply: the one built before, or a new one, recorded first.

    NotFound (storage) for an unknown message id. Cancelled half-way: either
    nothing was recorded or the event was, and the next call returns it."""
    key = f"out:{deliver.message_id}"
    kept = await store.get_state(PLATFORM, key)
    if kept is not None:
        return parse_event(json.loads(kept))
    record = await store.get_message(deliver.message_id)
    origin = await _origin(store, record, deliver.chat_id)
    event = _build(secret, me, deliver, origin, int(store.now().timestamp()))
    await store.set_state(PLATFORM, key, event.to_json())
    return event
