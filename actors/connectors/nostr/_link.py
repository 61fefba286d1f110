"""One open websocket to one relay: the subscription, the read loop, publishing.

:class:`RelayLink` is created by the relay's actor for each connection and
lives exactly as long as it. ``run`` subscribes, then reads frames until the
connection ends; events go to the hub, ``OK`` wakes whoever published that
event, ``EOSE`` marks the stored history as read (``since`` may advance),
``NOTICE`` is logged, ``CLOSED`` for our subscription ends the session (the
actor reconnects with backoff). A frame that is not a relay message is
counted and skipped: a relay's garbage never crashes the door.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from protocols.nostr import (
    Event,
    RelayAuth,
    RelayClosed,
    RelayEose,
    RelayEvent,
    RelayMessageError,
    RelayNotice,
    RelayOk,
    event_message,
    parse_relay_message,
    req_message,
)

if TYPE_CHECKING:
    from ._hub import Hub

__all__ = ["SUBSCRIPTION", "RelayLink", "SubscriptionClosed"]

SUBSCRIPTION = "greenroom"


class SubscriptionClosed(Exception):
    """The relay ended our subscription (``CLOSED``); the session is over."""


@dataclass
class _Slot:
    done: trio.Event = field(default_factory=trio.Event)
    result: tuple[bool, str] = (False, "no answer")


class RelayLink:
    """A live connection to ``url`` (see the module docstring)."""

    def __init__(self, url: str, ws: WebSocketConnection, hub: Hub, log: Any) -> None:
        self.url = url
        self.ws = ws
        self.hub = hub
        self.log = log
        self.caught_up = False  # EOSE seen: events from now on are live
        self._waiting: dict[str, list[_Slot]] = {}

    async def run(self, filters: list[dict[str, Any]]) -> None:
        """Subscribe and read until the connection closes (ConnectionClosed) or the relay
        closes the subscription (SubscriptionClosed). Cancellation closes nothing:
        the websocket's owner does. Storage errors propagate (the actor fails)."""
        try:
            await self.ws.send_message(req_message(SUBSCRIPTION, filters))
            while True:
                frame = await self.ws.get_message()
                await self._handle(frame)
        finally:
            for slots in self._waiting.values():
                for slot in slots:
                    slot.result = (False, "connection closed")
                    slot.done.set()

    async def _handle(self, frame: str | bytes) -> None:
        try:
            msg = parse_relay_message(frame)
        except RelayMessageError as exc:
            self.hub.bump("bad_frames")
            self.log.warning("nostr_bad_frame", relay=self.url, error=str(exc))
            return
        match msg:
            case RelayEvent(subscription=sub, event=data) if sub == SUBSCRIPTION:
                await self.hub.on_event(self.url, data, live=self.caught_up)
            case RelayEvent():
                pass  # a subscription we do not have (an old one): ignore
            case RelayOk(event_id=event_id, accepted=accepted, message=message):
                for slot in self._waiting.get(event_id, []):
                    # NIP-01: "duplicate:" means the relay already has it: as good as OK.
                    slot.result = (accepted or message.startswith("duplicate:"), message)
                    slot.done.set()
            case RelayEose(subscription=sub) if sub == SUBSCRIPTION:
                self.caught_up = True
                await self.hub.save_since(self.url)
                self.log.info("nostr_caught_up", relay=self.url)
            case RelayNotice(message=message):
                self.log.warning("nostr_notice", relay=self.url, notice=message[:500])
            case RelayClosed(subscription=sub, message=message) if sub == SUBSCRIPTION:
                raise SubscriptionClosed(f"{self.url} closed the subscription: {message[:200]}")
            case RelayAuth():
                self.log.info("nostr_auth_ignored", relay=self.url)  # NIP-42: not needed to read
            case _:
                pass

    async def publish(self, event: Event, timeout: float) -> tuple[bool, str]:
        """Send ``["EVENT", event]`` and wait up to ``timeout`` for the relay's OK.

        Returns (accepted, the relay's message or why not). Never raises for a
        closed connection or a timeout; cancellation leaves no slot behind."""
        slot = _Slot()
        self._waiting.setdefault(event.id, []).append(slot)
        try:
            await self.ws.send_message(event_message(event))
            with trio.move_on_after(timeout):
                await slot.done.wait()
            if not slot.done.is_set():
                return False, f"no OK within {timeout} s"
            return slot.result
        except ConnectionClosed:
            return False, "connection closed"
        finally:
            slots = self._waiting.get(event.id, [])
            if slot in slots:
                slots.remove(slot)
            if not slots:
                self._waiting.pop(event.id, None)
