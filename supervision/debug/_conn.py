"""One debug-socket connection: read requests, run each in its own task, write replies.

The reader task only parses frames and starts request tasks (at most
``max_in_flight`` at once; past that it stops reading, which is backpressure
on the client). Replies are written by the request tasks through one lock, so
several requests can be in flight and their replies may come back in any
order, matched by ``id``.

When the client half-closes (end of stream between frames), requests already
running finish and are answered, and every ``watch`` ends. Anything the
client does wrong is answered with an error frame; only a frame above the
size limit, a frame cut short, a failed TCP hello or a broken stream closes
the connection. Nothing here can fail the server actor: unexpected errors are
logged and the connection closed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import structlog
import trio

from ._errors import DebugError, StreamEnded
from ._listen import Peer
from ._ops import OPS, Ops
from ._wire import FrameStream

__all__ = ["HELLO_TIMEOUT_S", "serve_connection"]

#: How long a TCP client has to send its hello frame.
HELLO_TIMEOUT_S = 10.0

_log = structlog.get_logger("greenroom.debug")
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, StreamEnded)


async def serve_connection(
    stream: trio.SocketStream,
    peer: Peer,
    ops: Ops,
    *,
    max_frame_bytes: int,
    max_in_flight: int,
    token: bytes | None,
) -> None:
    """Serve one connection until the client closes it; always closes ``stream``.

    ``token`` (TCP only) makes ``{"op": "hello", "token": ...}`` the required
    first frame; anything else gets an ``unauthorized`` error and the
    connection is closed. Never raises except ``trio.Cancelled``: cancelling
    it (the server stopping) drops the connection at once.
    """
    frames = FrameStream(stream, max_frame_bytes)
    try:
        async with stream:
            if token is not None and not await _hello(frames, token, peer):
                return
            await _Connection(frames, ops, peer, max_in_flight).run()
    except _GONE:
        pass  # the client went away; there is nobody left to answer
    except Exception:
        _log.exception("debug_connection_error", peer=peer.to_dict())


async def _hello(frames: FrameStream, token: bytes, peer: Peer) -> bool:
    """Check the first frame is a hello with the right token (constant time)."""
    req: Any = None
    error: DebugError | None = None
    with trio.move_on_after(HELLO_TIMEOUT_S):
        try:
            req = await frames.receive()
        except DebugError as exc:
            error = exc
    given = req.get("token") if isinstance(req, Mapping) and req.get("op") == "hello" else None
    if isinstance(given, str) and hmac.compare_digest(given.encode(), token):
        rid = req.get("id")
        await frames.send(
            {"id": rid if _is_id(rid) else None, "ok": True, "result": {"hello": True}}
        )
        return True
    # Never log what was sent: it may be a near-miss of the real token.
    _log.warning("debug_unauthorized", peer=peer.to_dict())
    rid = req.get("id") if isinstance(req, Mapping) else None
    if error is None or error.kind != "too_large":
        error = DebugError("unauthorized", "the first frame must be a hello with a valid token")
    await frames.send({"id": rid if _is_id(rid) else None, "ok": False, "error": error.to_wire()})
    return False


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(req: Any) -> tuple[int, str]:
    """The request's id and op; raises DebugError for a malformed request."""
    if not isinstance(req, Mapping):
        raise DebugError("bad_frame", f"a request must be a msgpack map, not {type(req).__name__}")
    rid = req.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise DebugError("bad_frame", "a request needs an int 'id'")
    op = req.get("op")
    if not isinstance(op, str):
        raise DebugError("bad_frame", "a request needs a string 'op'")
    if op not in OPS:
        raise DebugError("unknown_op", f"unknown op {op[:80]!r}")
    return rid, op


class _Connection:
    def __init__(self, frames: FrameStream, ops: Ops, peer: Peer, max_in_flight: int) -> None:
        self.frames = frames
        self.ops = ops
        self.peer = peer
        self.slots = trio.Semaphore(max_in_flight)
        self.ended = False  # the client half-closed: no more requests, watches end
        self.watch_scopes: set[trio.CancelScope] = set()
        self.nursery: trio.Nursery | None = None

    async def run(self) -> None:
        self.ops.connections += 1
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                try:
                    await self._read_loop(nursery)
                except _GONE:
                    # Raising here would wrap the error in an ExceptionGroup.
                    nursery.cancel_scope.cancel()
                    return
                self.ended = True
                for scope in self.watch_scopes:
                    scope.cancel()
        finally:
            self.ops.connections -= 1

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                req = await self.frames.receive()
            except DebugError as exc:
                await self._send_error(None, exc)
                if exc.kind == "too_large":
                    return
                continue
            if req is None:
                return
            # Answered inline, not in a task: a client flooding bad frames
            # without reading the answers is then held back like any other.
            try:
                rid, op = _check(req)
            except DebugError as exc:
                await self._send_error(req.get("id") if isinstance(req, Mapping) else None, exc)
                continue
            await self.slots.acquire()
            nursery.start_soon(self._request, rid, op, req)

    async def _request(self, rid: int, op: str, req: Mapping[str, Any]) -> None:
        try:
            if op == "watch":
                await self._watch(rid)
            else:
                result = await self.ops.handle(req, self.peer)
                await self._send({"id": rid, "ok": True, "result": result})
        except DebugError as exc:
            await self._send_error(rid, exc)
        except _GONE:
            self._drop()
        except Exception:
            _log.exception("debug_request_error", op=op, request_id=rid)
            await self._send_error(rid, DebugError("internal", f"internal error in {op}"))
        finally:
            self.slots.release()

    async def _watch(self, rid: int) -> None:
        with self.ops.system.subscribe() as events:
            await self._send({"id": rid, "ok": True, "result": {"event": "subscribed"}})
            while not self.ended:
                event = None
                # Only the wait is cancelled on half-close, never a write: a
                # frame cut half-way would garble the replies still to come.
                with trio.CancelScope() as scope:
                    self.watch_scopes.add(scope)
                    event = await events.receive()
                self.watch_scopes.discard(scope)
                if event is None:
                    return
                await self._send({"id": rid, "ok": True, "result": self.ops.event(event)})

    async def _send(self, response: dict[str, Any]) -> None:
        try:
            await self.frames.send(response)
        except TypeError as exc:  # a result msgpack cannot carry (a bug in an op)
            _log.error("debug_unencodable_result", request_id=response.get("id"), error=str(exc))
            error = DebugError("internal", "the result could not be encoded")
            await self.frames.send(
                {"id": response.get("id"), "ok": False, "error": error.to_wire()}
            )

    async def _send_error(self, rid: Any, error: DebugError) -> None:
        rid = rid if _is_id(rid) else None
        try:
            await self._send({"id": rid, "ok": False, "error": error.to_wire()})
        except _GONE:
            self._drop()

    def _drop(self) -> None:
        """The client is gone: stop everything on this connection."""
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()
