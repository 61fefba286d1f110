"""Telegram inside greenroom: the Bot API ``Update`` parser and the door's messages.

The webhook path (issue 10, item 8) runs in two places that import nothing of
each other: the HTTP door's ``POST /telegram/webhook`` route and the Telegram
door (``/connectors/telegram``). Both use what is here:

1. the route checks the secret header, parses the untrusted update with
   :func:`parse_update` (it learns who the bot is once, by asking the door
   :class:`Identify`), turns a message into its ``chat.Inbound`` with
   :func:`to_inbound` and stores it itself, in the request's own task, so
   concurrent webhooks share the Store's group commit: a text message with
   its queued job (``Store.ingest``), a voice/audio/photo message *held*,
   without a job (``Store.ingest_held``). A redelivery is found there and
   costs nothing more;
2. only then does it tell the door :class:`TelegramStored` (into its mailbox,
   waiting at most the ask timeout for room) and answer 200;
3. the door hands text messages to their authors' actors, and enriches held ones
   (download, transcript, image description) in work it owns, then releases
   them (their job is created) and hands them over: the author's actor reads
   the transcript with the message.

Updates that are not messages (the OK button's ``callback_query``) and those
the door ignores are asked of the door as :class:`TelegramUpdate`, as its
poller handles every update it fetches.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from ._message import Message
from ._storable import storable_problem
from ._telegram_updates import (
    PLATFORM,
    BotIdentity,
    Callback,
    Ignored,
    Incoming,
    Media,
    parse_update,
    to_inbound,
)
from .wire import message

__all__ = [
    "PLATFORM",
    "BotIdentity",
    "Callback",
    "Identify",
    "Ignored",
    "Incoming",
    "Media",
    "TelegramStored",
    "TelegramUpdate",
    "parse_update",
    "to_inbound",
]


@message("telegram.Update")
class TelegramUpdate(Message):
    """One Bot API ``Update`` object as received, asked of ``/connectors/telegram``;
    answered once it is handled (durable, or its button press answered) with
    ``"ingested"``, ``"duplicate"``, ``"callback"`` or ``"ignored"``, or
    ``"busy"`` before the door knows who the bot is (the route answers 503)."""

    update: dict[str, Any]

    @field_validator("update")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = storable_problem(value)
        if problem:
            raise ValueError(problem)
        return value


@message("telegram.Identify")
class Identify(Message):
    """Asked of ``/connectors/telegram``: who the bot is. Answered with a
    :class:`BotIdentity` once ``getMe`` answered, None before."""


@message("telegram.Stored")
class TelegramStored(Message):
    """Told to ``/connectors/telegram`` once an update's message is durable.

    ``job_id`` None means the message is held (a voice, audio or photo
    message waiting for its enrichment, with no job yet); otherwise the door
    hands it to its author's actor while ``queued`` says nobody has taken its job yet.
    ``created`` False is a redelivery: the door counts it and, as the first
    delivery's hand-over may have been lost with its request, hands over a job
    still queued again (harmless: a thread claims what is queued once) and
    makes sure a held message is being enriched. ``text`` is the stored text.
    """

    update_id: int
    message_id: int
    thread_id: int
    chat_id: str
    user_id: str
    created: bool
    job_id: int | None
    queued: bool
    text: str
