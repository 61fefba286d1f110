"""The seam between the brain and an LLM endpoint: neutral request/answer types.

A :class:`Provider` turns a :class:`ModelRequest` into one HTTP call in its own
wire format (Anthropic Messages, OpenAI chat completions) and the answer back
into a :class:`Completion`, filling in the call's ``Meter`` (``_ledger``) as it
goes: whether the request went out and the usage the provider reported. Failures
leave a provider only as ``ModelCallError``; everything else (cascade, breaker,
timeout, ledger) is the brain's business, so a provider is small and stateless
apart from its client.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from protocols import Clock, system_clock

from ._errors import ModelCallError

if TYPE_CHECKING:
    from ._ledger import Meter

__all__ = [
    "Completion",
    "ModelRequest",
    "Provider",
    "ProviderName",
    "ToolCall",
    "ToolChoice",
    "ToolResult",
    "ToolSpec",
    "Turn",
    "error_message",
    "parse_retry_after",
    "status_failure",
]

ProviderName = Literal["anthropic", "openai"]
#: "auto": the model may call a tool; "none": it must reply in text; any other
#: string forces a call of the tool with that name.
ToolChoice = str


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: name, description, JSON schema of its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for.

    ``input`` is the parsed arguments, or None when they were not a JSON
    object (``raw`` then holds what was sent, for the error message).
    """

    id: str
    name: str
    input: dict[str, Any] | None
    raw: str = ""

    @classmethod
    def from_arguments(cls, id: str, name: str, arguments: Any) -> ToolCall:
        """Build from a JSON string (OpenAI) or an already parsed value (Anthropic)."""
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                return cls(id, name, None, arguments[:500])
        if isinstance(arguments, dict):
            return cls(id, name, arguments, "")
        return cls(id, name, None, repr(arguments)[:500])


@dataclass(frozen=True)
class ToolResult:
    """What a tool call produced, sent back to the model."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Image:
    """An image the user sent, for a vision-capable model."""

    media_type: str  # "image/jpeg", "image/png", ...
    data: bytes


@dataclass(frozen=True)
class Turn:
    """One message of the conversation in neutral form.

    A user turn carries text or tool results; an assistant turn carries text
    and/or tool calls. Each provider renders it in its own wire format.
    """

    role: Literal["user", "assistant"]
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    images: tuple[Image, ...] = ()  # user turns only


@dataclass(frozen=True)
class ModelRequest:
    """Everything one model call needs except the model."""

    system: str
    turns: tuple[Turn, ...]
    max_tokens: int
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"
    stream: bool = False


@dataclass(frozen=True)
class Completion:
    """A model's answer: its text and the tools it called. What it cost is in the
    call's ``Meter``, which also outlives a call that never returned one."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """One wire format. ``complete`` is the only call; ``aclose`` releases the client."""

    name: ProviderName

    async def complete(self, model: str, request: ModelRequest, meter: Meter) -> Completion:
        """Call ``model`` once (no retries), recording in ``meter`` whether the request
        went out, the usage the provider reported and the output received so far.
        Raises ModelCallError on any failure; a checkpoint; cancellation abandons the
        HTTP request, and ``meter`` then says what was spent up to that point."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client this provider owns."""
        ...


# --------------------------------------------------------------------------- HTTP failures

#: A retry-after beyond this is clamped: a broken header must not bench a model for a day.
MAX_RETRY_AFTER_S = 600.0


def parse_retry_after(headers: Mapping[str, str], now: Clock = system_clock) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds or an HTTP date, counted
    from ``now``), or None.

    ``retry-after-ms`` (sent by some OpenAI-compatible servers) wins when present.
    Unparsable or negative values are None; large ones are clamped to MAX_RETRY_AFTER_S.
    """
    seconds: float | None = None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            seconds = float(ms) / 1000
        except ValueError:
            seconds = None
    if seconds is None and (value := headers.get("retry-after")) is not None:
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = (parsedate_to_datetime(value) - now()).total_seconds()
            except (TypeError, ValueError):
                seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def status_failure(status: int, headers: Mapping[str, str], message: str) -> ModelCallError:
    """The ModelCallError for an HTTP error status, by the cascade's table:
    429 rate_limited (with retry-after), 529 overloaded, other 5xx server, other 4xx client."""
    if status == 429:
        return ModelCallError(
            "rate_limited", message, status=status, retry_after=parse_retry_after(headers)
        )
    if status == 529:
        return ModelCallError("overloaded", message, status=status)
    if status >= 500:
        return ModelCallError("server", message, status=status)
    return ModelCallError("client", message, status=status)


def error_message(body: Any, fallback: str) -> str:
    """The ``error.message`` of an Anthropic or OpenAI error body, else ``fallback``."""
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            kind = error.get("type")
            return f"{kind}: {error['message']}" if isinstance(kind, str) else error["message"]
    return fallback
