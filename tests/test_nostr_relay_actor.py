"""The relay actor's reconnect loop on the virtual clock, and its pure helpers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from actors.connectors.nostr import Hub, RelayActor, reconnect_delay, relay_names
from config import Settings
from supervision import ActorSystem, ChildSpec, Supervisor


def test_reconnect_delay_doubles_to_the_cap_with_jitter() -> None:
    assert [reconnect_delay(n, 1, 60, 0.5) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert reconnect_delay(0, 1, 60, 0.0) == 0.8 and reconnect_delay(0, 1, 60, 0.999) < 1.2
    assert reconnect_delay(10_000, 1, 60, 0.5) == 60  # no overflow


def test_relay_names_are_hosts_made_unique() -> None:
    names = relay_names(("wss://relay.damus.io", "ws://127.0.0.1:7447", "wss://relay.damus.io/x"))
    assert list(names.values()) == ["relay.damus.io", "127.0.0.1:7447", "relay.damus.io-2"]


async def test_a_down_relay_is_retried_with_exponential_backoff(system: ActorSystem) -> None:
    """Every attempt fails (connection refused): the waits double from backoff_min_s
    and stop at backoff_max_s; nothing else fails meanwhile."""
    attempts: list[float] = []
    enough = trio.Event()

    @asynccontextmanager
    async def refused(url: str, timeout: float) -> AsyncIterator[Any]:
        attempts.append(trio.current_time())
        if len(attempts) == 7:
            enough.set()
        raise OSError("connection refused")
        yield  # pragma: no cover

    settings = Settings.model_validate({"nostr": {"backoff_min_s": 1.0, "backoff_max_s": 8.0}})
    hub = Hub(settings, None, b"\x01" * 32, "a" * 64)  # type: ignore[arg-type]
    root = next(c for c in system.cells() if c.path == "/").actor
    assert isinstance(root, Supervisor)
    await root.start_child(ChildSpec("relay", lambda: RelayActor("ws://down", hub, refused)))
    with trio.fail_after(200):
        await enough.wait()
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    for gap, base in zip(gaps, [1, 2, 4, 8, 8, 8], strict=True):
        assert 0.8 * base <= gap <= 1.2 * base, (gaps, base)
    info = system.inspect("/relay")
    assert (info.state, info.restarts) == ("running", 0)  # the loop retries, the actor never fails
