"""The outermost ASGI layer: the request-body bound and the response counters.

A plain ASGI middleware rather than a Starlette ``BaseHTTPMiddleware``: that
one runs the app in a second task and buffers through memory streams, which
costs on every request (DESIGN.md's webhook target), while this is two small
wrappers around ``receive`` and ``send``.

It also serves the door's raw POST routes (``raw_posts``: path -> handler of the
request's headers and whole body) itself, without entering FastAPI: Telegram's
webhook, whose only caller sends one JSON body and whose rate is DESIGN.md's
webhook target (FastAPI's and Starlette's layers were about an eighth of the
door's time per update). A handler answers ``(status, body, headers)`` or
raises ``ApiError``, rendered as every route's error body.

The body bound holds whether or not the client declares a length: a
``Content-Length`` above the limit is refused before a byte is read, and a
body that grows past it while being read (chunked, or a lying header) makes
``receive`` raise :class:`BodyTooLarge`, which the app answers with 413.
Either way the rest of the body (up to ``DRAIN_MAX_BYTES``) is read and
dropped first, so the client, still sending, is not reset before it reads
the answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._errors import ApiError, BodyTooLarge
from ._metrics import Counters

__all__ = ["DRAIN_MAX_BYTES", "DoorMiddleware", "RawPost", "RawResponse", "error_body"]

#: How much of a refused body is read and dropped so the 413 reaches the client.
DRAIN_MAX_BYTES = 1 << 20

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any  # Callable[[], Awaitable[Message]]
Send = Any  # Callable[[Message], Awaitable[None]]
#: (status, JSON body, extra headers)
RawResponse = tuple[int, bytes, Mapping[str, str]]
#: A raw POST route: (request headers as ASGI gives them, the whole body) -> response.
RawPost = Callable[[list[tuple[bytes, bytes]], bytes], Awaitable[RawResponse]]


def error_body(exc: ApiError) -> bytes:
    """Every error answer's body: ``{"error": code, "message": text}``."""
    return json.dumps({"error": exc.code, "message": exc.message}).encode()


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class DoorMiddleware:
    """Bounds request bodies at ``max_body_bytes`` and counts responses by status."""

    def __init__(
        self,
        app: Any,
        *,
        max_body_bytes: int,
        counters: Counters,
        raw_posts: Mapping[str, RawPost] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.counters = counters
        self.raw_posts = dict(raw_posts or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope; lifespan and websocket scopes pass through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        counters = self.counters
        started = False

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                counters.responses[message["status"]] += 1
            await send(message)

        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _drain(receive, 0)
            await _refuse(counting_send, BodyTooLarge(limit))
            return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message: Message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body", False):
                        await _drain(receive, seen)
                    raise BodyTooLarge(limit)
            return message

        try:
            raw = self.raw_posts.get(scope["path"]) if scope["method"] == "POST" else None
            if raw is None:
                await self.app(scope, bounded_receive, counting_send)
            else:
                await _serve_raw(raw, scope, bounded_receive, counting_send)
        except BodyTooLarge as exc:
            # Raised where no route's handler saw it (e.g. while Starlette read
            # the body for a form): answer here if nothing was sent yet.
            if started:
                raise
            await _refuse(counting_send, exc)


async def _serve_raw(handler: RawPost, scope: Scope, receive: Receive, send: Send) -> None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    try:
        status, payload, headers = await handler(scope["headers"], bytes(body))
    except ApiError as exc:
        status, payload, headers = exc.status, error_body(exc), exc.headers
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _drain(receive: Receive, seen: int) -> None:
    """Read and drop the rest of a refused body, up to DRAIN_MAX_BYTES in all.

    A server that answers and closes while the client is still sending makes
    the kernel reset the connection, and the client may then lose the 413 it
    was sent; reading the rest first lets the answer arrive. Past the cap the
    connection is closed after the answer (and that risk accepted).
    """
    while seen <= DRAIN_MAX_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    body = error_body(exc)
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
