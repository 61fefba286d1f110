"""Chat messages: what a door hands the rest of greenroom, and what comes back.

A connector turns a platform update into :class:`Inbound` (untrusted input is
checked here, at construction) and the storage layer makes it durable before
the platform is acknowledged.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from ._message import Message
from .wire import message

__all__ = ["Inbound", "user_key"]

# "telegram", "nostr", "http": lowercase, as in user keys "<platform>:<id>".
_PLATFORM_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Postgres TEXT and JSONB refuse NUL; refusing it here, at the door, gives both
# storage backends the same contract and the connector one clear error.
_NUL = "\x00"


def _holds_nul(value: Any) -> bool:
    match value:
        case str():
            return _NUL in value
        case dict():
            return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
        case list() | tuple():
            return any(_holds_nul(v) for v in value)
        case _:
            return False


def user_key(platform: str, user_id: str) -> str:
    """The key of a user's thread actor under ``/users``: ``"<platform>:<id>"``."""
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
    sent_at: datetime | None = None
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
    def _no_nul(cls, value: str) -> str:
        if _NUL in value:
            raise ValueError("must not contain NUL (U+0000)")
        return value

    @model_validator(mode="after")
    def _raw_is_storable(self) -> Inbound:
        try:
            json.dumps(self.raw, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"raw must be JSON-serialisable: {exc}") from None
        if _holds_nul(self.raw):
            raise ValueError("raw must not contain NUL (U+0000)")
        return self

    @property
    def user_key(self) -> str:
        """The author's thread key, ``"<platform>:<user_id>"``."""
        return user_key(self.platform, self.user_id)

    @property
    def idempotency_key(self) -> str:
        """The key that makes a second delivery of this message a no-op."""
        return f"in:{self.platform}:{self.chat_id}:{self.message_id}"
