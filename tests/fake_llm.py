"""A local stand-in for paid LLM APIs, speaking their real wire formats over HTTP/1.1.

Serves, on 127.0.0.1 and a free port:

- ``POST /v1/messages``: Anthropic's Messages API, plain JSON or, when the
  request says ``"stream": true``, server-sent events (``message_start``,
  ``content_block_start``, ``content_block_delta`` with ``text_delta`` /
  ``input_json_delta``, ``content_block_stop``, ``message_delta``,
  ``message_stop``); errors as ``{"type": "error", "error": {"type", "message"}}``.
- ``POST /v1/chat/completions``: OpenAI chat completions with ``tool_calls``
  and ``usage``; errors as ``{"error": {"message", "type", "param", "code"}}``.

Scripting: ``fake.script(model_id, reply, ...)`` queues replies per model id
(the request's ``"model"``); each request takes the next one. ``Hang()`` never
answers (a call that times out or is cancelled before any byte came back);
``Stall(reply, events=n)`` streams the first ``n`` server-sent events of
``reply`` and then holds the request (a stream cancelled mid-way), or with
``hang_up=True`` closes the connection there (a stream broken mid-way). Held
requests wait until the client hangs up; ``wait_hanging`` waits for them.
``gated(reply)`` answers only once its ``gate`` event is set (``arrived`` tells
the request came). ``fake.responder`` answers what nothing is scripted for (a
long run's model); without it, a model with
nothing queued answers 400 (a client error: the cascade stops and the test
fails with a clear message). ``fake.requests`` records every request. The
server is started by the ``fake_llm`` fixture with ``nursery.start``, so a
test begins only once it listens. Built on ``h11`` (already an httpx
dependency): no server framework needed.
"""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import h11
import pytest
import trio

from tests.h11kit import serve_connection, serve_loopback

__all__ = [
    "Call",
    "FakeLLM",
    "Gated",
    "Hang",
    "HttpError",
    "Recorded",
    "Reply",
    "Stall",
    "Text",
    "ToolUse",
    "fake_llm",
    "gated",
]

Provider = Literal["anthropic", "openai"]


@dataclass(frozen=True)
class Call:
    """A tool call in a reply; ``input`` a dict, or a string sent as-is (malformed JSON)."""

    name: str
    input: dict[str, Any] | str


@dataclass(frozen=True)
class Reply:
    """A successful answer: text and/or tool calls, with its usage."""

    text: str = ""
    calls: tuple[Call, ...] = ()
    tokens_in: int = 100
    tokens_out: int = 20


def Text(text: str, tokens_in: int = 100, tokens_out: int = 20) -> Reply:
    return Reply(text=text, tokens_in=tokens_in, tokens_out=tokens_out)


def ToolUse(name: str, input: dict[str, Any] | str, text: str = "", **usage: int) -> Reply:
    return Reply(text=text, calls=(Call(name, input),), **usage)


@dataclass(frozen=True)
class HttpError:
    """An error status with the provider's error body (``kind`` is Anthropic's error type)."""

    status: int
    kind: str = "api_error"
    message: str = "Internal server error"
    retry_after: float | None = None

    @classmethod
    def overloaded(cls) -> HttpError:
        return cls(529, "overloaded_error", "Overloaded")

    @classmethod
    def rate_limited(cls, retry_after: float | None = 30) -> HttpError:
        return cls(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit",
            retry_after,
        )

    @classmethod
    def server(cls) -> HttpError:
        return cls(500, "api_error", "Internal server error")

    @classmethod
    def bad_request(cls, message: str = "messages: field required") -> HttpError:
        return cls(400, "invalid_request_error", message)


@dataclass(frozen=True)
class Hang:
    """Never answer (until the client gives up and closes the connection)."""


@dataclass(frozen=True)
class Gated:
    """Answer ``reply`` only once ``gate`` is set (a test decides when an answer in
    flight lands); ``arrived`` is set when the request is waiting at the gate."""

    reply: Reply
    gate: trio.Event
    arrived: trio.Event


def gated(reply: Reply) -> Gated:
    """A :class:`Gated` reply with fresh events."""
    return Gated(reply, trio.Event(), trio.Event())


@dataclass(frozen=True)
class Stall:
    """Stream ``reply``'s first ``events`` server-sent events (``message_start`` is the
    first, then ``content_block_start``, ``ping``, the text deltas...), then hold the
    request until the client hangs up, or with ``hang_up`` close the connection at
    once (a stream broken mid-way). For a request that is not streamed: a Hang."""

    reply: Reply
    events: int = 1
    hang_up: bool = False


Script = Reply | HttpError | Hang | Stall | Gated

_OPENAI_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    529: ("server_error", None),
}


@dataclass
class Recorded:
    """One request the fake received."""

    provider: Provider
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def tool_names(self) -> list[str]:
        tools = self.body.get("tools") or []
        if self.provider == "anthropic":
            return [t["name"] for t in tools]
        return [t["function"]["name"] for t in tools]


@dataclass
class FakeLLM:
    """The scriptable server; see the module docstring."""

    requests: list[Recorded] = field(default_factory=list)
    port: int = 0
    #: answers a request nothing is scripted for (a long-running test's model), else 400
    responder: Callable[[dict[str, Any]], Script] | None = None
    _queues: dict[str, collections.deque[Script]] = field(
        default_factory=lambda: collections.defaultdict(collections.deque)
    )
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    #: requests held so far by Hang or Stall; ``_arrived`` is set whenever one
    #: starts to be held (tests wait on it instead of sleeping)
    hanging: int = 0
    _arrived: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        """Base URL for Anthropic (the SDK appends ``/v1/messages``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for OpenAI-compatible clients (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *replies: Script) -> None:
        """Queue ``replies`` for requests naming ``model``, in order."""
        self._queues[model].extend(replies)

    def pending(self) -> dict[str, int]:
        """Replies still queued, per model (tests assert it is empty)."""
        return {m: len(q) for m, q in self._queues.items() if q}

    async def wait_hanging(self, n: int = 1) -> None:
        """Wait until ``n`` requests are being held by Hang replies."""
        while self.hanging < n:
            self._arrived = trio.Event()
            await self._arrived.wait()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_loopback(self._connection, self._listening, task_status)

    def _listening(self, port: int) -> None:
        self.port = port

    # ------------------------------------------------------------------ HTTP/1.1

    async def _connection(self, stream: trio.SocketStream) -> None:
        await serve_connection(stream, self._handle)

    async def _send(self, conn: h11.Connection, stream: trio.SocketStream, *events: Any) -> None:
        for event in events:
            data = conn.send(event)
            if data:
                await stream.send_all(data)

    async def _handle(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, raw: bytes
    ) -> bool:
        path = request.target.decode()
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        provider: Provider
        if path.startswith("/v1/messages"):
            provider = "anthropic"
        elif path.startswith("/v1/chat/completions"):
            provider = "openai"
        else:
            await self._json(conn, stream, 404, {"error": f"no route {path}"})
            return True
        body = json.loads(raw or b"{}")
        self.requests.append(Recorded(provider, path, headers, body))
        queue = self._queues.get(body.get("model", ""))
        script: Script = (
            queue.popleft()
            if queue
            else self.responder(body)
            if self.responder is not None
            else HttpError(
                400,
                "invalid_request_error",
                f"fake_llm: nothing scripted for {body.get('model')!r}",
            )
        )
        if isinstance(script, Gated):
            script.arrived.set()
            await script.gate.wait()
            script = script.reply
        match script:
            case Stall() if provider == "anthropic" and body.get("stream"):
                await self._anthropic_stream(conn, stream, body, script.reply, stop=script.events)
                if not script.hang_up:
                    await self._hold(stream)
                return False  # the connection closes
            case Hang() | Stall():
                await self._hold(stream)
                return False
            case HttpError():
                extra = (
                    {} if script.retry_after is None else {"retry-after": f"{script.retry_after:g}"}
                )
                await self._json(
                    conn, stream, script.status, self._error_body(provider, script), extra
                )
            case Reply() if provider == "anthropic" and body.get("stream"):
                await self._anthropic_stream(conn, stream, body, script)
            case Reply() if provider == "anthropic":
                await self._json(conn, stream, 200, self._anthropic_message(body, script))
            case Reply():
                await self._json(conn, stream, 200, self._openai_completion(body, script))
        return True

    async def _hold(self, stream: trio.SocketStream) -> None:
        """Count the request as hanging, then hold it until the client hangs up."""
        self.hanging += 1
        self._arrived.set()
        while await stream.receive_some(65536):
            pass

    async def _json(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(data))),
            ("request-id", f"req_{next(self._ids)}"),
            *(extra or {}).items(),
        ]
        await self._send(
            conn,
            stream,
            h11.Response(status_code=status, headers=headers),
            h11.Data(data=data),
            h11.EndOfMessage(),
        )

    # ------------------------------------------------------------------ bodies

    def _error_body(self, provider: Provider, error: HttpError) -> dict[str, Any]:
        if provider == "anthropic":
            return {
                "type": "error",
                "error": {"type": error.kind, "message": error.message},
                "request_id": f"req_{next(self._ids)}",
            }
        kind, code = _OPENAI_TYPES.get(error.status, ("invalid_request_error", None))
        return {"error": {"message": error.message, "type": kind, "param": None, "code": code}}

    def _anthropic_blocks(self, reply: Reply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        for call in reply.calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(self._ids):04d}",
                    "name": call.name,
                    "input": call.input,
                }
            )
        return blocks

    def _anthropic_message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": f"msg_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": self._anthropic_blocks(reply),
            "stop_reason": "tool_use" if reply.calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": reply.tokens_in, "output_tokens": reply.tokens_out},
        }

    def _openai_completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids):04d}",
                    "type": "function",
                    "function": {
                        "name": call.name,
                        "arguments": call.input
                        if isinstance(call.input, str)
                        else json.dumps(call.input),
                    },
                }
                for call in reply.calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids):04d}",
            "object": "chat.completion",
            "created": 1_764_000_000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if reply.calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.tokens_in,
                "completion_tokens": reply.tokens_out,
                "total_tokens": reply.tokens_in + reply.tokens_out,
            },
        }

    async def _anthropic_stream(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        body: dict[str, Any],
        reply: Reply,
        *,
        stop: int | None = None,
    ) -> None:
        """Stream ``reply`` as server-sent events; with ``stop``, only the first
        ``stop`` events and no end of message (the stream stalls there)."""
        headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
        await self._send(conn, stream, h11.Response(status_code=200, headers=headers))
        sent = 0
        async for name, data in self._anthropic_events(body, reply):
            if stop is not None and sent >= stop:
                return
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            await self._send(conn, stream, h11.Data(data=chunk))
            sent += 1
        if stop is None:
            await self._send(conn, stream, h11.EndOfMessage())

    async def _anthropic_events(
        self, body: dict[str, Any], reply: Reply
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        start = self._anthropic_message(body, reply)
        blocks = start.pop("content")
        stop_reason = start["stop_reason"]
        start.update(
            content=[],
            stop_reason=None,
            usage={"input_tokens": reply.tokens_in, "output_tokens": 1},
        )
        yield "message_start", {"type": "message_start", "message": start}
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                yield (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                yield "ping", {"type": "ping"}
                text = block["text"]
                for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
            else:
                yield (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {**block, "input": {}},
                    },
                )
                raw = (
                    block["input"]
                    if isinstance(block["input"], str)
                    else json.dumps(block["input"])
                )
                for piece in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):
                    yield (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
        yield (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": reply.tokens_out},
            },
        )
        yield "message_stop", {"type": "message_stop"}


@pytest.fixture
async def fake_llm(nursery: trio.Nursery) -> FakeLLM:
    """A running FakeLLM; stopped with the test's nursery."""
    fake = FakeLLM()
    await nursery.start(fake.serve)
    return fake
