"""Chat messages: what a door hands the rest of greenroom, and what comes back.

A connector turns a platform update into :class:`Inbound` (untrusted input is
checked here, at construction) and the storage layer makes it durable before
the platform is acknowledged.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import AwareDatetime, Field, field_validator

from ._message import Message
from ._storable import storable_problem, storable_text_problem
from .wire import message

__all__ = [
    "INBOUND_KEY_PREFIX",
    "ApprovalResult",
    "Approve",
    "Deliver",
    "Inbound",
    "Received",
    "Reconcile",
    "Reconciled",
    "ReplyKind",
    "user_key",
]

#: Idempotency keys of inbound messages start with this; replies may not.
INBOUND_KEY_PREFIX = "in:"

# "telegram", "nostr", "http": lowercase, as in user keys "<platform>:<id>".
_PLATFORM_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def user_key(platform: str, user_id: str) -> str:
    """The key of a user's actor under ``/users``: ``"<platform>:<id>"``."""
    return f"{platform}:{user_id}"


@message("chat.Inbound")
class Inbound(Message):
    """One message a person sent on a platform, normalised by its connector.

    ``(platform, chat_id, message_id)`` identifies it: a second delivery of the
    same update (a webhook retry, a poller restart) has the same triple and is
    stored once. ``raw`` is the platform's payload as received, kept for audit
    and for artifacts a later step extracts.
    """

    platform: str
    chat_id: str = Field(min_length=1, max_length=256)
    user_id: str = Field(min_length=1, max_length=256)
    message_id: str = Field(min_length=1, max_length=256)
    text: str = ""
    author: str = Field(default="", max_length=256)
    sent_at: AwareDatetime | None = None  # the platform's time, with its zone
    raw: dict[str, Any] = Field(default_factory=dict)
    mode: str = Field(default="chat", min_length=1, max_length=64)

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        if not _PLATFORM_RE.fullmatch(value):
            raise ValueError(f"platform must match {_PLATFORM_RE.pattern}, not {value!r}")
        return value

    @field_validator("chat_id", "user_id", "message_id", "text", "author", "mode")
    @classmethod
    def _storable_text(cls, value: str) -> str:
        problem = storable_text_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("raw")
    @classmethod
    def _storable_raw(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = storable_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @property
    def user_key(self) -> str:
        """The author's actor key, ``"<platform>:<user_id>"``."""
        return user_key(self.platform, self.user_id)

    @property
    def idempotency_key(self) -> str:
        """The key that makes a second delivery of this message a no-op.

        ``in:`` then the JSON array of the triple: unambiguous whatever the ids
        hold (a plain ``in:a:b:c`` made chat ``a:b``/message ``c`` and chat
        ``a``/message ``b:c`` one message, and the second was lost). The ``in:``
        prefix is reserved for inbound messages.
        """
        triple = [self.platform, self.chat_id, self.message_id]
        return INBOUND_KEY_PREFIX + json.dumps(triple, ensure_ascii=False, separators=(",", ":"))


@message("chat.Received")
class Received(Message):
    """Told to ``/users/<platform>:<user_id>`` once an inbound message is durable.

    The connector sends it after ``Store.ingest`` returned (and only for a
    ``created`` record, so a redelivery does not wake the thread twice).
    """

    job_id: int
    message_id: int
    thread_id: int
    platform: str
    chat_id: str
    user_id: str
    text: str


ReplyKind = Literal["ack", "reply", "notice", "error"]


@message("chat.Deliver")
class Deliver(Message):
    """Told to ``/connectors/<platform>``: a reply recorded in the outbox, to send.

    The connector sends it and then calls ``Store.mark_sent(message_id)``. The
    same fields live in the stored message's ``raw`` (``kind``,
    ``approval_id``), so a connector restarted mid-way can rebuild it from
    ``Store.unsent_replies``.
    """

    message_id: int
    platform: str
    chat_id: str
    text: str
    kind: ReplyKind
    approval_id: int | None = None
    #: the inbound message's correlation id (``m<id>``), for the connector's log lines
    correlation_id: str = ""


@message("chat.Approve")
class Approve(Message):
    """Asked of a user's actor when its user pressed OK; answered with
    :class:`ApprovalResult`."""

    approval_id: int


@message("chat.ApprovalResult")
class ApprovalResult(Message):
    """What became of an OK: ``approved`` (work starts), ``superseded`` (a newer
    message replaced that plan), ``rejected``, or ``not_found`` (not this user's)."""

    status: Literal["approved", "superseded", "rejected", "not_found"]


@message("chat.Reconcile")
class Reconcile(Message):
    """Asked of ``/reconciler``: sweep now (as its timer does); answered with
    :class:`Reconciled`. Operators: ``greenroom ctl ask /reconciler chat.Reconcile '{}'``."""


@message("chat.Reconciled")
class Reconciled(Message):
    """What one sweep sent out again: queued jobs told to their user actors, unsent
    replies told to their doors, and what it left (no door for the platform, or
    tried ``max_resends`` times already)."""

    jobs: int
    replies: int
    skipped: int
