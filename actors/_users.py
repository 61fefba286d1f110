"""User threads: one actor per ``<platform>:<id>``, under the ``/users`` Directory.

Today a thread keeps only its own in-memory counters and answers
``kernel.Ping``; the conversation (context, classification, approvals) arrives
with the conversation-core issue. What it already shows is the isolation rule:
each user's state lives in that user's actor and nowhere else.
"""

from __future__ import annotations

from typing import Any

from protocols import Ping, Pong
from supervision import Actor


class UserThread(Actor):
    """One user's thread. Answers ``Ping`` with how many pings this user sent."""

    accepts = (Ping,)

    def __init__(self, key: str) -> None:
        self.key = key
        self.pings = 0

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Ping(note=note):
                self.pings += 1
                return Pong(note=f"{self.key}: ping {self.pings}" + (f" ({note})" if note else ""))
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")
