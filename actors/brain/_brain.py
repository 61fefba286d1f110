"""The Brain: the one object user actors and proactive actors call for LLM work.

It owns the provider clients, the per-model breakers and the tool registry;
every call goes through the purpose's cascade (see ``_cascade``) and every
attempt that reached a provider writes one token-ledger row (see ``_ledger``):
an answer, whether or not it was usable (an invalid ``report_intent`` still
cost tokens), and also a call that timed out, broke off or was cancelled by a
supersede after the provider had it, with the provider's usage where it said
and an estimate where not (``meta.estimated``), and ``meta.outcome`` saying
which. An HTTP error status, or a request that never went out, writes no row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
import httpx2
import pydantic
import structlog
import trio

from config import Settings
from protocols import ChatTurn, Intent
from storage import Store, TokenUsage

from ._anthropic import AnthropicProvider
from ._breaker import Breaker
from ._cascade import Cascade, ModelSlot
from ._errors import BrainError, InvalidIntent
from ._ledger import Spent, write_usage
from ._openai import OpenAIProvider
from ._prompts import (
    ANSWER_SYSTEM,
    CLASSIFY_SYSTEM,
    DESCRIBE_SYSTEM,
    MEMORIES_SYSTEM,
    REPORT_IMAGE,
    REPORT_INTENT,
    REPORT_MEMORIES,
    SUMMARIZE_SYSTEM,
    render_context,
    transcript,
)
from ._providers import Completion, Image, ModelRequest, Provider, Turn
from ._tools import DEFAULT_TOOLS, ToolRegistry

__all__ = ["Brain", "CallContext", "Purpose"]

log = structlog.get_logger("greenroom.brain")

Purpose = Literal["classify", "answer", "background"]
T = TypeVar("T")
_MAX_FACTS = 20


@dataclass(frozen=True)
class CallContext:
    """Who a call is for: ledger scope, tool tier, and the thread the tools may read."""

    user_key: str  # "telegram:42"
    tier: Literal["public", "admin"]
    thread_id: int | None  # for the recent_messages tool
    scope: Literal["reactive", "proactive"] = "reactive"


class Brain:
    """LLM gateway: classify, answer (with tools), summarize, extract memories.

    Constructing it calls nothing and never fails for missing credentials: a
    model without them is skipped, and with none usable every call raises
    NoModelConfigured. ``transport`` replaces the HTTP transport of the
    OpenAI-compatible client (httpx), ``anthropic_transport`` that of the
    Anthropic SDK (which is built on httpx2); both are test seams only.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        anthropic_transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        cfg = settings.brain
        self._store = store
        self._cascades: dict[Purpose, tuple[str, ...]] = {
            "classify": cfg.cascades.classify,
            "answer": cfg.cascades.answer,
            "background": cfg.cascades.background,
        }
        self._max_tokens = cfg.max_output_tokens
        self._max_tool_steps = cfg.max_tool_steps
        backstop = cfg.call_timeout_s * 2  # trio.fail_after is the real bound
        self._http = httpx.AsyncClient(transport=transport, timeout=backstop)
        key = settings.anthropic_api_key
        self._anthropic = (
            None
            if key is None
            else AnthropicProvider(
                key.get_secret_value(),
                settings.anthropic.base_url,
                timeout_s=backstop,
                transport=anthropic_transport,
            )
        )
        openai_key = settings.openai_api_key
        slots: dict[str, ModelSlot] = {}
        for name, m in cfg.models.items():
            provider: Provider | None
            if m.provider == "anthropic":
                provider, missing = self._anthropic, "ANTHROPIC_API_KEY is unset"
            else:
                secret = None if openai_key is None else openai_key.get_secret_value()
                provider, missing = OpenAIProvider(m.base_url, secret, client=self._http), ""
            slots[name] = ModelSlot(
                name=name,
                provider_name=m.provider,
                model=m.model,
                price_in_per_mtok=m.price_in_per_mtok,
                price_out_per_mtok=m.price_out_per_mtok,
                provider=provider,
                missing="" if provider is not None else missing,
                breaker=Breaker(cfg.breaker_failures, cfg.breaker_cooldown_s),
            )
        self._cascade = Cascade(slots, timeout_s=cfg.call_timeout_s)
        self._tools = ToolRegistry(DEFAULT_TOOLS)

    # ------------------------------------------------------------------ state

    @property
    def configured(self) -> bool:
        """Whether any cascade has a model with credentials."""
        return any(self._cascade.usable(names) for names in self._cascades.values())

    def status(self) -> dict[str, Any]:
        """Per model: provider, model id, configured, breaker state, consecutive failures.
        Reads ``trio.current_time()``: call it from the trio loop."""
        now = trio.current_time()
        return {
            name: {
                "provider": slot.provider_name,
                "model": slot.model,
                "configured": slot.provider is not None,
                "breaker": slot.breaker.state(now),
                "consecutive_failures": slot.breaker.failures,
            }
            for name, slot in self._cascade.slots.items()
        }

    async def aclose(self) -> None:
        """Close the HTTP clients. Idempotent; shielded, so it completes when cancelled."""
        with trio.CancelScope(shield=True):
            if self._anthropic is not None:
                await self._anthropic.aclose()
            await self._http.aclose()

    # ------------------------------------------------------------------ purposes

    async def classify(
        self, ctx: CallContext, context: Sequence[ChatTurn], message: ChatTurn | str
    ) -> Intent:
        """Classify ``message`` (the user's current message) with the classify cascade,
        through a forced ``report_intent`` tool call.

        ``context`` is the thread's turns BEFORE the current message; ``message`` is
        sent once, as the end of the request's last user turn. Pass it as a ChatTurn
        (role "user") to have it stamped with its time and author like the
        context's turns (see ``render_context``; a context that still ends with that
        very turn does not send it twice); a str is sent as it is, unstamped.
        ValueError for a ChatTurn that is not a user turn.

        Invalid tool input is asked for once more; a second invalid answer raises
        InvalidIntent (both answers are in the ledger). Also raises
        NoModelConfigured, AllModelsFailed. A checkpoint; cancellation abandons the
        model call, and its ledger row (the usage so far, or an estimate) is still
        written.
        """
        request = ModelRequest(
            system=CLASSIFY_SYSTEM,
            turns=render_context(context, message),
            max_tokens=self._max_tokens,
            tools=(REPORT_INTENT,),
            tool_choice=REPORT_INTENT.name,
        )
        return await self._forced("classify", ctx, request, Intent.model_validate, InvalidIntent)

    async def answer(
        self,
        ctx: CallContext,
        context: Sequence[ChatTurn],
        message: ChatTurn | str,
        plan: str | None,
    ) -> str:
        """Answer ``message`` (the user's current message) with the answer cascade, the
        tools ``ctx.tier`` permits and, when given, the approved ``plan``; return the
        reply text (never empty).

        ``context`` and ``message`` as for :meth:`classify`: the turns before the
        message, and the message once at the end of the last user turn. The user's
        memories and ``plan`` came from users (or a model reading them): they are
        sent as JSON data blocks (``<memories>``, ``<approved_plan>``) at the start
        of that turn, never in the system prompt.

        Tool rounds are bounded by ``max_tool_steps``: the call after the last
        round forbids tools. Raises NoModelConfigured, AllModelsFailed, or
        BrainError when no text came back; ValueError as for :meth:`classify`. A
        checkpoint; cancellation stops the loop (tools already run stay done) and
        the cancelled model call is still written to the ledger.
        """
        memories = await self._store.recall(ctx.user_key, _MAX_FACTS)
        data: list[tuple[str, Any]] = []
        if memories:
            data.append(("memories", [m.fact for m in memories]))
        if plan:
            data.append(("approved_plan", plan))
        turns = render_context(context, message, data)
        tools = self._tools.visible(ctx.tier)
        history = list(turns)
        for step in range(self._max_tool_steps + 1):
            last = step == self._max_tool_steps
            request = ModelRequest(
                system=ANSWER_SYSTEM,
                turns=tuple(history),
                max_tokens=self._max_tokens,
                tools=tools,
                tool_choice="none" if last else "auto",
                stream=True,
            )
            completion = await self._call("answer", ctx, request, step=step)
            if not completion.tool_calls or last:
                reply = completion.text.strip()
                if not reply:
                    raise BrainError(
                        f"the model gave no text (stop reason {completion.stop_reason or '?'})"
                    )
                return reply
            history.append(Turn("assistant", completion.text, tool_calls=completion.tool_calls))
            results = [await self._tools.call(ctx, self._store, c) for c in completion.tool_calls]
            history.append(Turn("user", tool_results=tuple(results)))
        raise AssertionError("unreachable: the last step returns or raises")

    async def summarize(self, ctx: CallContext, turns: Sequence[ChatTurn]) -> str:
        """Summarise ``turns`` with the background cascade; never returns an empty string.

        Raises BrainError for an empty summary (keep the long context then),
        NoModelConfigured, AllModelsFailed. A checkpoint; cancellation abandons
        the call.
        """
        request = ModelRequest(
            system=SUMMARIZE_SYSTEM,
            turns=(Turn("user", transcript(turns)),),
            max_tokens=self._max_tokens,
        )
        completion = await self._call("background", ctx, request, task="summarize")
        summary = completion.text.strip()
        if not summary:
            raise BrainError("the model returned an empty summary")
        return summary

    async def extract_memories(self, ctx: CallContext, turns: Sequence[ChatTurn]) -> list[str]:
        """Facts about the user ``ctx.user_key`` found in ``turns`` (stripped,
        deduplicated, at most 20), through a forced ``report_memories`` call on the
        background cascade. Stores nothing.

        The caller passes only that user's own turns (the assistant's replies to
        them may come along for context; in a group, never another member's turns:
        every fact found is taken to be about the one user); nothing here filters
        them. Invalid tool input is retried once, then BrainError; also
        NoModelConfigured, AllModelsFailed. A checkpoint; cancellation abandons the
        call (its ledger row is still written).
        """
        request = ModelRequest(
            system=MEMORIES_SYSTEM,
            turns=(Turn("user", transcript(turns)),),
            max_tokens=self._max_tokens,
            tools=(REPORT_MEMORIES,),
            tool_choice=REPORT_MEMORIES.name,
        )
        return await self._forced("background", ctx, request, _facts, BrainError)

    async def describe_image(
        self, ctx: CallContext, data: bytes, media_type: str
    ) -> dict[str, Any]:
        """What an image shows, for the context of a model that cannot see it:
        ``{"description", "text", "objects"}`` from a forced ``report_image`` call on
        the background cascade (its models must take images). Invalid tool input is
        retried once, then BrainError; also NoModelConfigured, AllModelsFailed;
        ValueError for an empty image or a media type that is not ``image/*``. A
        checkpoint; cancellation abandons the call.
        """
        if not data:
            raise ValueError("data must not be empty")
        if not media_type.startswith("image/"):
            raise ValueError(f"media_type must be image/*, not {media_type!r}")
        request = ModelRequest(
            system=DESCRIBE_SYSTEM,
            turns=(Turn("user", "Describe this image.", images=(Image(media_type, data),)),),
            max_tokens=self._max_tokens,
            tools=(REPORT_IMAGE,),
            tool_choice=REPORT_IMAGE.name,
        )
        return await self._forced("background", ctx, request, _image, BrainError)

    # ------------------------------------------------------------------ plumbing

    async def _forced(
        self,
        purpose: Purpose,
        ctx: CallContext,
        request: ModelRequest,
        parse: Callable[[dict[str, Any]], T],
        error: type[BrainError],
    ) -> T:
        tool = request.tool_choice
        problem = ""
        for attempt in (1, 2):
            completion = await self._call(purpose, ctx, request, attempt=attempt, tool=tool)
            call = next((c for c in completion.tool_calls if c.name == tool), None)
            if call is None:
                problem = f"the model did not call {tool}"
            elif call.input is None:
                problem = f"{tool} input is not a JSON object: {call.raw[:100]!r}"
            else:
                try:
                    return parse(call.input)
                except (pydantic.ValidationError, ValueError, TypeError) as exc:
                    problem = f"{tool} input is invalid: {_one_line(exc)}"
            log.warning("brain.invalid_tool_input", purpose=purpose, attempt=attempt, error=problem)
        raise error(f"{problem} (twice)")

    async def _call(
        self, purpose: Purpose, ctx: CallContext, request: ModelRequest, **meta: Any
    ) -> Completion:
        """The cascade's answer for ``purpose``; every attempt's ledger row is
        written inside (``record`` gets the slot that made it)."""

        async def record(slot: ModelSlot, spent: Spent) -> None:
            usage = TokenUsage(
                scope=ctx.scope,
                provider=slot.provider_name,
                model=slot.model,
                tokens_in=spent.tokens_in,
                tokens_out=spent.tokens_out,
                cost=slot.cost(spent.tokens_in, spent.tokens_out),
                meta={
                    "purpose": purpose,
                    "model_name": slot.name,
                    "user": ctx.user_key,
                    "outcome": spent.outcome,
                    "estimated": spent.estimated,
                    **meta,
                },
            )
            await write_usage(self._store, usage, raise_errors=spent.outcome == "ok")

        return await self._cascade.call(purpose, self._cascades[purpose], request, record)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()
        )
    return " ".join(str(exc).split())


def _facts(data: dict[str, Any]) -> list[str]:
    facts = data.get("facts")
    if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
        raise ValueError("facts must be a list of strings")
    out: list[str] = []
    for fact in facts:
        fact = " ".join(fact.split())[:300]
        if fact and fact not in out:
            out.append(fact)
    return out[:_MAX_FACTS]


def _image(data: dict[str, Any]) -> dict[str, Any]:
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("description must be a non-empty string")
    text = data.get("text", "")
    objects = data.get("objects", [])
    if not isinstance(text, str) or not isinstance(objects, list):
        raise ValueError("text must be a string and objects a list")
    return {
        "description": description.strip(),
        "text": text,
        "objects": [str(o) for o in objects][:50],
    }
