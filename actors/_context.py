"""A chat's recent context, kept in the user's actor (DESIGN.md: context lives in
the actor).

Loaded from storage once, on the chat's first use after activation; after that
each refresh reads what was stored since, plus the newest ``OVERLAP`` it has
(``Store.messages_after``: its cost follows what is new, never the thread's
length), and the actor's own replies are written through as it records them.
Dropped with the actor on passivation; storage stays the truth after a crash, so
nothing here needs saving.

Every message of the chat is read, whoever wrote it: in a group the other
members' turns reach this member's context through the refresh, with their
author, and :meth:`ChatContext.own_turns` picks this user's own (memory is
extracted from those only).
"""

from __future__ import annotations

from protocols import ChatTurn
from storage import Store, StoredMessage

__all__ = ["OVERLAP", "ChatContext", "to_turn"]

#: Newest cached messages a refresh reads again (see ``ChatContext.refresh``).
OVERLAP = 16


def to_turn(message: StoredMessage, *, author: str = "") -> ChatTurn:
    """A stored message as the model sees it (``author`` only for a group's user turns)."""
    return ChatTurn(
        role=message.role,
        text=message.text,
        at=message.created_at,
        artifacts=tuple({"kind": a.kind, "content": a.content} for a in message.artifacts),
        author=author,
    )


class ChatContext:
    """The newest ``size`` messages of one chat thread, oldest first, and its summary.

    ``group``: the chat has several people (its id is not the user's own), so user
    turns are rendered with their author.
    """

    __slots__ = ("_by_id", "group", "loaded", "since_compaction", "size", "summary",
                 "thread_id")  # fmt: skip

    def __init__(self, thread_id: int, size: int, *, group: bool) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, not {size!r}")
        self.thread_id = thread_id
        self.size = size
        self.group = group
        self.summary = ""
        self.loaded = False
        #: messages added since the last compaction (a compaction needs new material)
        self.since_compaction = 0
        self._by_id: dict[int, StoredMessage] = {}

    @property
    def messages(self) -> list[StoredMessage]:
        """The cached messages, oldest first."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def get(self, message_id: int) -> StoredMessage | None:
        """A cached message, or None."""
        return self._by_id.get(message_id)

    async def refresh(self, store: Store) -> None:
        """Bring the cache up to date with storage: the whole window on first use, then
        what was stored since (with an overlap, see the comment). A checkpoint;
        cancelled, the cache is as it was or merely fresher. Storage errors propagate."""
        if not self.loaded:
            thread = await store.thread_by_id(self.thread_id)
            recent = await store.recent_messages(self.thread_id, self.size)
            self.summary = thread.summary if thread is not None else ""
            self._merge(recent)
            self.since_compaction = 0 if self.summary else len(recent)
            self.loaded = True
            return
        ids = sorted(self._by_id)
        # Re-read the newest OVERLAP cached ids too: on Postgres ids are not handed
        # out in commit order, so a message (another group member's reply) that got
        # a lower id than one already read, and committed after that read, is found
        # on the next refresh instead of being skipped for good.
        after = ids[-OVERLAP - 1] if len(ids) > OVERLAP else 0
        limit = self.size + OVERLAP
        new = await store.messages_after(self.thread_id, after, limit=limit)
        self._merge(new)
        if len(new) == limit:
            # More is new than the window holds: take the window itself (indexed,
            # its cost does not grow with the thread) rather than page through it.
            self._merge(await store.recent_messages(self.thread_id, self.size))

    def add(self, message: StoredMessage) -> None:
        """Write through a message this actor just recorded (its reply). Not a checkpoint."""
        if message.id not in self._by_id:
            self._by_id[message.id] = message
            self.since_compaction += 1
            self._trim()

    def _merge(self, messages: list[StoredMessage]) -> None:
        for m in messages:
            if m.id not in self._by_id:
                self.since_compaction += 1
            self._by_id[m.id] = m  # a re-read copy may carry artifacts added since
        self._trim()

    def _trim(self) -> None:
        extra = len(self._by_id) - self.size
        if extra > 0:
            for key in sorted(self._by_id)[:extra]:
                del self._by_id[key]

    def turns(self, before: int, limit: int) -> list[ChatTurn]:
        """The context for a call about message ``before``: the summary (as a system
        turn), then the last ``limit`` messages stored before it, oldest first. The
        message itself is not included (the brain is given it on its own)."""
        earlier = [m for m in self.messages if m.id < before][-limit:]
        turns = [self.turn(m) for m in earlier]
        if self.summary and turns:
            summary = ChatTurn(
                role="system", text=f"Summary of earlier messages: {self.summary}", at=turns[0].at
            )
            turns.insert(0, summary)
        return turns

    def turn(self, m: StoredMessage) -> ChatTurn:
        """``m`` as a turn of this chat (with its author in a group)."""
        author = ""
        if self.group and m.role == "user":
            author = m.author or (f"user {m.user_id}" if m.user_id is not None else "someone")
        return to_turn(m, author=author)

    def own_turns(self, user_id: int) -> list[ChatTurn]:
        """This user's own turns in the cache (``users.id`` ``user_id``), oldest first."""
        return [to_turn(m) for m in self.messages if m.role == "user" and m.user_id == user_id]
