"""The Nostr door (``/connectors/nostr``): relays over websockets; mentions and DMs."""

from __future__ import annotations

from ._actor import NostrConnector
from ._hub import Counters, Hub
from ._outbox import OK_HINT
from ._relay import RelayActor, reconnect_delay, relay_names

__all__ = [
    "OK_HINT",
    "Counters",
    "Hub",
    "NostrConnector",
    "RelayActor",
    "reconnect_delay",
    "relay_names",
]
