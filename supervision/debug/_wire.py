"""Debug-socket framing: a 4-byte big-endian length, then one msgpack map.

The codec and the length prefix are :mod:`protocols.wire`'s (``decode``,
``encode``, ``frame``, ``FRAME_HEADER``); this module adds what a server
reading untrusted bytes needs on top: a size limit checked *before* reading
the payload, a buffered reader that tells a clean end of stream from one cut
mid-frame. Its errors (``DebugError``, whose ``kind`` is the wire error kind,
and ``StreamEnded``) are in ``_errors``.
"""

from __future__ import annotations

from typing import Any

import trio

from protocols import FRAME_HEADER, DecodeError, decode, encode, frame

from ._errors import DebugError, StreamEnded

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "FrameStream", "encode_frame"]

#: The default largest frame payload a server accepts (``[debug] max_frame_bytes``).
DEFAULT_MAX_FRAME_BYTES = 1 << 20

_RECEIVE_CHUNK = 64 * 1024


def encode_frame(obj: Any) -> bytes:
    """``obj`` as msgpack behind its length prefix. Raises ``TypeError`` if msgpack
    cannot encode it (see :func:`protocols.encode`)."""
    return frame(encode(obj))


class FrameStream:
    """Frames over one trio stream: one reader task, any number of writer tasks.

    Writes are serialized by a lock so frames from concurrent requests never
    interleave. The reader keeps a buffer; it is not safe to call
    :meth:`receive` from two tasks at once.
    """

    def __init__(self, stream: trio.abc.Stream, max_frame_bytes: int) -> None:
        self.stream = stream
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._lock = trio.Lock()

    async def _fill(self, n: int) -> bool:
        """Buffer at least ``n`` bytes; False if the stream ended first."""
        while len(self._buf) < n:
            chunk = await self.stream.receive_some(_RECEIVE_CHUNK)
            if not chunk:
                return False
            self._buf += chunk
        return True

    async def receive(self) -> Any:
        """The next frame's decoded payload, or None at a clean end of stream.

        Raises :class:`DebugError` ``too_large`` when the declared length is
        above ``max_frame_bytes`` (the payload is not read: the caller must
        close the connection), ``bad_frame`` when the payload is not valid
        msgpack (the stream stays usable: the frame boundary is known), and
        :class:`StreamEnded` when the stream ends mid-frame. Raises what the
        stream raises (``trio.BrokenResourceError`` ...). Cancellation may
        lose a partly read frame, so a cancelled reader must close the stream.
        """
        if not await self._fill(FRAME_HEADER.size):
            if self._buf:
                raise StreamEnded(f"stream ended inside a frame header ({len(self._buf)} bytes)")
            return None
        (length,) = FRAME_HEADER.unpack_from(self._buf)
        if length > self.max_frame_bytes:
            raise DebugError(
                "too_large", f"frame of {length} bytes is over the limit of {self.max_frame_bytes}"
            )
        if not await self._fill(FRAME_HEADER.size + length):
            raise StreamEnded(f"stream ended inside a frame of {length} bytes")
        end = FRAME_HEADER.size + length
        payload = bytes(self._buf[FRAME_HEADER.size : end])
        del self._buf[:end]
        if not payload:
            raise DebugError("bad_frame", "empty frame: expected one msgpack map")
        try:
            return decode(payload)
        except DecodeError as exc:
            raise DebugError("bad_frame", str(exc)) from None

    async def send(self, obj: Any) -> None:
        """Encode ``obj`` and write it as one frame, after any frame being written.

        Raises ``TypeError`` (nothing written) if ``obj`` cannot be encoded, and
        what the stream raises if the peer is gone. A send cancelled half-way
        leaves a partial frame: the caller must then close the stream.
        """
        data = encode_frame(obj)
        async with self._lock:
            await self.stream.send_all(data)
