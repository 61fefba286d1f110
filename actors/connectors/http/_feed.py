"""Waking long-polls and event streams when a chat has something new.

The events themselves live in storage (``Store.replies_after``); this module
only says *when* to look again. A waiter enters :meth:`Feed.watch` **before**
it reads storage and waits on the event it got only if the read found
nothing: a reply delivered between the read and the wait has already set that
event, so no wake-up is lost (the rejected alternative, waiting on a fresh
event after the read, loses exactly that reply until the poll times out).

Only chats with someone waiting have an entry, so an idle door holds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["Feed", "FeedFull"]


class FeedFull(Exception):
    """Too many waiters at once (``max_waiters``): the caller answers 503."""


class _Slot:
    __slots__ = ("event", "waiters")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.waiters = 0


class Feed:
    """Per-chat wake-ups for readers of the event feed. One trio loop; not thread-safe."""

    def __init__(self, max_waiters: int) -> None:
        if max_waiters < 1:
            raise ValueError(f"max_waiters must be >= 1, not {max_waiters!r}")
        self.max_waiters = max_waiters
        self.waiting = 0  # waiters right now (a gauge for /metrics)
        self.closed = False
        self._slots: dict[str, _Slot] = {}
        self._closed_event = trio.Event()

    @contextmanager
    def watch(self, chat_id: str) -> Iterator[trio.Event]:
        """An event set by the next :meth:`notify` of ``chat_id`` (or by :meth:`close`).

        Enter it before reading storage; see the module docstring. Raises
        :class:`FeedFull` when ``max_waiters`` are already inside. Once the
        feed is closed the event is already set.
        """
        if self.closed:
            yield self._closed_event
            return
        if self.waiting >= self.max_waiters:
            raise FeedFull(f"{self.waiting} waiters already (max_waiters={self.max_waiters})")
        slot = self._slots.get(chat_id)
        if slot is None:
            slot = self._slots[chat_id] = _Slot()
        slot.waiters += 1
        self.waiting += 1
        try:
            yield slot.event
        finally:
            slot.waiters -= 1
            self.waiting -= 1
            if slot.waiters == 0 and self._slots.get(chat_id) is slot:
                del self._slots[chat_id]

    def notify(self, chat_id: str) -> None:
        """Wake everyone watching ``chat_id``. Not a checkpoint; cheap when nobody is."""
        slot = self._slots.pop(chat_id, None)
        if slot is not None:
            slot.event.set()

    def close(self) -> None:
        """Wake every waiter for good (the door is shutting down). Idempotent."""
        self.closed = True
        self._closed_event.set()
        slots, self._slots = self._slots, {}
        for slot in slots.values():
            slot.event.set()
