"""The DebugServer actor in-process (issue 4): a stuck actor stays inspectable,
timeouts and failures get their error kinds, the audit hook's contract, and
the server's own lifecycle (restart re-listens, stop closes and cleans up).

These run on the real clock: the client and server talk over a real socket,
which a virtual clock would not wait for.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from config import ConfigError, load_settings
from protocols import Ping, Pong
from supervision import (
    Actor,
    ActorSystem,
    ChildSpec,
    Supervisor,
    open_system,
)
from supervision.debug import AuditHook, DebugServer, Peer
from supervision.debug._metrics import LoopLag
from supervision.debug._ops import Ops
from tests.debugkit import Client
from tests.kit import Echo


class Stuck(Actor):
    """Blocks in its first message until released; accepts Ping."""

    accepts = (Ping,)
    mailbox_capacity = 1

    def __init__(self, release: trio.Event, entered: trio.Event) -> None:
        self.release = release
        self.entered = entered

    async def receive(self, msg: Any) -> Any:
        self.entered.set()
        await self.release.wait()
        if isinstance(msg, Ping) and msg.note == "fail":
            raise RuntimeError("asked to fail")
        return Pong(note="unstuck")


class World:
    def __init__(self, tmp: Path) -> None:
        self.socket = tmp / "debug.sock"
        self.release = trio.Event()
        self.entered = trio.Event()
        self.audits: list[dict[str, Any]] = []
        self.audit_error: Exception | None = None

    async def audit(self, record: dict[str, Any]) -> None:
        if self.audit_error is not None:
            raise self.audit_error
        self.audits.append(record)

    def root(self, audit: AuditHook | None) -> Supervisor:
        return Supervisor(
            [
                ChildSpec("stuck", lambda: Stuck(self.release, self.entered)),
                ChildSpec(
                    "debug", lambda: DebugServer(self.socket, audit=audit, lag_interval_s=0.05)
                ),
            ]
        )


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[World, ActorSystem]]:
    w = World(tmp_path)
    async with open_system(lambda: w.root(w.audit)) as system:
        yield w, system
        w.release.set()


async def test_a_stuck_actor_is_still_inspectable(world: tuple[World, ActorSystem]) -> None:
    """While /stuck is blocked in a message: tree and inspect answer, ask times
    out (`timeout`), inject into its full mailbox times out too."""
    w, system = world
    await system.lookup("/stuck").tell(Ping(note="block"))
    await w.entered.wait()
    client = await Client.unix(w.socket)
    info = await client.result("inspect", path="/stuck")
    assert info["state"] == "running" and info["accepts"] == ["kernel.Ping"]
    asked = await client.call("ask", path="/stuck", type="kernel.Ping", body={}, timeout_s=0.05)
    assert asked["error"]["kind"] == "timeout"
    # The withdrawn ask still holds the one mailbox slot until /stuck drains it.
    told = await client.call("inject", path="/stuck", type="kernel.Ping", body={}, timeout_s=0.05)
    assert told["error"]["kind"] == "timeout"
    assert (await client.result("inspect", path="/stuck"))["mailbox_depth"] == 1
    await client.aclose()


async def test_ask_failure_is_actor_failed(world: tuple[World, ActorSystem]) -> None:
    """An ask whose handler raises answers `actor_failed` naming the error."""
    w, _ = world
    w.release.set()
    client = await Client.unix(w.socket)
    failed = await client.call("ask", path="/stuck", type="kernel.Ping", body={"note": "fail"})
    assert failed["error"]["kind"] == "actor_failed"
    assert "RuntimeError: asked to fail" in failed["error"]["message"]
    ok = await client.result("ask", path="/stuck", type="kernel.Ping", body={})
    assert ok["reply"] == {"type": "kernel.Pong", "body": {"note": "unstuck"}}
    await client.aclose()


async def test_the_audit_time_has_the_base_of_every_other_debug_time(
    autojump_clock: object,
) -> None:
    """Issue 11 (review, kernel finding 9): the audit record's ``at`` read the system's
    wall clock anew, while every other time the debug socket gives (events, restart
    times, errors, dead letters) is ``wall(trio time)``: the wall clock read once at
    start plus kernel time since. The two drift apart (a wall clock that steps, a
    virtual clock); here the wall clock stands still while 100 s of kernel time
    pass, and the audit time is the kernel's, like the others."""
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    seen: list[tuple[float, float]] = []

    async def audit(record: dict[str, Any]) -> None:
        seen.append((record["at"], trio.current_time()))

    root = partial(Supervisor, [ChildSpec("echo", Echo)])
    async with open_system(root, clock=lambda: start) as system:
        ops = Ops(system, audit=audit)
        await trio.sleep(100.0)
        await ops.handle({"op": "kill", "id": 1, "path": "/echo", "reason": "r"}, Peer("unix"))
    [(at, now)] = seen
    assert at == ops.wall(now) == pytest.approx(start.timestamp() + 100.0)


async def test_audit_hook_gets_who_and_what(world: tuple[World, ActorSystem]) -> None:
    """inject, ask and kill each reach the hook before they act, with the peer's
    credentials; a failing hook stops the action (`internal`)."""
    w, system = world
    w.release.set()
    client = await Client.unix(w.socket)
    await client.result("inject", path="/stuck", type="kernel.Ping", body={"note": "n"})
    await client.result("ask", path="/stuck", type="kernel.Ping", body={})
    await client.result("kill", path="/stuck", reason="audit test")
    assert [(a["op"], a["path"], a["type"], a["reason"]) for a in w.audits] == [
        ("inject", "/stuck", "kernel.Ping", None),
        ("ask", "/stuck", "kernel.Ping", None),
        ("kill", "/stuck", None, "audit test"),
    ]
    peer = {"transport": "unix", "pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}
    assert all(a["peer"] == peer and isinstance(a["at"], float) for a in w.audits)
    assert [a["request_id"] for a in w.audits] == [1, 2, 3]
    assert "body" not in w.audits[0]
    restarts = system.inspect("/stuck").restarts
    w.audit_error = OSError("audit table unavailable")
    refused = await client.call("kill", path="/stuck")
    assert refused["error"]["kind"] == "internal" and "audit failed" in refused["error"]["message"]
    assert system.inspect("/stuck").restarts == restarts
    assert system.inspect("/stuck").state == "running"
    await client.aclose()


async def test_stats_report_loop_lag(world: tuple[World, ActorSystem]) -> None:
    """stats carries the lag probe's numbers and the open connections."""
    w, _ = world
    client = await Client.unix(w.socket)
    stats = await client.result("stats")
    assert set(stats["loop_lag_ms"]) == {"last", "max"} and stats["debug_connections"] == 1
    await client.aclose()


async def test_loop_lag_is_wake_up_lateness(mock_clock: trio.testing.MockClock) -> None:
    """The probe records how much later than asked its sleep returned."""
    lag = LoopLag(0.25)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lag.run)
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(0.4)  # the loop was "busy" for 0.4 s
        await trio.testing.wait_all_tasks_blocked()
        assert lag.last_s == pytest.approx(0.15) and lag.max_s == pytest.approx(0.15)
        nursery.cancel_scope.cancel()


async def test_killing_the_server_restarts_its_listener(world: tuple[World, ActorSystem]) -> None:
    """kill /debug fails the server like any actor: its connections close, and
    the restarted instance listens on the same path again."""
    w, system = world
    client = await Client.unix(w.socket)
    with system.subscribe() as events:
        await client.send(op="kill", path="/debug")
        while (event := await events.receive()).kind != "restarted" or event.path != "/debug":
            pass
    while (await client.receive()) is not None:
        pass  # the kill's own answer may or may not make it out first
    await client.aclose()
    again = await Client.unix(w.socket)
    assert (await again.result("inspect", path="/debug"))["restarts"] == 1
    assert w.socket.stat().st_mode & 0o777 == 0o600
    await again.aclose()


async def test_stopping_closes_connections_and_removes_the_socket(tmp_path: Path) -> None:
    """Leaving the system stops /debug: open connections see EOF, watches end,
    and the socket file is gone."""
    w = World(tmp_path)
    w.release.set()
    async with open_system(lambda: w.root(None)) as system:
        client = await Client.unix(w.socket)
        watch_id = await client.send(op="watch")
        assert (await client.receive()) == {
            "id": watch_id,
            "ok": True,
            "result": {"event": "subscribed"},
        }
        assert system.lookup("/debug")
    seen = []
    while (frame := await client.receive()) is not None:
        seen.append(frame["result"]["event"])
    assert set(seen) <= {"stopped"}
    await client.aclose()
    assert not w.socket.exists()
    assert not list(tmp_path.iterdir())


async def test_max_frame_bytes_is_configurable(tmp_path: Path) -> None:
    """The frame limit comes from [debug] max_frame_bytes (validated in one line)
    and the server enforces exactly it."""
    settings = load_settings(env={"GREENROOM_DEBUG__MAX_FRAME_BYTES": "2048"})
    assert settings.debug.max_frame_bytes == 2048
    with pytest.raises(ConfigError) as bad:
        load_settings(env={"GREENROOM_DEBUG__MAX_FRAME_BYTES": "10"})
    assert "debug.max_frame_bytes" in str(bad.value) and "10" in str(bad.value)
    assert "\n" not in str(bad.value)
    path = tmp_path / "debug.sock"
    server = partial(DebugServer, path, max_frame_bytes=settings.debug.max_frame_bytes)
    async with open_system(lambda: Supervisor([ChildSpec("debug", server)])):
        client = await Client.unix(path)
        fits = await client.call("inspect", path="/debug", pad="x" * 1900)
        assert fits["ok"] is True
        await client.send(op="inspect", path="/debug", pad="x" * 2100)
        frame = await client.receive()
        assert frame is not None and frame["error"]["kind"] == "too_large"
        assert "2048" in frame["error"]["message"]
        assert await client.receive() is None
        await client.aclose()
