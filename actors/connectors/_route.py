"""What the doors share: handing a stored message to its author's actor, and storing
a Telegram message (the Telegram door's poller and the HTTP door's webhook route
both do, and neither imports the other)."""

from __future__ import annotations

from typing import Any

import structlog
import trio

from protocols import Received, user_key
from protocols.telegram import Ignored, Incoming, TelegramStored, to_inbound
from storage import Store
from supervision import ActorSystem, EntityRef, KernelError, UnknownPath, correlated

__all__ = ["store_telegram", "tell_author"]

_log = structlog.get_logger("greenroom.connectors")


async def tell_author(system: ActorSystem, received: Received, *, timeout_s: float) -> bool:
    """Tell the author's actor (``/users/<platform>:<user_id>``) ``received``, under
    its message's correlation id; True when it was told.

    Never raises for the actor's sake: the message and its queued job are in
    storage, so an actor that cannot take it now (mailbox full for
    ``timeout_s``, directory down) only delays it until the reconciler
    re-dispatches queued jobs; that is logged as ``received_not_told``. A
    checkpoint; cancellation leaves the job queued.
    """
    key = user_key(received.platform, received.user_id)
    with correlated(f"m{received.message_id}"), trio.move_on_after(timeout_s):
        try:
            await EntityRef(system.lookup("/users"), key).tell(received)
            return True
        except (KernelError, UnknownPath, ValueError) as exc:  # ValueError: no valid key
            _log.error("received_not_told", user=key, error=repr(exc))
            return False
    _log.error("received_not_told", user=key, error="mailbox full")
    return False


async def store_telegram(
    store: Store, inc: Incoming, update: dict[str, Any]
) -> TelegramStored | Ignored:
    """Store a Telegram message (see ``protocols.telegram``): a text message with its
    queued job (group-committed), a media message held until its door enriched it.
    The :class:`TelegramStored` to act on, or :class:`Ignored` when it is
    unstorable. Durable when it returns; raises what the Store raises."""
    inbound = to_inbound(inc, update)
    if isinstance(inbound, Ignored):
        return inbound
    if inc.media is None:
        result = await store.ingest(inbound)
        message, thread, created = result.message, result.thread, result.created
        job_id: int | None = result.job.id
        queued = result.job.status == "queued"
    else:
        message, thread, created = await store.ingest_held(inbound)
        job_id, queued = None, False
        if not created:
            # A redelivery: if it was released meanwhile it has its job, and must
            # not go back into the door's queue for enrichment (rare: one read).
            job = await store.job_for_message(message.id)
            if job is not None:
                job_id, queued = job.id, job.status == "queued"
    return TelegramStored(
        update_id=inc.update_id,
        message_id=message.id,
        thread_id=thread.id,
        chat_id=inc.chat_id,
        user_id=inc.user_id,
        created=created,
        job_id=job_id,
        queued=queued,
        text=message.text,
    )
