"""The debug-socket server: an actor (``/debug`` in the application tree).

Its listeners, connections and loop-lag probe are tasks it owns
(``spawn_task``), so stopping, failing or restarting the actor closes them
all; ``on_stop`` also removes the socket file. Requests never go through its
own mailbox: each connection runs in its own task, so a slow request (or a
stuck target actor) holds up nobody else. The protocol is DESIGN.md's
"Introspection and the debug socket"; the ops are in ``_ops``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import trio

from protocols import Ping, Pong
from supervision import Actor, TaskHandle

from ._conn import serve_connection
from ._listen import (
    Peer,
    open_tcp_listener,
    open_unix_listener,
    parse_loopback,
    peer_of,
    remove_socket,
)
from ._metrics import LoopLag
from ._ops import AuditHook, Ops
from ._wire import DEFAULT_MAX_FRAME_BYTES

__all__ = ["DEBUG_SOCKET_NAME", "DebugServer"]

#: The debug socket's file name inside the data directory.
DEBUG_SOCKET_NAME = "debug.sock"
#: Smallest frame limit accepted: every request the protocol defines fits.
MIN_FRAME_BYTES = 1024
#: Errors from accept() that mean "out of resources": wait a little, keep serving.
_ACCEPT_BACKOFF_S = 0.1


def _positive_int(name: str, value: int, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, not {value!r}")
    return value


class DebugServer(Actor):
    """Serves the debug protocol on a Unix socket (mode 0600) and optionally on
    loopback TCP.

    ``socket_path`` is usually ``<data_dir>/debug.sock``. ``tcp``
    (``"127.0.0.1:PORT"``) adds a TCP listener whose connections must send
    ``{"op": "hello", "token": token}`` first; it requires ``token``.
    ``audit`` is called for every inject, ask and kill (see
    :class:`~supervision.debug._ops.Ops` for the record and the contract);
    None logs a ``debug_audit`` line instead. ``max_frame_bytes`` bounds a
    request frame, ``max_connections`` the open connections (more wait in the
    listen backlog), ``max_in_flight`` the requests running per connection.
    ``lag_interval_s`` is the loop-lag probe's period (None: no probe).

    Raises ``ValueError`` naming the parameter for a bad value, including a
    non-loopback ``tcp``. Starting fails the actor with ``DebugSocketError``
    if another process answers on the socket path. It answers ``kernel.Ping``
    with ``kernel.Pong``.
    """

    accepts: ClassVar[tuple[type, ...]] = (Ping,)

    def __init__(
        self,
        socket_path: Path | str,
        *,
        tcp: str | None = None,
        token: str | None = None,
        audit: AuditHook | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_connections: int = 32,
        max_in_flight: int = 64,
        lag_interval_s: float | None = 0.25,
    ) -> None:
        if tcp:
            parse_loopback(tcp)
            if not token:
                raise ValueError("a debug tcp listener requires a token")
        self.socket_path = Path(socket_path)
        self.tcp = tcp or None
        # Bytes for hmac.compare_digest; never logged or shown in a repr.
        self._token = token.encode() if token else None
        self.audit = audit
        self.max_frame_bytes = _positive_int("max_frame_bytes", max_frame_bytes, MIN_FRAME_BYTES)
        self.max_connections = _positive_int("max_connections", max_connections)
        self.max_in_flight = _positive_int("max_in_flight", max_in_flight)
        self.lag = LoopLag(lag_interval_s) if lag_interval_s is not None else None
        self._listeners: list[trio.SocketListener] = []
        self._identity: tuple[int, int] | None = None
        self._tasks: list[TaskHandle] = []
        self._slots = trio.Semaphore(self.max_connections)
        self.ops: Ops | None = None

    def __repr__(self) -> str:
        return f"<DebugServer {self.socket_path} tcp={self.tcp}>"

    async def on_start(self) -> None:
        self.ops = Ops(self.system, audit=self.audit, lag=self.lag)
        unix, self._identity = await open_unix_listener(self.socket_path)
        self._listeners.append(unix)
        if self.tcp is not None:
            self._listeners += await open_tcp_listener(self.tcp)
        for listener in self._listeners:
            tcp = listener is not unix
            self._tasks.append(
                self.spawn_task(
                    self._accept,
                    listener,
                    "tcp" if tcp else "unix",
                    self._token if tcp else None,
                    name="listen-tcp" if tcp else "listen-unix",
                )
            )
        if self.lag is not None:
            self._tasks.append(self.spawn_task(self.lag.run, name="loop-lag"))
        # Tests and scripts wait for this line before connecting.
        self.log.info(
            "debug_listening", socket=str(self.socket_path.absolute()), tcp=self.tcp or None
        )

    async def on_stop(self) -> None:
        # The kernel would cancel the owned tasks after this returns; doing it
        # first means no accept() sees its listener closed under it.
        with trio.CancelScope(shield=True):
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                await task.wait()
        self._tasks.clear()
        for listener in self._listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()
        self._listeners.clear()
        if self._identity is not None:
            remove_socket(self.socket_path, self._identity)
            self._identity = None

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Ping(note=note):
                return Pong(note=note)
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    async def _accept(
        self,
        listener: trio.SocketListener,
        transport: Literal["unix", "tcp"],
        token: bytes | None,
    ) -> None:
        """Accept connections until cancelled; each is served in this task's nursery."""
        assert self.ops is not None
        serve = partial(
            serve_connection,
            ops=self.ops,
            max_frame_bytes=self.max_frame_bytes,
            max_in_flight=self.max_in_flight,
            token=token,
        )
        async with trio.open_nursery() as nursery:
            while True:
                await self._slots.acquire()
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    self._slots.release()
                    self.log.warning("debug_accept_failed", error=str(exc))
                    await trio.sleep(_ACCEPT_BACKOFF_S)
                    continue
                except BaseException:
                    self._slots.release()
                    raise
                nursery.start_soon(self._serve, serve, stream, transport)

    async def _serve(
        self,
        serve: Callable[[trio.SocketStream, Peer], Awaitable[None]],
        stream: trio.SocketStream,
        transport: Literal["unix", "tcp"],
    ) -> None:
        try:
            await serve(stream, peer_of(stream, transport))
        finally:
            self._slots.release()
