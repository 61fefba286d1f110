"""Anthropic's Messages API through the official SDK (``AsyncAnthropic``).

The SDK is anyio-based, so it runs on trio as it is; it speaks HTTP through
``httpx2``, the client it is built on. SDK retries are off (``max_retries=0``):
the cascade decides what happens after a failure. ``stream=True`` requests use
the SDK's streaming helper (server-sent events) and return the accumulated
final message, so both paths end in the same :class:`Completion`.
"""

from __future__ import annotations

import base64
from typing import Any

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

__all__ = ["DEFAULT_BASE_URL", "AnthropicProvider"]

DEFAULT_BASE_URL = "https://api.anthropic.com"


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
        self._http = httpx2.AsyncClient(transport=transport, timeout=timeout_s)
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

    async def complete(self, model: str, request: ModelRequest) -> Completion:
        """One Messages API call; see :meth:`Provider.complete`."""
        params = _params(model, request)
        try:
            if request.stream:
                async with self._client.messages.stream(**params) as stream:
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
        except (anthropic.AnthropicError, ValueError) as exc:
            # An answer the SDK could not read (bad JSON, a broken event stream).
            raise ModelCallError("server", f"unreadable answer: {exc}") from exc
        return _completion(message)


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
    usage = message.usage
    return Completion(
        text="".join(texts),
        tool_calls=tuple(calls),
        tokens_in=usage.input_tokens or 0,
        tokens_out=usage.output_tokens or 0,
        stop_reason=message.stop_reason or "",
        meta={"id": message.id},
    )
