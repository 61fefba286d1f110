"""Telegram's messages inside greenroom: a webhook update handed to ``/connectors/telegram``.

The HTTP door receives Telegram's webhook POST (after checking its secret
header) and asks the Telegram connector with :class:`TelegramUpdate`; the
connector answers once the update is durable (or known to be ignorable), and
only then does the HTTP door answer Telegram 200. The update itself is
untrusted JSON, parsed by the connector.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from ._message import Message
from ._storable import storable_problem
from .wire import message

__all__ = ["TelegramUpdate"]


@message("telegram.Update")
class TelegramUpdate(Message):
    """One Bot API ``Update`` object as received; answered with ``"ok"`` once durable."""

    update: dict[str, Any]

    @field_validator("update")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = storable_problem(value)
        if problem:
            raise ValueError(problem)
        return value
