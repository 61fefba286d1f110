"""The HTTP API's bodies, as pydantic models: what ``/openapi.json`` describes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocols import ReplyKind

__all__ = [
    "Accepted",
    "ApprovalOut",
    "ErrorOut",
    "Event",
    "Events",
    "Health",
    "MessageIn",
    "Readiness",
    "SessionOut",
]


class ErrorOut(BaseModel):
    """Every error answer: a stable code for programs and a sentence for people."""

    error: str = Field(examples=["unauthorized"])
    message: str = Field(examples=["missing Authorization: Bearer <token> header"])


class SessionOut(BaseModel):
    """A new guest identity and its bearer token (shown once; only its hash is stored)."""

    user: str = Field(examples=["http:3f2a9c0d1b7e4a5f6c8d9e0f"])
    token: str


class MessageIn(BaseModel):
    """``POST /api/messages``. ``client_id`` makes a retry idempotent: the same id from
    the same user is stored once and answers with the first message's id."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="What the person wrote: not blank, at most max_text_bytes.")
    client_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class Accepted(BaseModel):
    """The message is durable; its id (the reply feed's ``seq`` values are above it)."""

    id: int


class Event(BaseModel):
    """One reply in the user's feed; ``seq`` orders the feed and resumes it."""

    seq: int
    kind: ReplyKind
    text: str
    approval_id: int | None = Field(None, description="Set on an ack that waits for OK.")
    at: datetime


class Events(BaseModel):
    """``GET /api/events``: the replies after ``after``, oldest first (at most 100)."""

    events: list[Event]


class ApprovalOut(BaseModel):
    """The plan was approved; work starts."""

    status: Literal["approved"]


class Health(BaseModel):
    """``GET /healthz``: the process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """``GET /readyz``: each check's state; ``ready`` only when all are ``ok``."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, str]
