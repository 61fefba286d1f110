"""The doors: one connector actor per platform, children of ``/connectors``.

A connector turns a platform's traffic into ``chat.Inbound`` (durable before
acknowledged), tells the user's actor ``chat.Received``, and delivers what the
actor tells it back (``chat.Deliver``). Connectors never import each other.
"""

from __future__ import annotations

from ._route import tell_author
from .http import HttpConnector
from .nostr import NostrConnector
from .telegram import TelegramConnector

__all__ = ["HttpConnector", "NostrConnector", "TelegramConnector", "tell_author"]
