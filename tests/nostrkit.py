"""Nostr test helpers: the real relay (nostr-relay, its own venv), nostr-sdk's client
and in-memory relay on an asyncio thread, and a scriptable stub relay on trio.

- :func:`relay_executable` builds the relay's venv with ops/nostr-relay.sh (once);
  :func:`start_nostr_relay` starts it on a free loopback port with PEERS.md's
  config and waits for its NIP-11 document (startup readiness only).
- :class:`AsyncioThread` runs nostr-sdk (asyncio) beside trio; :class:`SdkClient`
  is the independent client: it sends events and receives the bot's replies.
- :class:`StubRelay` serves pushed events (e.g. a forged one no real relay
  would pass on) and answers every EVENT with OK.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import nostr_sdk as sdk
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from ops.pg import free_port

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


# --------------------------------------------------------------------------- the real relay


def relay_executable() -> Path | None:
    """The nostr-relay executable (building its venv if needed), or None when it cannot
    be built. Under CI=true a failure fails the test run instead."""
    proc = subprocess.run(
        [str(REPO / "ops/nostr-relay.sh")], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the relay tests; ops/nostr-relay.sh: {proc.stderr}")
        return None
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class RelayProcess:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nostr_relay(exe: Path, workdir: Path) -> RelayProcess:
    """Start nostr-relay on a free port with PEERS.md's config; return once it serves."""
    port = free_port()
    config = {
        "storage": {
            "sqlalchemy.url": f"sqlite+aiosqlite:///{workdir / 'nostr.sqlite3'}",
            "validators": [
                "nostr_relay.validators.is_not_too_large",
                "nostr_relay.validators.is_signed",
                "nostr_relay.validators.is_recent",
            ],
        },
        "gunicorn": {"bind": f"127.0.0.1:{port}", "workers": 1, "loglevel": "warning"},
        "verification": {
            "nip05_verification": "disabled",
            "expiration": 86400,
            "update_frequency": 3600,
        },
        "authentication": {"enabled": False},
        "max_event_size": 65536,
    }
    path = workdir / "relay.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    log = (workdir / "relay.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "-c", str(path), "serve", "--use-uvicorn"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    relay = RelayProcess(f"ws://127.0.0.1:{port}", proc)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/", headers={"Accept": "application/nostr+json"}
    )
    deadline = time.monotonic() + 20
    while True:  # startup readiness only (PEERS.md: ready in 0.8-1.5 s)
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if b"supported_nips" in response.read():
                    return relay
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            relay.stop()
            raise RuntimeError(f"nostr-relay did not start; see {workdir / 'relay.log'}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- nostr-sdk


class AsyncioThread:
    """An asyncio loop on its own thread: where nostr-sdk's coroutines run."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, fn: Callable[[], Awaitable[T]], timeout: float = 15) -> T:
        """Await ``fn()`` on the asyncio thread from trio (fails after ``timeout``)."""

        async def go() -> T:
            return await fn()

        future = asyncio.run_coroutine_threadsafe(go(), self.loop)
        return await trio.to_thread.run_sync(future.result, timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class SdkClient:
    """nostr-sdk's Client with its own keys: what a person on Nostr uses."""

    aio: AsyncioThread
    keys: sdk.Keys = field(default_factory=sdk.Keys.generate)
    client: sdk.Client = field(default_factory=sdk.Client)
    inbox: trio.MemoryReceiveChannel[sdk.Event] | None = None

    @property
    def pubkey(self) -> str:
        return str(self.keys.public_key().to_hex())

    async def connect(self, urls: list[str]) -> None:
        """Connect to ``urls`` and subscribe to everything that tags this client."""
        send, self.inbox = trio.open_memory_channel[sdk.Event](math.inf)
        token = trio.lowlevel.current_trio_token()

        async def setup() -> None:
            for url in urls:
                await self.client.add_relay(sdk.RelayUrl.parse(url))
            await self.client.connect(timedelta(seconds=5))
            stream = self.client.notifications()
            target = sdk.ReqTarget.auto([sdk.Filter().pubkey(self.keys.public_key())])
            await self.client.subscribe(target)

            async def collect() -> None:
                while (note := await stream.next()) is not None:
                    if note.is_new_event():
                        trio.from_thread.run_sync(send.send_nowait, note.event, trio_token=token)

            self.task = asyncio.ensure_future(collect())

        await self.aio.run(setup)

    async def send(self, event: sdk.Event) -> list[str]:
        """Publish ``event``; return the relays that accepted it."""
        output = await self.aio.run(lambda: self.client.send_event(event))
        return [str(url) for url in output.success]

    async def next_event(self, timeout: float = 15) -> sdk.Event:
        assert self.inbox is not None
        with trio.fail_after(timeout):
            return await self.inbox.receive()

    async def close(self) -> None:
        await self.aio.run(self.client.shutdown)

    def secret(self) -> bytes:
        return bytes.fromhex(self.keys.secret_key().to_hex())


async def start_local_relay(aio: AsyncioThread) -> tuple[Any, str]:
    """nostr-sdk's in-memory relay on a free loopback port: (relay, ws URL)."""
    port = free_port()

    async def run() -> Any:
        relay = sdk.LocalRelayBuilder().addr("127.0.0.1").port(port).build()
        await relay.run()
        return relay

    relay = await aio.run(run)
    return relay, f"ws://127.0.0.1:{port}"


# --------------------------------------------------------------------------- the stub relay


@dataclass
class StubRelay:
    """A minimal relay on trio: answers REQ with EOSE, EVENT with OK, and sends
    whatever :meth:`push` is given to every open subscription."""

    url: str = ""
    published: list[dict[str, Any]] = field(default_factory=list)
    reqs: int = 0
    _subs: dict[Any, str] = field(default_factory=dict)
    _subscribed: trio.Event = field(default_factory=trio.Event)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        port = free_port()
        self.url = f"ws://127.0.0.1:{port}"
        await serve_websocket(self._handler, "127.0.0.1", port, None, task_status=task_status)

    async def _handler(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                frame = json.loads(await ws.get_message())
                if frame[0] == "REQ":
                    self.reqs += 1
                    self._subs[ws] = frame[1]
                    await ws.send_message(json.dumps(["EOSE", frame[1]]))
                    self._subscribed.set()
                elif frame[0] == "EVENT":
                    self.published.append(frame[1])
                    await ws.send_message(json.dumps(["OK", frame[1]["id"], True, ""]))
        except ConnectionClosed:
            pass
        finally:
            self._subs.pop(ws, None)

    async def wait_subscribed(self) -> None:
        while not self._subs:
            await self._subscribed.wait()
            self._subscribed = trio.Event()

    async def push(self, event: dict[str, Any]) -> None:
        for ws, sub in list(self._subs.items()):
            await ws.send_message(json.dumps(["EVENT", sub, event]))


@pytest.fixture(scope="session")
def nostr_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """The real relay, once per session; skipped when its venv cannot be built (not CI)."""
    exe = relay_executable()
    if exe is None:
        pytest.skip("ops/nostr-relay.sh could not build the nostr-relay venv")
    relay = start_nostr_relay(exe, tmp_path_factory.mktemp("nostr-relay"))
    yield relay
    relay.stop()
