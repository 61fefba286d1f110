"""Kernel-level messages any actor understands; tests and the debug socket use them."""

from __future__ import annotations

from ._message import Message
from .wire import message

__all__ = ["Ping", "Pong"]


@message("kernel.Ping")
class Ping(Message):
    """Ask an actor to prove it is alive; the answer is a :class:`Pong`."""

    note: str = ""


@message("kernel.Pong")
class Pong(Message):
    """The answer to :class:`Ping`, usually echoing its ``note``."""

    note: str = ""
