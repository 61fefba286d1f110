"""Reading a child process's JSON log lines (``greenroom run``, ``tests/crash_app.py``)."""

from __future__ import annotations

import json
from typing import Any

import trio

__all__ = ["JsonLog"]


class JsonLog:
    """The JSON lines a child writes to ``stream``, read as they come. A line that is
    not JSON fails the read unless ``strict`` is False (then it is kept in ``other``)."""

    def __init__(self, stream: trio.abc.ReceiveStream, *, strict: bool = True) -> None:
        self.stream = stream
        self.strict = strict
        self.events: list[dict[str, Any]] = []
        self.other: list[bytes] = []
        self._buf = b""

    async def read_more(self) -> list[dict[str, Any]] | None:
        """The events of the next chunk the child wrote (maybe none yet: a partial
        line waits for its end); None once the stream ended. A checkpoint."""
        chunk = await self.stream.receive_some()
        if not chunk:
            return None
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        new: list[dict[str, Any]] = []
        for line in filter(bytes.strip, lines):
            try:
                new.append(json.loads(line))
            except ValueError:
                if self.strict:
                    raise
                self.other.append(line)
        self.events += new
        return new

    async def wait(self, event: str, *, within: float = 60) -> dict[str, Any]:
        """The first line whose ``event`` is ``event``, reading on until it comes
        (``within`` seconds: a hang guard for a real process, not a sync point);
        AssertionError if the child ends first."""
        with trio.fail_after(within):
            while True:
                for e in self.events:
                    if e.get("event") == event:
                        return e
                assert await self.read_more() is not None, (
                    f"the child exited before {event!r}: {self.events}"
                )

    def index(self, event: str) -> int:
        return next(i for i, e in enumerate(self.events) if e.get("event") == event)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]
