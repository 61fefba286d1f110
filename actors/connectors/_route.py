"""What every door does with a stored message: hand it to its author's thread."""

from __future__ import annotations

import structlog
import trio

from protocols import user_key
from storage import IngestResult
from supervision import ActorSystem, EntityRef, KernelError, UnknownPath, correlated

__all__ = ["hand_off"]

_log = structlog.get_logger("greenroom.connectors")


async def hand_off(
    system: ActorSystem,
    result: IngestResult,
    user_id: str,
    *,
    timeout_s: float,
    text: str | None = None,
) -> None:
    """Tell the author's thread (``/users/<platform>:<user_id>``) the ``chat.Received``
    for a message ``Store.ingest`` made durable, under its correlation id.

    Never raises for the thread's sake: the message and its queued job are in
    storage, so a thread that cannot take it now (mailbox full for
    ``timeout_s``, directory down) only delays it until ``greenroom run``
    re-dispatches queued jobs; that is logged as ``received_not_told``. A
    checkpoint; cancellation leaves the job queued.
    """
    key = user_key(result.thread.platform, user_id)
    with correlated(f"m{result.message.id}"), trio.move_on_after(timeout_s) as cs:
        try:
            await EntityRef(system.lookup("/users"), key).tell(result.received(user_id, text))
        except (KernelError, UnknownPath) as exc:
            _log.error("received_not_told", thread=key, error=repr(exc))
    if cs.cancelled_caught:
        _log.error("received_not_told", thread=key, error="mailbox full")
