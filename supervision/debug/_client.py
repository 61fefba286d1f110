"""A small blocking client for the debug socket (what ``greenroom ctl`` uses).

Blocking on purpose: a command-line client does one thing at a time, and a
plain socket makes Ctrl-C during ``watch`` an ordinary ``KeyboardInterrupt``.
Every failure is a :class:`CtlError` whose message is one line for the
operator; a refusal by the server is its subclass :class:`RemoteError`,
carrying the wire error kind.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from protocols import FRAME_HEADER, DecodeError, decode

from ._errors import CtlError, RemoteError
from ._wire import encode_frame

__all__ = ["DebugClient"]

#: Responses can be large (the whole tree); this only guards against garbage.
MAX_RESPONSE_BYTES = 256 << 20
DEFAULT_TIMEOUT_S = 30.0


class DebugClient:
    """One connection to a debug server, used from one thread.

    Make it with :meth:`unix` or :meth:`tcp`; use as a context manager or
    call :meth:`close`. ``timeout_s`` bounds each wait for the server (None:
    wait forever, as ``watch`` does).
    """

    def __init__(self, sock: socket.socket, where: str) -> None:
        self._sock = sock
        self._where = where
        self._next_id = 0

    @classmethod
    def unix(cls, path: Path | str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> DebugClient:
        """Connect to the Unix socket at ``path``. Raises :class:`CtlError` if
        there is no socket, nobody listens, or access is denied."""
        path = Path(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            sock.close()
            raise CtlError(f"no debug socket at {path} (is greenroom running?)") from None
        except ConnectionRefusedError:
            sock.close()
            raise CtlError(f"nothing is listening on {path} (a stale socket?)") from None
        except OSError as exc:
            sock.close()
            raise CtlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        return cls(sock, str(path))

    @classmethod
    def tcp(
        cls, address: str, token: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S
    ) -> DebugClient:
        """Connect to ``HOST:PORT`` and authenticate with ``token`` (hello frame).
        Raises :class:`CtlError`, or :class:`RemoteError` ``unauthorized``."""
        host, _, port = address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except (OSError, ValueError) as exc:
            raise CtlError(f"cannot connect to {address}: {exc}") from None
        client = cls(sock, address)
        try:
            client.request("hello", token=token)
        except CtlError:
            client.close()
            raise
        return client

    def __enter__(self) -> DebugClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._sock.close()

    # ------------------------------------------------------------------ frames
    def _recv_exact(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            try:
                chunk = self._sock.recv(min(n - len(data), 1 << 20))
            except TimeoutError:
                raise CtlError(f"no answer from {self._where} in time") from None
            except OSError as exc:
                raise CtlError(f"connection to {self._where} failed: {exc}") from None
            if not chunk:
                raise CtlError(f"{self._where} closed the connection")
            data += chunk
        return bytes(data)

    def send(self, obj: Any) -> None:
        """Write one frame. Raises :class:`CtlError` if the connection broke."""
        try:
            self._sock.sendall(encode_frame(obj))
        except OSError as exc:
            raise CtlError(f"connection to {self._where} failed: {exc}") from None

    def receive(self) -> dict[str, Any]:
        """Read one response map. Raises :class:`CtlError` for a closed
        connection, a timeout or a response that is not a map."""
        (length,) = FRAME_HEADER.unpack(self._recv_exact(FRAME_HEADER.size))
        if length > MAX_RESPONSE_BYTES:
            raise CtlError(f"{self._where} sent a frame of {length} bytes")
        try:
            obj = decode(self._recv_exact(length))
        except DecodeError as exc:
            raise CtlError(f"{self._where} sent a bad frame: {exc}") from None
        if not isinstance(obj, dict):
            raise CtlError(f"{self._where} sent a {type(obj).__name__}, not a map")
        return obj

    # ------------------------------------------------------------------ requests
    def _start(self, op: str, params: dict[str, Any]) -> int:
        self._next_id += 1
        self.send({**params, "id": self._next_id, "op": op})
        return self._next_id

    def _result(self, rid: int) -> Any:
        response = self.receive()
        if response.get("id") not in (rid, None):
            raise CtlError(f"{self._where} answered request {response.get('id')!r}, not {rid}")
        if not response.get("ok"):
            error = response.get("error")
            if not isinstance(error, dict):
                raise CtlError(f"{self._where} sent an error without details")
            raise RemoteError(str(error.get("kind")), str(error.get("message")))
        return response.get("result")

    def request(self, op: str, **params: Any) -> Any:
        """Send one request and return its result (one request at a time).

        Raises :class:`RemoteError` when the server refuses it and
        :class:`CtlError` when the connection fails.
        """
        return self._result(self._start(op, params))

    def stream(self, op: str, **params: Any) -> Iterator[Any]:
        """Send a streaming request (``watch``) and yield each result until the
        server closes the connection. Raises like :meth:`request`."""
        rid = self._start(op, params)
        while True:
            yield self._result(rid)
