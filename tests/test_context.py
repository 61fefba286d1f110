"""The per-chat context cache (``actors._context``): loaded once, then refreshed.

Review of issue 10: on Postgres message ids are not handed out in commit order,
so a message that got a lower id than one the cache already read, and committed
after that read (another group member's reply), was skipped for good by a
refresh that read only ``id > newest read``. The refresh now re-reads the newest
``OVERLAP`` cached messages. The order of commits cannot be scheduled on a real
server deterministically, so these tests drive the cache through a double of the
three Store reads it makes, holding messages by id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from actors._context import OVERLAP, ChatContext
from storage import StoredMessage

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def msg(n: int) -> StoredMessage:
    return StoredMessage(
        id=n, thread_id=1, role="user", author="", text=f"m{n}", platform_message_id=None,
        idempotency_key=f"k{n}", reply_to=None, raw={}, created_at=AT, sent_at=None, user_id=7,
    )  # fmt: skip


class Committed:
    """What a reader sees: the messages committed so far, by id."""

    def __init__(self) -> None:
        self.rows: dict[int, StoredMessage] = {}
        self.reads: list[tuple[str, int]] = []

    async def thread_by_id(self, thread_id: int) -> None:
        return None

    async def recent_messages(self, thread_id: int, limit: int) -> list[StoredMessage]:
        self.reads.append(("recent", limit))
        return [self.rows[k] for k in sorted(self.rows)][-limit:]

    async def messages_after(
        self, thread_id: int, after_id: int, *, limit: int
    ) -> list[StoredMessage]:
        self.reads.append(("after", after_id))
        return [self.rows[k] for k in sorted(self.rows) if k > after_id][:limit]


async def test_a_message_committed_late_with_a_lower_id_is_not_skipped() -> None:
    db = Committed()
    for n in range(1, 21):
        db.rows[n] = msg(n)
    context = ChatContext(1, 41, group=True)
    await context.refresh(db)  # type: ignore[arg-type]
    db.rows[22] = msg(22)  # committed first ...
    await context.refresh(db)  # type: ignore[arg-type]
    db.rows[21] = msg(21)  # ... though 21 was handed out before it
    await context.refresh(db)  # type: ignore[arg-type]
    assert [m.id for m in context.messages] == list(range(1, 23))


async def test_a_refresh_reads_the_overlap_and_what_is_new_not_the_thread() -> None:
    db = Committed()
    for n in range(1, 101):
        db.rows[n] = msg(n)
    context = ChatContext(1, 41, group=False)
    await context.refresh(db)  # type: ignore[arg-type]
    assert db.reads == [("recent", 41)]
    db.rows[101] = msg(101)
    await context.refresh(db)  # type: ignore[arg-type]
    assert db.reads[-1] == ("after", 100 - OVERLAP)
    assert [m.id for m in context.messages] == list(range(61, 102))
    # More new than the window: the window itself is read, not every page.
    for n in range(102, 302):
        db.rows[n] = msg(n)
    await context.refresh(db)  # type: ignore[arg-type]
    assert db.reads[-1] == ("recent", 41)
    assert [m.id for m in context.messages] == list(range(261, 302))
