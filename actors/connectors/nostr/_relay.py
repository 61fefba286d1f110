"""``/connectors/nostr/<relay>``: one actor per relay, reconnecting with backoff.

The actor owns one task, the connection loop: connect (bounded by
``connect_timeout_s``), subscribe and read (:class:`RelayLink`), and when the
connection fails or ends, wait ``reconnect_delay(attempt)`` and try again.
The delay doubles from ``backoff_min_s`` to ``backoff_max_s`` (with +/-20 %
jitter) and starts over after a session that reached ``EOSE``. A relay that
is down only delays itself: its siblings, the connector and the user actors
never wait for it. Network and protocol failures stay inside this loop; a
storage failure fails the actor (its supervisor restarts it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from supervision import Actor

from ._hub import Hub
from ._link import RelayLink, SubscriptionClosed

__all__ = ["Connect", "RelayActor", "reconnect_delay", "relay_names"]

#: How the actor opens a websocket (tests pass a double); the default is trio-websocket's.
Connect = Callable[[str, float], AbstractAsyncContextManager[WebSocketConnection]]
#: Largest frame accepted from a relay (a NIP-17 gift wrap is up to ~64 KiB of JSON).
_MAX_MESSAGE = 1 << 20


def _open(url: str, timeout: float) -> AbstractAsyncContextManager[WebSocketConnection]:
    return open_websocket_url(
        url, connect_timeout=timeout, disconnect_timeout=2, max_message_size=_MAX_MESSAGE
    )


def reconnect_delay(attempt: int, min_s: float, max_s: float, rand: float) -> float:
    """The wait before reconnect number ``attempt`` (0-based): ``min_s * 2**attempt``
    capped at ``max_s``, times 0.8..1.2 by ``rand`` in [0, 1)."""
    base: float = min(max_s, min_s * 2.0 ** min(attempt, 62))
    return base * (0.8 + 0.4 * rand)


def relay_names(urls: tuple[str, ...]) -> dict[str, str]:
    """Child name per relay URL: its host, with the port when one is given; made unique."""
    names: dict[str, str] = {}
    for url in urls:
        parts = urlsplit(url)
        name = parts.hostname or "relay"
        if parts.port is not None:
            name = f"{name}:{parts.port}"
        name = name.replace("/", "_")
        unique, n = name, 2
        while unique in names.values():
            unique, n = f"{name}-{n}", n + 1
        names[url] = unique
    return names


class RelayActor(Actor):
    """One relay's connection loop (see the module docstring). Takes no messages."""

    def __init__(self, url: str, hub: Hub, connect: Connect = _open) -> None:
        self.url = url
        self.hub = hub
        self.connect = connect
        self.connects = 0  # sessions opened
        self.failures = 0  # connection attempts or sessions that failed

    def __repr__(self) -> str:
        return f"RelayActor({self.url!r})"

    async def on_start(self) -> None:
        """Start the connection loop and return at once (not waiting for the relay)."""
        self.spawn_task(self._loop, name="connection")

    async def receive(self, msg: Any) -> Any:
        raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    async def _loop(self) -> None:
        nostr = self.hub.settings.nostr
        attempt = 0
        while True:
            healthy = await self._session()
            attempt = 0 if healthy else attempt + 1
            delay = reconnect_delay(
                max(0, attempt - 1), nostr.backoff_min_s, nostr.backoff_max_s, random.random()
            )
            self.log.info("nostr_reconnect_in", relay=self.url, delay_s=round(delay, 3))
            await trio.sleep(delay)

    async def _session(self) -> bool:
        """One connection; True if it got as far as EOSE (the backoff starts over)."""
        link: RelayLink | None = None
        try:
            async with self.connect(self.url, self.hub.settings.nostr.connect_timeout_s) as ws:
                link = RelayLink(self.url, ws, self.hub, self.log)
                self.connects += 1
                self.hub.attach(link)
                self.log.info("nostr_connected", relay=self.url)
                await link.run(await self.hub.filters(self.url))
        except (OSError, HandshakeError, ConnectionClosed, SubscriptionClosed) as exc:
            self.failures += 1
            self.log.warning("nostr_relay_down", relay=self.url, error=_describe(exc))
        except trio.TooSlowError:
            self.failures += 1
            self.log.warning("nostr_relay_down", relay=self.url, error="connect timed out")
        finally:
            if link is not None:
                self.hub.detach(link)
        return link is not None and link.caught_up


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return f"connection closed ({exc.reason})"
    cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
    return f"{type(exc).__name__}: {exc}{cause}"[:300]
