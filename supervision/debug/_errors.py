"""Errors of the debug server and its client.

Hierarchy::

    supervision.KernelError
    ├── DebugError          a request the server refuses; ``kind`` is the wire error kind
    └── DebugSocketError    the server cannot listen: socket path taken, too long, or not ours
    Exception
    ├── StreamEnded         the peer closed the stream in the middle of a frame
    └── CtlError            the client (``greenroom ctl``) got no answer; the message is one line
        └── RemoteError     the server answered ``ok: false``; ``kind`` is the wire error kind

Error kinds (``error.kind`` in a response), a closed set::

    bad_frame      not msgpack, not a map, a missing or mistyped field
    unknown_op     no such op
    unknown_path   no live actor at that path (or it stopped before replying)
    unknown_type   a message type name that is not registered
    invalid_body   the body does not validate; the message names the field
    timeout        ask got no reply in time, or inject found the mailbox full
    unauthorized   a TCP connection whose first frame is not a valid hello
    too_large      a declared frame length above the limit (connection closed)
    actor_failed   the asked actor raised while handling the message
    internal       a bug in the server (logged); the connection stays up
"""

from __future__ import annotations

from typing import Any, Literal

from supervision import KernelError

__all__ = [
    "CtlError",
    "DebugError",
    "DebugSocketError",
    "ErrorKind",
    "RemoteError",
    "StreamEnded",
]

ErrorKind = Literal[
    "bad_frame",
    "unknown_op",
    "unknown_path",
    "unknown_type",
    "invalid_body",
    "timeout",
    "unauthorized",
    "too_large",
    "actor_failed",
    "internal",
]


class DebugError(KernelError):
    """A request the debug server refuses; becomes ``{"ok": false, "error": ...}``.

    ``kind`` is one of :data:`ErrorKind`; ``extra`` holds additional keys for
    the error map (``field`` for ``invalid_body``).
    """

    def __init__(self, kind: ErrorKind, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.extra = extra

    def to_wire(self) -> dict[str, Any]:
        """The ``error`` map of a response."""
        return {"kind": self.kind, "message": self.message, **self.extra}


class DebugSocketError(KernelError):
    """The debug server cannot listen: the socket path is taken, too long, or not ours."""


class StreamEnded(Exception):
    """The peer closed the stream in the middle of a frame."""


class CtlError(Exception):
    """The client could not get an answer; the message is one line."""


class RemoteError(CtlError):
    """The server answered ``ok: false``; ``kind`` is the wire error kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
