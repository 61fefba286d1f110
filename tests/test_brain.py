"""The brain against the fake LLM over real HTTP: classification, answers, tools, ledger.

The real ``anthropic`` SDK and httpx talk to ``tests/fake_llm.py`` on
127.0.0.1; the store is a real SQLite store (tools and ledger go through it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import actors.brain
from actors.brain import BrainActor, BrainError, InvalidIntent, NoModelConfigured
from config import ConfigError, load_settings
from protocols import Intent, Ping, Pong
from storage import Store
from tests.brainkit import (
    ADMIN,
    ANTHROPIC_KEY,
    INTENT,
    NOW,
    OPENAI_KEY,
    PUBLIC,
    open_brain,
    settings_for,
    spend,
    sqlite_store,
)
from tests.fake_llm import FakeLLM, HttpError, Text, ToolUse


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with sqlite_store(tmp_path) as st:
        yield st


def test_public_names_are_pinned() -> None:
    assert sorted(actors.brain.__all__) == sorted(
        [
            "AllModelsFailed",
            "Brain",
            "BrainActor",
            "BrainError",
            "CallContext",
            "InvalidIntent",
            "NoModelConfigured",
        ]
    )


# --------------------------------------------------------------------------- classify


async def test_classify_is_a_forced_tool_call_on_anthropic(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script("claude-a", ToolUse("report_intent", INTENT, tokens_in=1000, tokens_out=200))
    async with open_brain(settings_for(fake_llm), store) as brain:
        intent = await brain.classify(PUBLIC, [], "what time is it?")
    assert intent == Intent.model_validate(INTENT)
    [req] = fake_llm.requests
    assert req.provider == "anthropic" and req.model == "claude-a"
    assert req.body["tool_choice"] == {"type": "tool", "name": "report_intent"}
    assert req.tool_names == ["report_intent"]
    assert set(req.body["tools"][0]["input_schema"]["required"]) == set(INTENT)
    assert "stream" not in req.body
    assert ANTHROPIC_KEY in (
        req.headers.get("x-api-key", "") + req.headers.get("authorization", "")
    )
    assert req.body["messages"][-1]["content"] == [{"type": "text", "text": "what time is it?"}]
    s = await spend(store)
    # 1000 in at $1/MTok + 200 out at $5/MTok
    assert (s.calls, s.tokens_in, s.tokens_out) == (1, 1000, 200)
    assert s.cost == pytest.approx(0.002)


async def test_classify_is_a_forced_function_call_on_openai(
    fake_llm: FakeLLM, store: Store
) -> None:
    fake_llm.script("gpt-o", ToolUse("report_intent", INTENT, tokens_in=2000, tokens_out=100))
    async with open_brain(settings_for(fake_llm, cascade=["o"]), store) as brain:
        intent = await brain.classify(PUBLIC, [], "what time is it?")
    assert intent.plan == INTENT["plan"]
    [req] = fake_llm.requests
    assert req.provider == "openai" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert req.body["tool_choice"] == {"type": "function", "function": {"name": "report_intent"}}
    assert req.body["tools"][0]["type"] == "function" and req.tool_names == ["report_intent"]
    assert req.body["messages"][0]["role"] == "system"
    assert (await spend(store)).cost == pytest.approx((2000 * 0.5 + 100 * 1.5) / 1e6)


async def test_invalid_intent_is_retried_once_then_raises(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script(
        "claude-a",
        ToolUse("report_intent", {**INTENT, "confidence": 7}),
        ToolUse("report_intent", {"intent": "maybe"}),
    )
    async with open_brain(settings_for(fake_llm), store) as brain:
        with pytest.raises(InvalidIntent, match=r"report_intent input is invalid.*twice"):
            await brain.classify(PUBLIC, [], "hm")
    assert len(fake_llm.requests) == 2
    assert (await spend(store)).calls == 2  # both answers cost tokens


async def test_malformed_arguments_then_valid_on_openai(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script(
        "gpt-o",
        ToolUse("report_intent", '{"intent": "question", '),
        ToolUse("report_intent", INTENT),
    )
    async with open_brain(settings_for(fake_llm, cascade=["o"]), store) as brain:
        assert (await brain.classify(PUBLIC, [], "hm")).intent == "question"
    assert (await spend(store)).calls == 2


# --------------------------------------------------------------------------- answer and tools


async def test_answer_streams_and_remembers_then_recalls(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script(
        "claude-a",
        ToolUse("remember", {"fact": "likes green tea"}, text="Let me note that."),
        Text("Noted: you like green tea."),
        ToolUse("recall", {}),
        Text("You like green tea."),
    )
    async with open_brain(settings_for(fake_llm), store) as brain:
        first = await brain.answer(PUBLIC, [], "I like green tea", plan="Remember it.")
        second = await brain.answer(PUBLIC, [], "what do I like?", plan=None)
    assert (first, second) == ("Noted: you like green tea.", "You like green tea.")
    assert [m.fact for m in await store.recall(PUBLIC.user_key)] == ["likes green tea"]
    assert all(r.body["stream"] is True for r in fake_llm.requests)  # the SDK's SSE path
    # The plan and the memories are data blocks in the user turn, not in the system
    # prompt (issue 10.2; tests/test_brain_prompts.py has the escaping).
    plan_turn = fake_llm.requests[0].body["messages"][-1]["content"][-1]["text"]
    assert plan_turn.startswith('<approved_plan>\n"Remember it."\n</approved_plan>')
    assert "Remember it." not in fake_llm.requests[0].body["system"]
    # The assistant turn with text + tool_use was sent back verbatim, then the result.
    replay = fake_llm.requests[1].body["messages"]
    assert [b["type"] for b in replay[1]["content"]] == ["text", "tool_use"]
    recalled = fake_llm.requests[3].body["messages"][-1]["content"][0]
    assert recalled["type"] == "tool_result" and "likes green tea" in recalled["content"]
    memory_turn = fake_llm.requests[2].body["messages"][-1]["content"][-1]["text"]
    assert memory_turn.startswith('<memories>\n["likes green tea"]\n</memories>')
    assert "likes green tea" not in fake_llm.requests[2].body["system"]
    assert (await spend(store)).calls == 4


async def test_answer_tool_round_trip_on_openai(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script("gpt-o", ToolUse("current_time", {}), Text("It is noon."))
    async with open_brain(settings_for(fake_llm, cascade=["o"]), store) as brain:
        assert await brain.answer(PUBLIC, [], "time?", None) == "It is noon."
    messages = fake_llm.requests[1].body["messages"]
    assistant, tool = messages[-2], messages[-1]
    assert assistant["tool_calls"][0]["function"]["name"] == "current_time"
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "UTC" in tool["content"]
    # Issue 10.1 (one clock): the tool tells the Store's time, not the OS's.
    assert tool["content"].startswith(NOW.isoformat(timespec="seconds"))


async def test_tools_shown_depend_on_tier(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script("claude-a", Text("hi"), Text("hi"))
    async with open_brain(settings_for(fake_llm), store) as brain:
        await brain.answer(PUBLIC, [], "hi", None)
        await brain.answer(ADMIN, [], "hi", None)
    public, admin = (r.tool_names for r in fake_llm.requests)
    assert "token_spend_today" not in public
    assert set(public) == {"current_time", "remember", "recall", "recent_messages"}
    assert set(admin) == set(public) | {"token_spend_today"}


async def test_admin_tool_called_by_public_user_is_refused_and_audited(
    fake_llm: FakeLLM, store: Store
) -> None:
    # The model names a tool it was never shown: the second check refuses it.
    fake_llm.script("claude-a", ToolUse("token_spend_today", {}), Text("I cannot do that."))
    async with open_brain(settings_for(fake_llm), store) as brain:
        assert (
            await brain.answer(PUBLIC, [], "how much did you spend?", None) == "I cannot do that."
        )
    result = fake_llm.requests[1].body["messages"][-1]["content"][0]
    assert result["is_error"] is True and "requires the admin tier" in result["content"]
    [entry] = await store.audit_entries(action="brain.tool_refused")
    assert entry.actor == PUBLIC.user_key
    assert entry.detail == {"tool": "token_spend_today", "tier": "public", "required": "admin"}


async def test_admin_tool_runs_for_an_admin(fake_llm: FakeLLM, store: Store) -> None:
    """Issue 10.1 (a time bomb): ``token_spend_today`` read the OS's date while the
    ledger is stamped by the Store's clock, so this passed only on 2026-11-23."""
    fake_llm.script("claude-a", ToolUse("token_spend_today", {}), Text("Spent little."))
    async with open_brain(settings_for(fake_llm), store) as brain:
        await brain.answer(ADMIN, [], "spend?", None)
    result = fake_llm.requests[1].body["messages"][-1]["content"][0]
    assert result["is_error"] is False
    content = json.loads(result["content"])
    assert content["day"] == NOW.date().isoformat()
    assert content["reactive"]["calls"] == 1  # the first call of this answer
    assert await store.audit_entries(action="brain.tool_refused") == []


async def test_tool_loop_is_bounded(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script("claude-a", *[ToolUse("current_time", {})] * 2, Text("done"))
    async with open_brain(settings_for(fake_llm, max_tool_steps=2), store) as brain:
        assert await brain.answer(PUBLIC, [], "loop", None) == "done"
        assert [r.body["tool_choice"]["type"] for r in fake_llm.requests] == [
            "auto",
            "auto",
            "none",
        ]
        # A model that calls tools even when told not to gets no further round.
        fake_llm.script("claude-a", *[ToolUse("current_time", {})] * 3)
        with pytest.raises(BrainError, match="no text"):
            await brain.answer(PUBLIC, [], "loop", None)
    assert len(fake_llm.requests) == 6


async def test_recent_messages_without_a_thread_is_an_error_result(
    fake_llm: FakeLLM, store: Store
) -> None:
    fake_llm.script("claude-a", ToolUse("recent_messages", {"limit": 500}), Text("ok"))
    async with open_brain(settings_for(fake_llm), store) as brain:
        await brain.answer(PUBLIC, [], "what did I say?", None)
    result = fake_llm.requests[1].body["messages"][-1]["content"][0]
    assert result["is_error"] is True and "no stored thread" in result["content"]


# --------------------------------------------------------------------------- background


async def test_summarize_and_extract_memories(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script(
        "claude-a",
        Text("  The user likes tea.  "),
        ToolUse("report_memories", {"facts": ["Likes tea", " Likes  tea ", "", "Lives in Oslo"]}),
        Text("   "),
    )
    async with open_brain(settings_for(fake_llm), store) as brain:
        assert await brain.summarize(PUBLIC, []) == "The user likes tea."
        assert await brain.extract_memories(PUBLIC, []) == ["Likes tea", "Lives in Oslo"]
        with pytest.raises(BrainError, match="empty summary"):
            await brain.summarize(PUBLIC, [])
    assert fake_llm.requests[1].body["tool_choice"] == {"type": "tool", "name": "report_memories"}
    assert await store.recall(PUBLIC.user_key) == []  # extraction stores nothing itself


async def test_describe_image_sends_the_image_to_both_providers(
    fake_llm: FakeLLM, store: Store
) -> None:
    png = b"\x89PNG\r\n\x1a\n fake image bytes"
    report = {"description": " A red bicycle. ", "text": "SALE", "objects": ["bicycle", 3]}
    fake_llm.script("claude-a", ToolUse("report_image", report))
    fake_llm.script("gpt-o", ToolUse("report_image", report))
    async with open_brain(settings_for(fake_llm), store) as brain:
        found = await brain.describe_image(PUBLIC, png, "image/png")
        with pytest.raises(ValueError, match="image/"):
            await brain.describe_image(PUBLIC, png, "text/plain")
        with pytest.raises(ValueError, match="empty"):
            await brain.describe_image(PUBLIC, b"", "image/png")
    assert found == {"description": "A red bicycle.", "text": "SALE", "objects": ["bicycle", "3"]}
    [anthropic] = fake_llm.requests
    assert anthropic.body["tool_choice"] == {"type": "tool", "name": "report_image"}
    [block, text] = anthropic.body["messages"][0]["content"]
    assert block["type"] == "image" and block["source"]["media_type"] == "image/png"
    assert base64.b64decode(block["source"]["data"]) == png and text["type"] == "text"
    async with open_brain(settings_for(fake_llm, cascade=["o"]), store) as brain:
        assert (await brain.describe_image(PUBLIC, png, "image/png"))["text"] == "SALE"
    parts = fake_llm.requests[-1].body["messages"][-1]["content"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",")[1]) == png


# --------------------------------------------------------------------------- no model


async def test_no_model_configured(fake_llm: FakeLLM, store: Store) -> None:
    settings = settings_for(fake_llm, anthropic_key=None, cascade=["a", "b"])
    async with open_brain(settings, store) as brain:
        assert brain.configured is False
        for call in (
            brain.classify(PUBLIC, [], "hi"),
            brain.answer(PUBLIC, [], "hi", None),
            brain.summarize(PUBLIC, []),
            brain.extract_memories(PUBLIC, []),
        ):
            with pytest.raises(NoModelConfigured, match="set ANTHROPIC_API_KEY"):
                await call
        pong = await BrainActor(brain).receive(Ping())
    assert isinstance(pong, Pong) and pong.note.startswith("no model configured")
    assert fake_llm.requests == []


async def test_default_settings_without_keys_are_not_configured(store: Store) -> None:
    async with open_brain(load_settings(env={}), store) as brain:
        assert brain.configured is False
        assert brain.status()["haiku"] == {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "configured": False,
            "breaker": "closed",
            "consecutive_failures": 0,
        }
    keyed = load_settings(env={"ANTHROPIC_API_KEY": "k"})
    async with open_brain(keyed, store) as brain:
        assert brain.configured is True


async def test_actor_pong_reports_models_and_breakers(fake_llm: FakeLLM, store: Store) -> None:
    fake_llm.script("claude-a", HttpError.server())
    async with open_brain(settings_for(fake_llm, cascade=["a", "o"]), store) as brain:
        fake_llm.script("gpt-o", Text("ok"))
        await brain.summarize(PUBLIC, [])
        pong = await BrainActor(brain).receive(Ping())
    assert "a anthropic closed (1 failures)" in pong.note
    assert "o openai closed" in pong.note


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"GREENROOM_BRAIN__CASCADES__ANSWER": "sonnet,nope"},
            "invalid setting 'brain.cascades': "
            "answer names unknown model 'nope' (known: haiku, sonnet)",
        ),
        (
            {
                "GREENROOM_BRAIN__MODELS__X__PROVIDER": "openai",
                "GREENROOM_BRAIN__MODELS__X__MODEL": "m",
            },
            "invalid setting 'brain.models.x.base_url' = '': must be a https:// or http:// URL",
        ),
        (
            {"GREENROOM_BRAIN__MODELS__HAIKU__PRICE_IN_PER_MTOK": "-1"},
            "invalid setting 'brain.models.haiku.price_in_per_mtok' = '-1'",
        ),
        (
            {"GREENROOM_BRAIN__BREAKER_FAILURES": "0"},
            "invalid setting 'brain.breaker_failures' = '0'",
        ),
    ],
)
def test_brain_config_errors_name_key_and_value(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert str(info.value).startswith(message)


def test_brain_config_from_env() -> None:
    s = load_settings(
        env={
            "GREENROOM_BRAIN__CASCADES__ANSWER": "haiku, sonnet",
            "GREENROOM_BRAIN__MODELS__LOCAL__PROVIDER": "openai",
            "GREENROOM_BRAIN__MODELS__LOCAL__MODEL": "llama",
            "GREENROOM_BRAIN__MODELS__LOCAL__BASE_URL": "http://127.0.0.1:11434/v1",
            "GREENROOM_BRAIN__CASCADES__CLASSIFY": "local",
        }
    )
    assert s.brain.cascades.answer == ("haiku", "sonnet")
    assert s.brain.cascades.classify == ("local",)
    assert s.brain.models["local"].base_url == "http://127.0.0.1:11434/v1"
