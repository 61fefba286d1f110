"""The cascade, retry-after, the circuit breaker and per-call timeouts, on the virtual clock.

``mock_clock`` (pytest-trio) does not jump by itself: the SQLite store works
on a thread, and an autojumping clock would jump while it does. Tests move
time explicitly with ``mock_clock.jump`` once the call is provably waiting.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from actors.brain import AllModelsFailed, Brain, BrainActor
from actors.brain._breaker import Breaker
from actors.brain._providers import MAX_RETRY_AFTER_S, parse_retry_after
from protocols import Ping
from storage import Store
from tests.brainkit import INTENT, PUBLIC, open_brain, settings_for, spend, sqlite_store
from tests.fake_llm import FakeLLM, Hang, HttpError, Text, ToolUse


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with sqlite_store(tmp_path) as st:
        yield st


def states(brain: Brain) -> dict[str, tuple[str, int]]:
    return {n: (s["breaker"], s["consecutive_failures"]) for n, s in brain.status().items()}


async def test_cascade_across_failures_ends_on_a_good_model(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock
) -> None:
    """429 with retry-after, 529, 500 and a timeout, then the OpenAI model answers."""
    fake_llm.script("claude-a", HttpError.rate_limited(retry_after=30))
    fake_llm.script("claude-b", HttpError.overloaded())
    fake_llm.script("claude-c", HttpError.server())
    fake_llm.script("claude-d", Hang())
    fake_llm.script("gpt-o", ToolUse("report_intent", INTENT))
    settings = settings_for(fake_llm, cascade=["a", "b", "c", "d", "o"], call_timeout_s=20)
    async with open_brain(settings, store) as brain:
        result = []
        async with trio.open_nursery() as nursery:

            async def classify() -> None:
                result.append(await brain.classify(PUBLIC, [], "time?"))

            nursery.start_soon(classify)
            await fake_llm.wait_hanging()
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(20)  # claude-d's call_timeout_s runs out
        assert result[0].intent == "question"
        assert [r.model for r in fake_llm.requests] == [
            "claude-a",
            "claude-b",
            "claude-c",
            "claude-d",
            "gpt-o",
        ]
        assert states(brain) == {
            "a": ("open", 1),  # held by its retry-after, below the failure threshold
            "b": ("closed", 1),
            "c": ("closed", 1),
            "d": ("closed", 1),
            "o": ("closed", 0),
        }
        s = await spend(store)
        # Error statuses are not billed; claude-d's timed-out call was (issue 10.7):
        # its row, estimated, and gpt-o's answer.
        assert s.calls == 2

        # Within the retry-after, the next call skips claude-a without asking it.
        fake_llm.script("claude-b", Text("summary"))
        await brain.summarize(PUBLIC, [])
        assert fake_llm.requests[-1].model == "claude-b"
        assert [r.model for r in fake_llm.requests].count("claude-a") == 1

        mock_clock.jump(30)
        fake_llm.script("claude-a", Text("summary"))
        await brain.summarize(PUBLIC, [])
        assert fake_llm.requests[-1].model == "claude-a"
        assert states(brain)["a"] == ("closed", 0)


async def test_a_client_error_is_neither_retried_nor_cascaded(
    fake_llm: FakeLLM, store: Store
) -> None:
    fake_llm.script("claude-a", HttpError.bad_request("max_tokens: too large"))
    fake_llm.script("claude-b", Text("never sent"))
    async with open_brain(settings_for(fake_llm, cascade=["a", "b"]), store) as brain:
        with pytest.raises(AllModelsFailed) as info:
            await brain.summarize(PUBLIC, [])
        assert info.value.errors == [
            ("a", "400 client: invalid_request_error: max_tokens: too large")
        ]
        assert states(brain)["a"] == ("closed", 0)  # the model is fine; the request was not
    assert [r.model for r in fake_llm.requests] == ["claude-a"]
    assert fake_llm.pending() == {"claude-b": 1}


async def test_all_models_failing_logs_one_line_with_each_error(
    fake_llm: FakeLLM, store: Store
) -> None:
    fake_llm.script("claude-a", HttpError.overloaded())
    fake_llm.script("gpt-o", HttpError(500, message="upstream exploded"))
    async with open_brain(settings_for(fake_llm, cascade=["a", "o"]), store) as brain:
        with structlog.testing.capture_logs() as logs, pytest.raises(AllModelsFailed) as info:
            await brain.classify(PUBLIC, [], "hi")
    assert info.value.errors == [
        ("a", "529 overloaded: overloaded_error: Overloaded"),
        ("o", "500 server: server_error: upstream exploded"),
    ]
    [line] = [e for e in logs if e["event"] == "brain.all_models_failed"]
    assert line["purpose"] == "classify"
    assert line["errors"] == (
        "a: 529 overloaded: overloaded_error: Overloaded; "
        "o: 500 server: server_error: upstream exploded"
    )
    assert all("sk-" not in str(e) for e in logs)  # no key in any log line


async def test_breaker_opens_after_n_failures_and_half_opens_after_cooldown(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock
) -> None:
    settings = settings_for(fake_llm, cascade=["a", "b"], breaker_failures=2, breaker_cooldown_s=10)
    async with open_brain(settings, store) as brain:
        for _ in range(2):
            fake_llm.script("claude-a", HttpError.server())
            fake_llm.script("claude-b", Text("from b"))
            assert await brain.summarize(PUBLIC, []) == "from b"
        assert states(brain)["a"] == ("open", 2)

        # Open: claude-a is skipped, not asked.
        fake_llm.script("claude-b", Text("from b"))
        await brain.summarize(PUBLIC, [])
        assert [r.model for r in fake_llm.requests].count("claude-a") == 2
        assert "a anthropic open (2 failures)" in (await BrainActor(brain).receive(Ping())).note

        # Half-open after the cooldown: one trial call; a failure re-opens at once.
        mock_clock.jump(10)
        assert states(brain)["a"] == ("half_open", 2)
        fake_llm.script("claude-a", HttpError.overloaded())
        fake_llm.script("claude-b", Text("from b"))
        await brain.summarize(PUBLIC, [])
        assert states(brain)["a"] == ("open", 3)

        # Next cooldown: the trial succeeds and the breaker closes.
        mock_clock.jump(10)
        fake_llm.script("claude-a", Text("from a"))
        assert await brain.summarize(PUBLIC, []) == "from a"
        assert states(brain)["a"] == ("closed", 0)


async def test_every_breaker_open_fails_fast_with_reasons(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock
) -> None:
    settings = settings_for(fake_llm, cascade=["a"], breaker_failures=1, breaker_cooldown_s=10)
    async with open_brain(settings, store) as brain:
        fake_llm.script("claude-a", HttpError.server())
        with pytest.raises(AllModelsFailed):
            await brain.summarize(PUBLIC, [])
        mock_clock.jump(4)
        with pytest.raises(AllModelsFailed) as info:
            await brain.summarize(PUBLIC, [])
    assert info.value.errors == [("a", "skipped: breaker open (1 failures, 6.0s left)")]
    assert len(fake_llm.requests) == 1


async def test_cancelling_a_call_leaves_no_verdict_on_the_model(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock
) -> None:
    fake_llm.script("claude-a", Hang())
    async with open_brain(settings_for(fake_llm), store) as brain:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(brain.summarize, PUBLIC, [])
                await fake_llm.wait_hanging()
                scope.cancel()
        assert states(brain)["a"] == ("closed", 0)


# --------------------------------------------------------------------------- pure parts


def test_breaker_state_machine() -> None:
    b = Breaker(failures_to_open=2, cooldown_s=5)
    assert b.try_acquire(0) and b.state(0) == "closed"
    b.failure(0)
    assert b.state(1) == "closed"
    b.failure(1)
    assert b.state(1) == "open" and not b.try_acquire(5.9)
    assert b.state(6) == "half_open"
    assert b.try_acquire(6) and not b.try_acquire(6)  # one trial at a time
    b.release()
    assert b.try_acquire(6)
    b.success()
    assert (b.state(6), b.failures) == ("closed", 0)
    b.failure(7, retry_after=3)
    assert b.state(9.9) == "open" and b.state(10) == "closed"
    with pytest.raises(ValueError, match="failures_to_open must be >= 1, not 0"):
        Breaker(failures_to_open=0, cooldown_s=1)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "86400"}, MAX_RETRY_AFTER_S),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),  # in the past
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    value = parse_retry_after(headers)
    assert value == expected or (
        expected is not None and value is not None and math.isclose(value, expected)
    )
