"""The debug socket: its server (an actor), its wire format and ops, and ``greenroom ctl``.

:class:`DebugServer` serves DESIGN.md's "Introspection and the debug socket"
on a Unix socket (and optionally loopback TCP); :class:`DebugClient` is a
blocking client of it and :func:`ctl` the command line built on that client.
This package uses the kernel's public API only (``from supervision import
...``); the kernel never imports it.
"""

from __future__ import annotations

from ._client import DebugClient
from ._ctl import ctl, render_tree
from ._errors import CtlError, DebugError, DebugSocketError, ErrorKind, RemoteError
from ._listen import Peer
from ._ops import AuditHook
from ._server import DEBUG_SOCKET_NAME, DebugServer

__all__ = [
    "DEBUG_SOCKET_NAME",
    "AuditHook",
    "CtlError",
    "DebugClient",
    "DebugError",
    "DebugServer",
    "DebugSocketError",
    "ErrorKind",
    "Peer",
    "RemoteError",
    "ctl",
    "render_tree",
]
