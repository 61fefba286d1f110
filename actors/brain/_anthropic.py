"""Anthropic's Messages API through the official SDK (``AsyncAnthropic``).

The SDK is anyio-based, so it runs on trio as it is; it speaks HTTP through
``httpx2``, the client it is built on. SDK retries are off (``max_retries=0``):
the cascade decides what happens after a failure. ``stream=True`` requests use
the SDK's streaming helper (server-sent events) and return the accumulated
final message, so both paths end in the same :class:`Completion`.

Metering: the stream's events are read one by one so that the call's ``Meter``
holds ``message_start``'s usage and the output streamed so far when a
supersede cancels it mid-way. The SDK has no way to pass httpcore's ``trace``
extension per request, so the client's request hook adds it, taking the
current call's meter from a context variable that ``complete`` sets: trio
gives each task its own context, so concurrent calls on the one shared client
never see each other's meter.
"""

from __future__ import annotations

import base64
import contextvars
from typing import TYPE_CHECKING, Any

import anthropic
import httpx2

from ._errors import ModelCallError
from ._providers import (
    Completion,
    ModelRequest,
    ProviderName,
    ToolCall,
    Turn,
    error_message,
    status_failure,
)

if TYPE_CHECKING:
    from ._ledger import Meter

__all__ = ["DEFAULT_BASE_URL", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"

_METER: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("_METER", default=None)


async def _trace_request(request: httpx2.Request) -> None:
    """The client's request hook: give the request the current call's ``Meter.trace``.
    A hook rather than a transport wrapper so that it also reaches the transports
    httpx mounts for proxies from the environment."""
    meter = _METER.get()
    if meter is not None:
        request.extensions = {**request.extensions, "trace": meter.trace}


class AnthropicProvider:
    """Calls Anthropic models with one shared SDK client (one key, one base URL)."""

    name: ProviderName = "anthropic"

    def __init__(
        self,
        api_key: str,
        base_url: str = "",
        *,
        timeout_s: float = 120.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        # The SDK's own timeout is only a backstop: trio.fail_after in the
        # cascade is the real bound (it runs on the virtual clock in tests).
        self._http = httpx2.AsyncClient(
            transport=transport, timeout=timeout_s, event_hooks={"request": [_trace_request]}
        )
        # Explicit api_key and base_url: the SDK then reads no credentials or
        # URL from the environment behind the config system's back.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or DEFAULT_BASE_URL,
            max_retries=0,
            timeout=timeout_s,
            http_client=self._http,
            open_telemetry=False,
        )

    async def aclose(self) -> None:
        """Close the SDK client and its HTTP connections."""
        await self._client.close()
        await self._http.aclose()

    async def complete(self, model: str, request: ModelRequest, meter: Meter) -> Completion:
        """One Messages API call; see :meth:`Provider.complete`."""
        params = _params(model, request)
        token = _METER.set(meter)
        try:
            if request.stream:
                async with self._client.messages.stream(**params) as stream:
                    async for event in stream:
                        _observe(meter, event)
                    message = await stream.get_final_message()
            else:
                message = await self._client.messages.create(**params)
        except anthropic.APIStatusError as exc:
            raise status_failure(
                exc.status_code, exc.response.headers, error_message(exc.body, exc.message)
            ) from exc
        except anthropic.APITimeoutError as exc:
            raise ModelCallError("timeout", "request timed out") from exc
        except anthropic.APIConnectionError as exc:
            cause = exc.__cause__
            raise ModelCallError("connection", str(cause or exc) or type(exc).__name__) from exc
        except httpx2.TimeoutException as exc:
            # The SDK maps transport errors of the request, not of a streamed body
            # read afterwards: a stream that stalls or breaks mid-way raises these.
            raise ModelCallError("timeout", "request timed out") from exc
        except httpx2.TransportError as exc:
            raise ModelCallError("connection", str(exc) or type(exc).__name__) from exc
        except (anthropic.AnthropicError, ValueError) as exc:
            # An answer the SDK could not read (bad JSON, a broken event stream).
            raise ModelCallError("server", f"unreadable answer: {exc}") from exc
        finally:
            _METER.reset(token)
        usage = message.usage
        meter.report(usage.input_tokens, usage.output_tokens, final=True)
        return _completion(message)


def _observe(meter: Meter, event: Any) -> None:
    """Keep ``meter`` up to date from one stream event. Only the raw events count:
    the SDK's derived ``text``/``input_json`` events repeat the deltas."""
    match event.type:
        case "message_start":
            usage = event.message.usage
            meter.report(usage.input_tokens, usage.output_tokens, final=False)
        case "content_block_delta":
            delta = event.delta
            piece = getattr(delta, "text", None) or getattr(delta, "partial_json", None)
            piece = piece or getattr(delta, "thinking", None) or ""
            meter.chars_out += len(piece)
        case "message_delta":
            # Cumulative totals: the output count is the final one, and an input
            # count (sent by newer API versions) overrides message_start's.
            usage = event.usage
            meter.report(getattr(usage, "input_tokens", None), usage.output_tokens, final=True)
        case _:
            pass


def _params(model: str, request: ModelRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": [_message(turn) for turn in request.turns],
    }
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
        choice = request.tool_choice
        params["tool_choice"] = (
            {"type": choice} if choice in ("auto", "none") else {"type": "tool", "name": choice}
        )
    return params


def _message(turn: Turn) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": result.call_id,
            "content": result.content,
            "is_error": result.is_error,
        }
        for result in turn.tool_results
    ]
    content.extend(
        {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": image.media_type,
                "data": base64.b64encode(image.data).decode("ascii"),
            },
        }
        for image in turn.images
    )
    if turn.text:  # the API refuses empty text blocks
        content.append({"type": "text", "text": turn.text})
    content.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input or {}}
        for call in turn.tool_calls
    )
    return {"role": turn.role, "content": content}


def _completion(message: Any) -> Completion:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append(ToolCall.from_arguments(block.id, block.name, block.input))
    return Completion(
        text="".join(texts),
        tool_calls=tuple(calls),
        stop_reason=message.stop_reason or "",
        meta={"id": message.id},
    )
