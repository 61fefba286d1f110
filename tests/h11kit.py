"""What the wire-faithful fakes share: a loopback listener and reading one HTTP/1.1 request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import h11
import trio


async def read_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request | None, bytes]:
    """The next request on ``conn`` and its whole body; ``(None, b"")`` when the client
    closed the connection between requests."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            if not data and request is None:
                return None, b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""


async def serve_loopback(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    on_port: Callable[[int], None],
    task_status: trio.TaskStatus[None],
) -> None:
    """Serve ``handler`` on 127.0.0.1 and a free port (told to ``on_port``), marking the
    task started only once it listens; runs until cancelled."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    on_port(listeners[0].socket.getsockname()[1])
    async with trio.open_nursery() as nursery:
        task_status.started()
        await trio.serve_listeners(handler, listeners, handler_nursery=nursery)


Handler = Callable[[h11.Connection, trio.SocketStream, h11.Request, bytes], Awaitable[bool]]


async def serve_connection(stream: trio.SocketStream, handle: Handler) -> None:
    """HTTP/1.1 keep-alive on one connection: each request with its body goes to
    ``handle``, which writes the response and says whether to keep the connection.
    A client that breaks off ends it quietly."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request, body = await read_request(conn, stream)
            if request is None:
                return
            keep = await handle(conn, stream, request, body)
            if not keep or conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (
        trio.BrokenResourceError,
        trio.ClosedResourceError,
        h11.RemoteProtocolError,
        h11.LocalProtocolError,
    ):
        return
    finally:
        await stream.aclose()
