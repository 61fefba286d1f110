"""Send pacing on trio's clock: per chat (~1 message/s) and for the whole bot (~30/s).

Telegram's limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
avoid more than one message per second in a chat and more than about 30 per
second overall; past them it answers 429 with ``retry_after``. Pacing spaces
sends evenly rather than allowing a burst and then a stall: the rejected
alternative, a token bucket, lets 30 sends through at once and then relies
on 429s, which Telegram punishes with longer waits.

:meth:`Pacer.reserve` is a pure function of (chat, now): it books the slot
before the caller sleeps, so two senders never get the same slot.
"""

from __future__ import annotations

import trio

__all__ = ["Pacer"]

#: Chats remembered before old entries are pruned (a slot in the past constrains nothing).
_MAX_CHATS = 10_000


class Pacer:
    """Spaces sends ``1/chat_per_s`` apart per chat and ``1/global_per_s`` apart overall."""

    def __init__(self, chat_per_s: float, global_per_s: float) -> None:
        if not chat_per_s > 0:
            raise ValueError(f"chat_per_s must be > 0, not {chat_per_s!r}")
        if not global_per_s > 0:
            raise ValueError(f"global_per_s must be > 0, not {global_per_s!r}")
        self.chat_gap = 1.0 / chat_per_s
        self.global_gap = 1.0 / global_per_s
        self._chat_next: dict[str, float] = {}  # chat -> earliest time of its next send
        self._global_next = float("-inf")  # earliest time of the bot's next send

    def reserve(self, chat_id: str, now: float) -> float:
        """Book the next slot for ``chat_id`` at or after ``now``; return its time."""
        at = max(now, self._chat_next.get(chat_id, now), self._global_next)
        self._chat_next[chat_id] = at + self.chat_gap
        self._global_next = at + self.global_gap
        if len(self._chat_next) > _MAX_CHATS:
            self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        return at

    def hold(self, chat_id: str, seconds: float, now: float) -> None:
        """Push ``chat_id``'s next slot ``seconds`` past ``now`` (a 429's ``retry_after``).

        Only that chat's: holding the whole bot for one chat's flood wait would
        stall every other chat (the 429 of a global flood reaches each sender)."""
        until = now + seconds
        self._chat_next[chat_id] = max(self._chat_next.get(chat_id, until), until)

    async def wait(self, chat_id: str) -> None:
        """Sleep until ``chat_id``'s next booked slot. A checkpoint; cancelled while
        sleeping, the slot stays booked (a later send only comes a gap later)."""
        await trio.sleep_until(self.reserve(chat_id, trio.current_time()))
