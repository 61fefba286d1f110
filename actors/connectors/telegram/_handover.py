"""Handing stored messages to their authors' actors in the order they came, per chat.

A text message is ready when stored (its job is queued); a voice, audio or
photo message is held until enriched (see ``_enrich``). A user who sends a
photo and then asks "what is this?" must have the question answered with
the description in its context, so within one chat nothing is handed over
before a held message that came earlier: while a chat has a held message,
what follows it waits in that chat's queue, and one task per such chat works
the queue in order (enrich and release, hand over, next). A chat with
nothing held is handed over at once, in the caller's task, with no task
spawned: the common case costs one ``tell``.

Bounded: at most :data:`MAX_QUEUED` messages wait in all queues together.
Past it a held message is not queued (it stays held in storage; the door's
periodic resume finds it) and a ready one is handed over at once, out of
order rather than lost. Enrichment itself is limited by the door
(``max_enrichments`` at once).
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from protocols import Received
from supervision import correlated

__all__ = ["MAX_QUEUED", "Handover"]

#: Messages waiting in all chats' queues together.
MAX_QUEUED = 10_000


@dataclass(frozen=True, slots=True)
class _Held:
    message_id: int


_Item = Received | _Held


class Handover:
    """Per-chat ordered hand-over (see the module docstring).

    ``enrich(message_id)`` enriches and releases a held message and returns the
    ``Received`` to tell (or None); ``tell(received)`` hands one to its author's actor
    and never raises for the actor's sake; ``spawn(fn, *args, name=)`` runs a
    task the door owns.
    """

    def __init__(
        self,
        *,
        enrich: Callable[[int], Awaitable[Received | None]],
        tell: Callable[[Received], Awaitable[None]],
        spawn: Callable[..., Any],
        log: Any,
    ) -> None:
        self._enrich = enrich
        self._tell = tell
        self._spawn = spawn
        self.log = log
        self._queues: dict[str, collections.deque[_Item]] = {}
        self._held: set[int] = set()  # held message ids queued or being enriched
        self.waiting = 0  # items in all queues

    def holding(self, message_id: int) -> bool:
        """Whether ``message_id`` is queued or being enriched here. Not a checkpoint."""
        return message_id in self._held

    async def ready(self, received: Received) -> None:
        """Hand ``received`` over now, or queue it behind its chat's held messages.

        A checkpoint when it tells (``tell`` bounds its own wait)."""
        queue = self._queues.get(received.chat_id)
        if queue is None or self.waiting >= MAX_QUEUED:
            await self._tell(received)
            return
        queue.append(received)
        self.waiting += 1

    def hold(self, message_id: int, chat_id: str) -> bool:
        """Queue held ``message_id`` for enrichment once; False when it already is, or
        when the queues are full (it stays held in storage for the resume). Not a
        checkpoint; may spawn the chat's task."""
        if message_id in self._held:
            return False
        if self.waiting >= MAX_QUEUED:
            self.log.warning("telegram_enrich_queue_full", id=message_id, waiting=self.waiting,
                             outcome="left held for the periodic resume")  # fmt: skip
            return False
        self._held.add(message_id)
        queue = self._queues.get(chat_id)
        if queue is None:
            queue = self._queues[chat_id] = collections.deque()
            self._spawn(self._drain, chat_id, name=f"enrich-{chat_id}")
        queue.append(_Held(message_id))
        self.waiting += 1
        return True

    async def _drain(self, chat_id: str) -> None:
        """Work ``chat_id``'s queue in order until it is empty. Cancelled (the door
        stops), what is left is in storage: held messages stay held, ready ones have
        queued jobs that the periodic re-dispatch hands over."""
        queue = self._queues[chat_id]
        try:
            while queue:
                item = queue[0]
                if isinstance(item, _Held):
                    with correlated(f"m{item.message_id}"):
                        try:
                            received = await self._enrich(item.message_id)
                        finally:
                            self._held.discard(item.message_id)
                    if received is not None:
                        await self._tell(received)
                else:
                    await self._tell(item)
                queue.popleft()
                self.waiting -= 1
        finally:
            if not queue:
                del self._queues[chat_id]
