"""Any OpenAI-compatible chat-completions endpoint (OpenAI, OpenRouter, local servers), over httpx.

One ``httpx.AsyncClient`` serves every ``openai`` model; each model's
``base_url`` (which includes the version, ``.../v1``) is joined with
``/chat/completions`` per call. Forced tool calls use
``tool_choice={"type": "function", "function": {"name": ...}}``. Requests are
not streamed: the answer is read whole. httpcore's ``trace`` extension tells
the call's ``Meter`` when the whole request went out; an answer without
``usage`` (some local servers) leaves the counts to the ledger's estimate.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import httpx

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

__all__ = ["OpenAIProvider"]


class OpenAIProvider:
    """Calls one OpenAI-compatible endpoint (one per configured model); every
    instance shares the Brain's ``httpx.AsyncClient``. Never logs the key."""

    name: ProviderName = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        client: httpx.AsyncClient,
    ) -> None:
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client  # shared by every openai model; the Brain closes it

    async def aclose(self) -> None:
        """Nothing to close: the shared client belongs to the Brain."""

    async def complete(self, model: str, request: ModelRequest, meter: Meter) -> Completion:
        """One chat-completions call; see :meth:`Provider.complete`."""
        body = _body(model, request)
        try:
            response = await self._client.post(
                self._url, json=body, headers=self._headers, extensions={"trace": meter.trace}
            )
        except httpx.TimeoutException as exc:
            raise ModelCallError("timeout", "request timed out") from exc
        except httpx.TransportError as exc:
            raise ModelCallError("connection", str(exc) or type(exc).__name__) from exc
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = error_message(data, response.reason_phrase or "error")
            raise status_failure(response.status_code, response.headers, message)
        try:
            completion, usage = _completion(data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ModelCallError("server", f"unreadable answer: {exc!r}") from exc
        meter.chars_out += len(completion.text) + sum(
            len(c.raw) if c.input is None else len(json.dumps(c.input))
            for c in completion.tool_calls
        )
        meter.report(*usage, final=usage[1] is not None)
        return completion


def _body(model: str, request: ModelRequest) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for turn in request.turns:
        messages.extend(_messages(turn))
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
        choice = request.tool_choice
        body["tool_choice"] = (
            choice
            if choice in ("auto", "none")
            else {"type": "function", "function": {"name": choice}}
        )
    return body


def _messages(turn: Turn) -> list[dict[str, Any]]:
    # Tool results are "tool" messages of their own, before any user text.
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in turn.tool_results
    ]
    if turn.role == "assistant":
        message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
        if turn.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.input or {})},
                }
                for call in turn.tool_calls
            ]
        out.append(message)
    elif turn.images:
        parts: list[dict[str, Any]] = [
            {
                "type": "image_url",
                "image_url": {
                    "url": f"data:{image.media_type};base64,"
                    + base64.b64encode(image.data).decode("ascii")
                },
            }
            for image in turn.images
        ]
        if turn.text:
            parts.append({"type": "text", "text": turn.text})
        out.append({"role": "user", "content": parts})
    elif turn.text:
        out.append({"role": "user", "content": turn.text})
    return out


def _completion(data: Any) -> tuple[Completion, tuple[int | None, int | None]]:
    """The answer, and its ``(prompt_tokens, completion_tokens)``, None where absent."""
    choice = data["choices"][0]
    message = choice["message"]
    calls = tuple(
        ToolCall.from_arguments(c["id"], c["function"]["name"], c["function"].get("arguments"))
        for c in message.get("tool_calls") or ()
    )
    usage = data.get("usage") or {}
    counts = tuple(
        None if usage.get(k) is None else int(usage[k])
        for k in ("prompt_tokens", "completion_tokens")
    )
    completion = Completion(
        text=message.get("content") or "",
        tool_calls=calls,
        stop_reason=choice.get("finish_reason") or "",
        meta={"id": data.get("id", "")},
    )
    return completion, (counts[0], counts[1])
