"""Where the debug server listens: its Unix socket, the optional loopback TCP
listener, and who is on the other end of a connection.

The Unix socket must never be reachable by other users, not even for the
instant between ``bind`` and ``chmod``. Rather than change the process-wide
umask (which other threads, e.g. a SQLite thread creating its file, would
see), the socket is bound inside a fresh 0700 directory, set to 0600, then
renamed into place.
"""

from __future__ import annotations

import ipaddress
import os
import socket as stdsocket
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import trio

from ._errors import DebugSocketError

__all__ = [
    "Peer",
    "open_tcp_listener",
    "open_unix_listener",
    "parse_loopback",
    "peer_of",
    "remove_socket",
]

#: sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_UNIX_PATH = 107
#: How long probing an existing socket file may take before it counts as live.
_PROBE_TIMEOUT_S = 2.0
_BACKLOG = 64


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is connected: Unix peer credentials (where the OS tells) or a TCP address."""

    transport: Literal["unix", "tcp"]
    pid: int | None = None
    uid: int | None = None
    gid: int | None = None
    address: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for audit records and log lines (unknown fields omitted)."""
        out: dict[str, Any] = {"transport": self.transport}
        for key in ("pid", "uid", "gid", "address"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def peer_of(stream: trio.SocketStream, transport: Literal["unix", "tcp"]) -> Peer:
    """The peer of an accepted connection. Never raises: what the OS will not
    say is left as None (SO_PEERCRED is Linux-only)."""
    sock = stream.socket
    if transport == "tcp":
        try:
            host, port, *_ = sock.getpeername()
        except OSError:
            return Peer("tcp")
        return Peer("tcp", address=f"{host}:{port}")
    peercred = getattr(stdsocket, "SO_PEERCRED", None)
    if peercred is None:
        return Peer("unix")
    try:
        raw = sock.getsockopt(stdsocket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    except OSError:
        return Peer("unix")
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer("unix", pid=pid, uid=uid, gid=gid)


# --------------------------------------------------------------------------- unix


async def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody listens on; raise if someone does."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise DebugSocketError(f"{path} exists and is not a socket; move it away")
    probe = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    with probe:
        try:
            with trio.move_on_after(_PROBE_TIMEOUT_S):
                await probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            # Nothing listening: a socket file left by a crashed run.
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return
        except OSError as exc:
            raise DebugSocketError(f"cannot probe {path}: {exc.strerror or exc}") from None
    raise DebugSocketError(f"another greenroom is already serving the debug socket {path}")


async def open_unix_listener(path: Path) -> tuple[trio.SocketListener, tuple[int, int]]:
    """Listen on a new Unix socket at ``path`` with mode 0600.

    Returns the listener and the socket file's ``(st_dev, st_ino)``, so the
    owner can later remove exactly this file (:func:`remove_socket`). A stale
    socket file is replaced; raises :class:`DebugSocketError` naming the path
    if another process answers on it, if it is not a socket, or if the path
    is too long for a Unix socket. Cancellation leaves no file behind.
    """
    path = Path(path).absolute()
    if len(os.fsencode(path)) > _MAX_UNIX_PATH:
        raise DebugSocketError(
            f"debug socket path {path} is longer than {_MAX_UNIX_PATH} bytes; "
            "use a shorter data dir"
        )
    await _clear_stale(path)
    private = tempfile.mkdtemp(prefix=".debug-", dir=path.parent)  # mode 0700
    tmp = os.path.join(private, "s")
    sock = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    try:
        await sock.bind(tmp)
        os.chmod(tmp, 0o600)
        sock.listen(_BACKLOG)
        os.rename(tmp, path)
        st = os.stat(path)
    except BaseException:
        sock.close()
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        os.rmdir(private)
    return trio.SocketListener(sock), (st.st_dev, st.st_ino)


def remove_socket(path: Path, identity: tuple[int, int]) -> None:
    """Remove the socket file at ``path`` if it is still the one we created
    (another instance may have replaced it). Never raises."""
    try:
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
    except OSError:
        pass


# --------------------------------------------------------------------------- tcp


def parse_loopback(address: str) -> tuple[str, int]:
    """``"127.0.0.1:7070"`` or ``"[::1]:7070"`` as ``(host, port)``.

    Raises ``ValueError`` naming the value unless the host is a loopback
    address (or ``localhost``) and the port is 1..65535.
    """
    host, sep, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    ok = bool(sep) and port.isdigit() and 1 <= int(port) <= 65535
    if ok and host != "localhost":
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(
            f"debug tcp must be a loopback HOST:PORT such as '127.0.0.1:7070', not {address!r}"
        )
    return host, int(port)


async def open_tcp_listener(address: str) -> list[trio.SocketListener]:
    """Listen on the loopback ``address`` (see :func:`parse_loopback`).

    Raises ``ValueError`` for a non-loopback address and
    :class:`DebugSocketError` if the port cannot be bound.
    """
    host, port = parse_loopback(address)
    try:
        return await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise DebugSocketError(
            f"cannot listen on debug tcp {address}: {exc.strerror or exc}"
        ) from None
