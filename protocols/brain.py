"""What the brain is given and what it reports: context turns and the classified intent."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ._message import Message
from .wire import message

__all__ = ["ChatTurn", "Intent"]


@message("brain.ChatTurn")
class ChatTurn(Message):
    """One message of a thread's context, as the model sees it."""

    role: Literal["user", "assistant", "system"]
    text: str
    at: datetime
    #: who wrote a user turn, where a chat has several people (a group): their
    #: name as the platform gives it, else their user key; "" in a private chat
    author: str = ""
    #: extracted artifacts (voice transcripts, image JSON, ...), as stored
    artifacts: tuple[dict[str, Any], ...] = ()


@message("brain.Intent")
class Intent(Message):
    """The cheap model's reading of a message: the ``report_intent`` tool's input.

    ``summary`` and ``plan`` are one sentence each; the ack the user sees is
    ``Understood: <summary> Will: <plan>``.
    """

    intent: Literal["question", "command", "other"]
    summary: str = Field(min_length=1, max_length=400)
    plan: str = Field(min_length=1, max_length=400)
    needs_confirmation: bool
    confidence: float = Field(ge=0.0, le=1.0)
