"""``/connectors/nostr``: the Nostr door, a supervisor with one child per relay.

::

    /connectors/nostr               NostrConnector: replies (chat.Deliver), re-sends
    ├── relay.example.com           RelayActor: websocket, subscription, reconnect
    └── 127.0.0.1:7447              ...

Inbound: each relay actor reads its relay and hands every event to the
shared :class:`Hub`, which verifies it, stores it once (by event id) and
tells the user's actor. Outbound: ``chat.Deliver`` starts a task that builds
the reply event (kept in storage before it is sent), publishes it to every
connected relay and marks the reply sent once at least one relay said OK.
A reply no relay accepted stays in the outbox and is re-sent whenever a
relay (re)connects, and at start. The bot's secret key is parsed once here
(an invalid NOSTR_PRIVATE_KEY fails the door with InvalidKey, never logged).
"""

from __future__ import annotations

from typing import Any

import trio

from config import Settings
from protocols import Deliver
from protocols.nostr import parse_secret_key, public_key_of
from storage import Store
from supervision import NO_BACKOFF, Backoff, ChildSpec, Supervisor, correlated

from ._hub import Hub
from ._intake import PLATFORM
from ._outbox import reply_event
from ._relay import Connect, RelayActor, relay_names

__all__ = ["NostrConnector"]

#: Unsent replies re-sent per sweep.
_SWEEP_BATCH = 500


class NostrConnector(Supervisor):
    """The Nostr door (see the module docstring). Accepts ``chat.Deliver``."""

    accepts = (Deliver,)

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        connect: Connect | None = None,
        backoff: Backoff = NO_BACKOFF,
    ) -> None:
        if settings.nostr_private_key is None:
            raise ValueError("the Nostr door needs NOSTR_PRIVATE_KEY")
        secret = parse_secret_key(settings.nostr_private_key.get_secret_value())
        self.hub = Hub(settings, store, secret, public_key_of(secret))
        self.store = store
        self._inflight: set[int] = set()
        extra = {} if connect is None else {"connect": connect}
        hub = self.hub
        children = [
            ChildSpec(name, lambda url=url: RelayActor(url, hub, **extra))
            for url, name in relay_names(settings.nostr.relays).items()
        ]
        sup = settings.supervision
        super().__init__(
            children, max_restarts=sup.max_restarts, within_s=sup.within_s, backoff=backoff
        )

    def __repr__(self) -> str:
        return f"NostrConnector(me={self.hub.me!r})"

    async def on_start(self) -> None:
        """Start one child per relay (each returns at once) and the re-send task."""
        self.hub.system = self.system
        self.log.info("nostr_door", pubkey=self.hub.me, relays=len(self.hub.settings.nostr.relays))
        await super().on_start()
        self.spawn_task(self._resend_forever, name="resend")

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Deliver(platform=platform, message_id=message_id) if platform != PLATFORM:
                self.log.warning("deliver_wrong_platform", platform=platform, id=message_id)
            case Deliver():
                if msg.message_id not in self._inflight:
                    self._inflight.add(msg.message_id)
                    self.spawn_task(self._send, msg, name=f"send-{msg.message_id}")
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")
        return None

    async def _send(self, deliver: Deliver) -> None:
        """Build (or reload) the reply's event, publish it, mark it sent on an OK."""
        with correlated(deliver.correlation_id):
            await self._publish(deliver)

    async def _publish(self, deliver: Deliver) -> None:
        try:
            record = await self.store.get_message(deliver.message_id)
            if record.sent_at is not None:
                return
            event = await reply_event(self.store, self.hub.secret, self.hub.me, deliver)
            accepted = await self.hub.publish(event)
            if accepted:
                self.hub.bump("published")
                await self.store.mark_sent(deliver.message_id, event.id)
                self.log.info("nostr_sent", id=deliver.message_id, event_id=event.id,
                              kind=event.kind, relays=accepted)  # fmt: skip
            else:
                self.hub.bump("unsent")
                self.log.warning("nostr_unsent", id=deliver.message_id,
                                 relays=len(self.hub.links))  # fmt: skip
        finally:
            self._inflight.discard(deliver.message_id)

    async def _resend_forever(self) -> None:
        """Each time a relay connects, hand every unsent reply to ``_send`` again."""
        while True:
            await self.hub.connected.wait()
            self.hub.connected = trio.Event()
            for pending in await self.store.unsent_replies(PLATFORM, limit=_SWEEP_BATCH):
                deliver = pending.deliver()
                if deliver.message_id not in self._inflight:
                    self._inflight.add(deliver.message_id)
                    await self._send(deliver)
