"""The Telegram door (``/connectors/telegram``): Bot API long polling or webhook.

:class:`TelegramConnector` is the actor; :class:`BotApi` its Bot API client
(errors in ``TelegramError`` and below); :func:`parse_update` (from
``protocols.telegram``, which the HTTP door's webhook route shares) turns
Telegram's ``Update`` JSON into what the door does; :class:`Enricher` turns a
held voice or photo message into its transcript or description after the
200; :func:`split_text` cuts replies at Telegram's 4096-character limit;
:class:`Pacer` spaces sends per chat and overall.
"""

from __future__ import annotations

from protocols.telegram import BotIdentity, Callback, Ignored, Incoming, Media, parse_update

from ._actor import TelegramConnector
from ._api import BotApi, redact
from ._enrich import Describer, Enricher
from ._errors import ApiError, Conflict, RetryAfter, TelegramError, TelegramUnavailable
from ._intake import ANSWERS
from ._limits import Pacer
from ._outbox import ok_keyboard
from ._split import MAX_MESSAGE, split_text, utf16_len

__all__ = [
    "ANSWERS",
    "MAX_MESSAGE",
    "ApiError",
    "BotApi",
    "BotIdentity",
    "Callback",
    "Conflict",
    "Describer",
    "Enricher",
    "Ignored",
    "Incoming",
    "Media",
    "Pacer",
    "RetryAfter",
    "TelegramConnector",
    "TelegramError",
    "TelegramUnavailable",
    "ok_keyboard",
    "parse_update",
    "redact",
    "split_text",
    "utf16_len",
]
