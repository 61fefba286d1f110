"""The base class of every message that crosses an actor or process boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Message"]


class Message(BaseModel):
    """A small, explicit, immutable message.

    Frozen, so a message shared between actors cannot be changed under the
    receiver's feet (assignment raises ``pydantic.ValidationError``); extra
    fields are forbidden, so a typo in a body is an error rather than silently
    dropped data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
