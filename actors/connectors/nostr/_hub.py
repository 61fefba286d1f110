"""What the Nostr door's actors share in one incarnation: keys, links, counters.

:class:`Hub` is made by ``/connectors/nostr`` and handed to each relay actor.
It ingests events (deduplicated by event id in storage: the same event from
three relays is routed once), keeps each relay's ``since`` in connector
state, and publishes a reply to every relay connected at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from config import Settings
from protocols.nostr import KIND_GIFT_WRAP, Event
from storage import Store
from supervision import ActorSystem

from .._route import tell_author
from ._intake import PLATFORM, Dropped, to_inbound
from ._link import RelayLink

__all__ = ["Counters", "Hub"]

_log = structlog.get_logger("greenroom.nostr")

#: NIP-59 gift wraps are back-dated up to two days: ask for them that much earlier.
_WRAP_LOOKBACK_S = 2 * 24 * 3600


@dataclass
class Counters:
    """What the door has seen since it started (read by tests and operators)."""

    received: int = 0  # events routed to a user actor
    duplicates: int = 0  # events already stored (another relay, a replay)
    ignored: int = 0  # valid but not for us
    invalid: int = 0  # bad id, signature or shape: dropped
    undecryptable: int = 0  # DMs that did not open: dropped
    bad_frames: int = 0  # relay frames that were not relay messages
    published: int = 0  # replies at least one relay accepted
    unsent: int = 0  # replies no relay accepted (left in the outbox)


@dataclass
class Hub:
    """See the module docstring. ``system`` is set by the connector before its children start."""

    settings: Settings
    store: Store
    secret: bytes
    me: str  # the bot's public key, hex
    #: Unix seconds for ``since``; None: the Store's clock (the one clock)
    now: Callable[[], float] | None = None
    system: ActorSystem | None = None
    counters: Counters = field(default_factory=Counters)
    links: dict[str, RelayLink] = field(default_factory=dict)
    #: Set whenever a relay connects: the connector then re-sends what is unsent.
    connected: trio.Event = field(default_factory=trio.Event)

    #: Replaced each time a counter moves: ``wait_until`` wakes on it (tests, operators).
    _moved: trio.Event = field(default_factory=trio.Event, repr=False)

    def unix_now(self) -> int:
        """Now in Unix seconds: ``now`` if given, else the Store's clock."""
        return int(self.now() if self.now is not None else self.store.now().timestamp())

    def bump(self, counter: str) -> None:
        """Add one to ``counters.<counter>`` and wake ``wait_until``."""
        setattr(self.counters, counter, getattr(self.counters, counter) + 1)
        self._moved.set()
        self._moved = trio.Event()

    async def wait_until(self, predicate: Callable[[Counters], bool]) -> Counters:
        """Return once ``predicate(counters)`` holds (at once if it does). A checkpoint
        only while waiting; cancellation leaves nothing behind."""
        while not predicate(self.counters):
            await self._moved.wait()
        return self.counters

    def __repr__(self) -> str:  # never show the secret key, not even in a traceback
        return f"Hub(me={self.me!r}, relays={sorted(self.links)!r})"

    # ------------------------------------------------------------------ links
    def attach(self, link: RelayLink) -> None:
        self.links[link.url] = link
        self.connected.set()

    def detach(self, link: RelayLink) -> None:
        if self.links.get(link.url) is link:
            del self.links[link.url]

    # ------------------------------------------------------------------ since
    async def filters(self, url: str) -> list[dict[str, Any]]:
        """The subscription for ``url``: notes and NIP-04 DMs tagging the bot since the
        stored ``since`` (less the overlap; now on a first start), gift wraps two days
        earlier."""
        stored = await self.store.get_state(PLATFORM, f"since:{url}")
        base = int(stored) if stored is not None and stored.isdigit() else self.unix_now()
        since = max(0, base - self.settings.nostr.since_overlap_s)
        return [
            {"kinds": [1, 4], "#p": [self.me], "since": since},
            {"kinds": [KIND_GIFT_WRAP], "#p": [self.me], "since": max(0, since - _WRAP_LOOKBACK_S)},
        ]

    async def save_since(self, url: str) -> None:
        """Everything from ``url`` up to now has been handled: remember now."""
        await self.store.set_state(PLATFORM, f"since:{url}", str(self.unix_now()))

    # ------------------------------------------------------------------ inbound
    async def on_event(self, url: str, data: Any, *, live: bool) -> None:
        """Verify, store (deduplicated) and route one event from ``url``.

        Invalid or undecryptable events are counted and dropped. StorageError
        propagates (the relay's actor fails, reconnects, and the event comes
        again because ``since`` did not move)."""
        try:
            inbound = to_inbound(data, self.secret, self.me, self.settings.nostr.max_text_bytes)
        except Dropped as exc:
            if exc.reason == "invalid":
                self.bump("invalid")
            else:
                self.bump("undecryptable")
            event_id = data.get("id") if isinstance(data, dict) else None
            _log.warning("nostr_event_dropped", relay=url, reason=exc.reason,
                         detail=exc.detail, id=str(event_id)[:64])  # fmt: skip
            return
        if inbound is None:
            self.bump("ignored")
            return
        result = await self.store.ingest(inbound)
        if not result.created:
            self.bump("duplicates")
        else:
            self.bump("received")
            _log.info("nostr_received", relay=url, id=inbound.message_id,
                      protocol=inbound.raw["protocol"], user=inbound.user_key)  # fmt: skip
            assert self.system is not None
            timeout = self.settings.kernel.ask_timeout_s
            await tell_author(self.system, result.received(inbound.user_id), timeout_s=timeout)
        if live:
            await self.save_since(url)

    # ------------------------------------------------------------------ outbound
    async def publish(self, event: Event) -> int:
        """Publish ``event`` to every relay connected now, concurrently; return how many
        accepted it (OK true). Each waits at most ``publish_timeout_s``; a relay that is
        down or slow never holds up the others beyond that."""
        accepted = 0
        timeout = self.settings.nostr.publish_timeout_s

        async def one(link: RelayLink) -> None:
            nonlocal accepted
            ok, message = await link.publish(event, timeout)
            if ok:
                accepted += 1
            else:
                _log.warning("nostr_publish_refused", relay=link.url, id=event.id,
                             reason=message[:200])  # fmt: skip

        async with trio.open_nursery() as nursery:
            for link in list(self.links.values()):
                nursery.start_soon(one, link)
        return accepted
