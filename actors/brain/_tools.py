"""Tools the answering model may call, each with a tier, and the registry that enforces it.

Tiers are enforced twice: :meth:`ToolRegistry.visible` shows the model only the
tools the caller's tier permits, and :meth:`ToolRegistry.call` checks the tier
again before running one, since a model can name a tool it was never shown.
A refused call is written to the audit log and answered with an error result;
it never runs. Bad input from the model is an error result too (the model can
correct itself); a storage failure is not caught (let it crash).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog

from ._providers import ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:
    from storage import Store

    from ._brain import CallContext

__all__ = ["DEFAULT_TOOLS", "Tool", "ToolInputError", "ToolRegistry", "permits"]

log = structlog.get_logger("greenroom.brain")

Tier = Literal["public", "admin"]
Handler = Callable[["CallContext", "Store", dict[str, Any]], Awaitable[str]]


class ToolInputError(Exception):
    """The model's arguments for a tool are invalid; the message goes back to the model."""


@dataclass(frozen=True)
class Tool:
    """A tool: what the model sees (name, description, schema) and who may run it."""

    name: str
    description: str
    tier: Tier
    input_schema: dict[str, Any]
    handler: Handler

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.input_schema)


def permits(caller: Tier, required: Tier) -> bool:
    """Admins may run every tool; the public only public ones."""
    return caller == "admin" or required == "public"


class ToolRegistry:
    """An immutable set of tools by name."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"tool names must be unique, {tool.name!r} is registered twice")
            self._tools[tool.name] = tool

    def names(self) -> list[str]:
        return list(self._tools)

    def visible(self, tier: Tier) -> tuple[ToolSpec, ...]:
        """The specs of the tools ``tier`` may run, in registration order."""
        return tuple(t.spec for t in self._tools.values() if permits(tier, t.tier))

    async def call(self, ctx: CallContext, store: Store, call: ToolCall) -> ToolResult:
        """Run one tool call for ``ctx`` and return its result (an error result for an
        unknown tool, a refused tier or bad input). A refusal is audited first. A
        checkpoint; cancellation interrupts the tool (its store call is one transaction)."""
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolResult(call.id, f"error: unknown tool {call.name!r}", is_error=True)
        if not permits(ctx.tier, tool.tier):
            log.warning("brain.tool_refused", tool=tool.name, user=ctx.user_key, tier=ctx.tier)
            await store.audit(
                ctx.user_key,
                "brain.tool_refused",
                {"tool": tool.name, "tier": ctx.tier, "required": tool.tier},
            )
            return ToolResult(
                call.id, f"error: tool {tool.name!r} requires the {tool.tier} tier", is_error=True
            )
        if call.input is None:
            return ToolResult(
                call.id, f"error: arguments must be a JSON object, got {call.raw!r}", True
            )
        try:
            content = await tool.handler(ctx, store, call.input)
        except ToolInputError as exc:
            return ToolResult(call.id, f"error: {exc}", is_error=True)
        return ToolResult(call.id, content)


# --------------------------------------------------------------------------- argument helpers


def _text(args: dict[str, Any], key: str, *, max_len: int = 1000) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ToolInputError(f"{key} must be a non-empty string")
    if len(value) > max_len:
        raise ToolInputError(f"{key} must be at most {max_len} characters")
    return value.strip()


def _limit(args: dict[str, Any], default: int, high: int) -> int:
    value = args.get("limit", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ToolInputError(f"limit must be an integer from 1 to {high}, not {value!r}")
    return value


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


_LIMIT = {"type": "integer", "minimum": 1, "maximum": 30}

# --------------------------------------------------------------------------- the tools


async def _current_time(ctx: CallContext, store: Store, args: dict[str, Any]) -> str:
    now = store.now()  # the one clock (protocols.Clock), never the OS's directly
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, UTC)"


async def _remember(ctx: CallContext, store: Store, args: dict[str, Any]) -> str:
    fact = _text(args, "fact", max_len=500)
    await store.remember(ctx.user_key, fact)
    return f"remembered: {fact}"


async def _recall(ctx: CallContext, store: Store, args: dict[str, Any]) -> str:
    memories = await store.recall(ctx.user_key, _limit(args, 30, 100))
    if not memories:
        return "nothing remembered about this user yet"
    return "\n".join(f"- {m.fact} (noted {m.created_at:%Y-%m-%d})" for m in memories)


async def _recent_messages(ctx: CallContext, store: Store, args: dict[str, Any]) -> str:
    if ctx.thread_id is None:
        raise ToolInputError("this conversation has no stored thread")
    messages = await store.recent_messages(ctx.thread_id, _limit(args, 10, 30))
    if not messages:
        return "no messages yet"
    return "\n".join(f"[{m.created_at:%Y-%m-%d %H:%M}] {m.role}: {m.text}" for m in messages)


async def _token_spend_today(ctx: CallContext, store: Store, args: dict[str, Any]) -> str:
    today = store.now().date()  # the Store's day: the ledger's rows are stamped by it
    spend = {}
    for scope in ("reactive", "proactive"):
        s = await store.token_spend(scope, today)
        spend[scope] = {
            "calls": s.calls,
            "tokens_in": s.tokens_in,
            "tokens_out": s.tokens_out,
            "cost_usd": round(s.cost, 6),
        }
    return json.dumps({"day": today.isoformat(), **spend})


DEFAULT_TOOLS: tuple[Tool, ...] = (
    Tool(
        "current_time",
        "The current date and time (UTC).",
        "public",
        _schema({}),
        _current_time,
    ),
    Tool(
        "remember",
        "Remember one fact about the user you are talking to, for later conversations.",
        "public",
        _schema({"fact": {"type": "string", "description": "one short fact"}}, ("fact",)),
        _remember,
    ),
    Tool(
        "recall",
        "The facts remembered about the user you are talking to, oldest first.",
        "public",
        _schema({"limit": {"type": "integer", "minimum": 1, "maximum": 100}}),
        _recall,
    ),
    Tool(
        "recent_messages",
        "The latest messages of this conversation, oldest first, with timestamps.",
        "public",
        _schema({"limit": _LIMIT}),
        _recent_messages,
    ),
    Tool(
        "token_spend_today",
        "Operators only: today's LLM calls, tokens and cost (USD), reactive and proactive.",
        "admin",
        _schema({}),
        _token_spend_today,
    ),
)
