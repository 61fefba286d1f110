"""Shared setup for the brain tests: settings pointing at the fake LLM, a Brain, the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from actors.brain import Brain, CallContext
from config import Settings
from storage import Store, TokenSpend, open_store
from storage._dialect import Dialect, Q, Row
from tests.fake_llm import FakeLLM, ToolUse

ANTHROPIC_KEY = "sk-ant-test-key"
OPENAI_KEY = "sk-oai-test-key"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PUBLIC = CallContext("telegram:42", "public", None)
ADMIN = CallContext("telegram:1", "admin", None)
INTENT = {
    "intent": "question",
    "summary": "The user asks what time it is.",
    "plan": "Tell them the current time.",
    "needs_confirmation": False,
    "confidence": 0.9,
}


def intent(
    needs_confirmation: bool,
    summary: str = "They want a poem.",
    plan: str = "Write a poem.",
    *,
    kind: str = "command",
    confidence: float = 0.9,
) -> ToolUse:
    """The classifier's forced ``report_intent`` call, as the fake LLM answers it."""
    return ToolUse(
        "report_intent",
        {
            "intent": kind,
            "summary": summary,
            "plan": plan,
            "needs_confirmation": needs_confirmation,
            "confidence": confidence,
        },
    )


def models(fake: FakeLLM) -> dict[str, Any]:
    return {
        "a": {
            "provider": "anthropic",
            "model": "claude-a",
            "price_in_per_mtok": 1.0,
            "price_out_per_mtok": 5.0,
        },
        "b": {
            "provider": "anthropic",
            "model": "claude-b",
            "price_in_per_mtok": 3.0,
            "price_out_per_mtok": 15.0,
        },
        "c": {"provider": "anthropic", "model": "claude-c"},
        "d": {"provider": "anthropic", "model": "claude-d"},
        "o": {
            "provider": "openai",
            "model": "gpt-o",
            "base_url": fake.openai_url,
            "price_in_per_mtok": 0.5,
            "price_out_per_mtok": 1.5,
        },
    }


def settings_for(
    fake: FakeLLM,
    *,
    cascade: list[str] | None = None,
    anthropic_key: str | None = ANTHROPIC_KEY,
    openai_key: str | None = OPENAI_KEY,
    anthropic_url: str | None = None,
    **brain: Any,
) -> Settings:
    """Settings whose models (``models``) point at ``fake``; ``brain`` overrides
    ``[brain]`` keys, ``anthropic_url`` the Anthropic base URL."""
    names = cascade or ["a"]
    data: dict[str, Any] = {
        "anthropic": {"base_url": anthropic_url or fake.url},
        "brain": {
            "models": models(fake),
            "cascades": {"classify": names, "answer": names, "background": names},
            **brain,
        },
    }
    if anthropic_key:
        data["anthropic_api_key"] = anthropic_key
    if openai_key:
        data["openai_api_key"] = openai_key
    return Settings.model_validate(data)


@asynccontextmanager
async def open_brain(settings: Settings, store: Store) -> AsyncIterator[Brain]:
    brain = Brain(settings, store)
    try:
        yield brain
    finally:
        await brain.aclose()


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    # A fixed wall clock: the ledger's day never straddles midnight mid-test.
    async with open_store(None, tmp_path, clock=lambda: NOW) as store:
        yield store


async def spend(store: Store, scope: str = "reactive") -> TokenSpend:
    return await store.token_spend(scope, NOW.date())  # type: ignore[arg-type]


_LEDGER_COLUMNS = ("provider", "model", "tokens_in", "tokens_out", "cost")


def _ledger_rows(d: Dialect) -> Generator[Q, list[Row], list[dict[str, Any]]]:
    rows = yield Q(f"SELECT {', '.join(_LEDGER_COLUMNS)}, meta FROM token_ledger ORDER BY id")
    return [{**{k: r[k] for k in _LEDGER_COLUMNS}, "meta": d.from_json(r["meta"])} for r in rows]


async def ledger(store: Store) -> list[dict[str, Any]]:
    """Every token_ledger row, oldest first, with its meta decoded. Read through the
    store's own backend (a private seam, tests only), so it reads either backend."""
    rows: list[dict[str, Any]] = await store._run(_ledger_rows)
    return rows
