"""Helpers for the debug-socket tests: a real `greenroom run`, and a trio client.

The process is started with JSON logs on stderr; a thread drains them (so the
pipe never fills) and sets an event on each line, which is how tests wait for
``debug_listening`` instead of sleeping.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from supervision.debug._wire import FrameStream, encode_frame
from tests.test_cli import GREENROOM
from tests.test_cli import env as cli_env

#: Hang guard for a real process (never a synchronisation point).
START_TIMEOUT_S = 30.0


def env(**extra: str) -> dict[str, str]:
    """The test environment (see ``tests.test_cli.env``) with JSON logs."""
    return cli_env(GREENROOM_LOG__FORMAT="json", **extra)


@dataclass
class Live:
    """A running `greenroom run` and what it logged so far."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _drainer: threading.Thread | None = None

    @property
    def socket(self) -> Path:
        return self.data_dir / "debug.sock"

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.raw.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.events.append({"event": "unparsed", "line": line.decode(errors="replace")})
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, event: str, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """The first log line with ``event``; fails if the process exits first."""
        return self.wait_until(lambda e: e.get("event") == event, timeout)[0]

    def wait_until(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = START_TIMEOUT_S
    ) -> list[dict[str, Any]]:
        """Every log line so far that ``match``es, once there is at least one;
        fails if the process exits first."""
        with self._cond:
            self._cond.wait_for(
                lambda: any(map(match, self.events)) or self.proc.poll() is not None, timeout
            )
            hits = [e for e in self.events if match(e)]
        assert hits, f"no matching log line from greenroom: {self.events[-5:]}"
        return hits

    def stop(self) -> int:
        """SIGTERM (unless it already exited), then the exit status once every
        log line has been read."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=START_TIMEOUT_S)
        if self._drainer is not None:
            self._drainer.join(START_TIMEOUT_S)
        return status


def start(data_dir: Path, wait: str | None = "debug_listening", **extra_env: str) -> Live:
    """Start `greenroom --data-dir DATA_DIR run`, waiting for the log event ``wait``."""
    proc = subprocess.Popen(
        [*GREENROOM, "--data-dir", str(data_dir), "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env(**extra_env),
    )
    live = Live(proc, data_dir)
    live._drainer = threading.Thread(target=live._drain, daemon=True)
    live._drainer.start()
    if wait is not None:
        live.wait_for(wait)
    return live


class Client:
    """A trio client for one debug connection (frames in, frames out)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.frames = FrameStream(stream, 256 << 20)
        self._ids = 0

    @classmethod
    async def unix(cls, path: Path) -> Client:
        return cls(await trio.open_unix_socket(str(path)))

    @classmethod
    async def tcp(cls, host: str, port: int) -> Client:
        return cls(await trio.open_tcp_stream(host, port))

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def send(self, **req: Any) -> int:
        """Send a request with a fresh id (unless given); return the id."""
        if "id" not in req:
            self._ids += 1
            req["id"] = self._ids
        await self.stream.send_all(encode_frame(req))
        rid: int = req["id"]
        return rid

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive(self) -> dict[str, Any] | None:
        """The next response, or None when the server closed the connection."""
        with trio.fail_after(30):  # hang guard
            try:
                frame = await self.frames.receive()
            except trio.BrokenResourceError:
                return None
        assert frame is None or isinstance(frame, dict), frame
        return frame

    async def call(self, op: str, **params: Any) -> dict[str, Any]:
        """One request and its response (nothing else may be in flight)."""
        rid = await self.send(op=op, **params)
        response = await self.receive()
        assert response is not None, f"connection closed during {op}"
        assert response["id"] == rid, response
        return response

    async def result(self, op: str, **params: Any) -> Any:
        """The result of a request that must succeed."""
        response = await self.call(op, **params)
        assert response["ok"] is True, response
        return response["result"]
