"""Issue 10, item 7: every model call that reached the provider is in the token ledger.

The stand-in (``tests/fake_llm.py``) counts the requests it received; the
provider bills those, so the ledger must hold one row for each of them: the
answered ones with the provider's usage, the ones that timed out or were
cancelled by a supersede with what the provider had said so far (a stream's
``message_start``) or an estimate, marked ``estimated`` in ``meta``, and
``meta.outcome`` saying how each ended. An HTTP error status and a refused
connection are not billed and write nothing.

Run against both backends (the ``store`` fixture). Time is ``mock_clock``,
moved explicitly once a call provably waits (as in ``test_brain_cascade``):
an autojumping clock would jump while the store works on its thread.
"""

from __future__ import annotations

import collections
import math
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pytest
import structlog
import trio
import trio.testing

from actors.brain import AllModelsFailed, Brain
from actors.brain._ledger import LEDGER_WRITE_TIMEOUT_S, estimate_input_tokens
from actors.brain._prompts import CLASSIFY_SYSTEM, REPORT_INTENT, render_context
from actors.brain._providers import ModelRequest
from storage import Store, TokenUsage
from tests.brainkit import INTENT, PUBLIC, ledger, models, open_brain, settings_for
from tests.fake_llm import FakeLLM, Hang, HttpError, Stall, Text, ToolUse

MODEL_ID = {"a": "claude-a", "o": "gpt-o"}
PRICE_IN = {"a": 1.0, "o": 0.5}  # USD per million input tokens (tests/brainkit.models)
#: An answer's stream: message_start, content_block_start, ping, then the text
#: in two deltas. Four events stop it after message_start and the first half.
LONG = "The quick brown fox jumps over the lazy dog, twice over."
HALF = LONG[: len(LONG) // 2]


async def cancel_when_held(call: Callable[[], Awaitable[Any]], fake: FakeLLM, held: int) -> None:
    """Run ``call`` until the fake holds its ``held``-th request and the client has
    read everything sent so far, then cancel it (a supersede) and wait for it."""
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            await fake.wait_hanging(held)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()


async def time_out(
    call: Callable[[], Awaitable[Any]],
    fake: FakeLLM,
    clock: trio.testing.MockClock,
    held: list[int],
    timeout_s: float = 20,
) -> None:
    """Run ``call``; each time the fake holds the next of ``held`` (cumulative counts),
    run the virtual clock past the call timeout."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        for n in held:
            await fake.wait_hanging(n)
            await trio.testing.wait_all_tasks_blocked()
            clock.jump(timeout_s)


def classify_request(text: str) -> ModelRequest:
    """The request ``Brain.classify(PUBLIC, [], text)`` sends."""
    return ModelRequest(
        system=CLASSIFY_SYSTEM,
        turns=render_context([], text),
        max_tokens=1024,
        tools=(REPORT_INTENT,),
        tool_choice=REPORT_INTENT.name,
    )


@pytest.mark.parametrize("model", ["a", "o"])
async def test_a_timed_out_call_leaves_one_estimated_row(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock, model: str
) -> None:
    """Issue 10, item 7: a call that timed out after the provider had it wrote no
    ledger row (the provider bills it). Now: one row, outcome "timeout", input
    estimated from the request (characters / 4), no output."""
    fake_llm.script(MODEL_ID[model], Hang())
    settings = settings_for(fake_llm, cascade=[model], call_timeout_s=20)

    async with open_brain(settings, store) as brain:

        async def classify() -> None:
            with pytest.raises(AllModelsFailed, match="timeout"):
                await brain.classify(PUBLIC, [], "what time is it?")

        await time_out(classify, fake_llm, mock_clock, [1])
    assert len(fake_llm.requests) == 1
    [row] = await ledger(store)
    assert row["meta"]["outcome"] == "timeout" and row["meta"]["estimated"] is True
    assert row["meta"]["purpose"] == "classify" and row["model"] == MODEL_ID[model]
    expected = estimate_input_tokens(classify_request("what time is it?"))
    assert expected > len(CLASSIFY_SYSTEM) // 4
    assert (row["tokens_in"], row["tokens_out"]) == (expected, 0)
    assert row["cost"] == pytest.approx(expected * PRICE_IN[model] / 1e6)


async def test_a_stream_cancelled_mid_way_leaves_one_row_with_message_start_usage(
    fake_llm: FakeLLM, store: Store
) -> None:
    """Issue 10, item 7: a streamed answer cancelled by a supersede wrote no ledger
    row. Now: one row, outcome "cancelled", with the input tokens the stream's
    message_start reported (not estimated) and the output estimated from the text
    that had streamed (ceil(chars / 4), above message_start's first count of 1)."""
    fake_llm.script("claude-a", Stall(Text(LONG, tokens_in=321, tokens_out=50), events=4))
    async with open_brain(settings_for(fake_llm), store) as brain:
        await cancel_when_held(
            lambda: brain.answer(PUBLIC, [], "tell me a story", None), fake_llm, 1
        )
    [row] = await ledger(store)
    assert row["meta"]["outcome"] == "cancelled" and row["meta"]["estimated"] is True
    assert (row["meta"]["purpose"], row["meta"]["step"]) == ("answer", 0)
    assert row["tokens_in"] == 321
    assert row["tokens_out"] == math.ceil(len(HALF) / 4) > 1
    assert row["cost"] == pytest.approx((321 * 1.0 + row["tokens_out"] * 5.0) / 1e6)


async def test_a_stream_cancelled_before_message_start_is_estimated(
    fake_llm: FakeLLM, store: Store
) -> None:
    """Issue 10, item 7: cancelled after the request went out but before any event
    came back: one row, input estimated from the request, output 0."""
    fake_llm.script("claude-a", Hang())
    async with open_brain(settings_for(fake_llm), store) as brain:
        await cancel_when_held(lambda: brain.answer(PUBLIC, [], "hi", None), fake_llm, 1)
    [row] = await ledger(store)
    assert row["meta"]["outcome"] == "cancelled" and row["meta"]["estimated"] is True
    assert row["tokens_in"] > 0 and row["tokens_out"] == 0


async def test_every_request_the_provider_saw_is_in_the_ledger(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 10, item 7 (the stand-in saw 52 requests, the ledger held 49): ok,
    timed-out (both providers) and cancelled calls (mid-stream and before any
    event), mixed; the ledger has exactly one row per request the stand-in got."""
    a, o = "claude-a", "gpt-o"
    settings = settings_for(fake_llm, cascade=["a", "o"], call_timeout_s=20, breaker_failures=10)
    async with open_brain(settings, store) as brain:
        fake_llm.script(a, ToolUse("report_intent", INTENT))
        await brain.classify(PUBLIC, [], "one")  # ok
        fake_llm.script(a, Text("an answer"))
        await brain.answer(PUBLIC, [], "two", None)  # ok, streamed

        fake_llm.script(a, Hang())  # times out; the OpenAI model answers
        fake_llm.script(o, ToolUse("report_intent", INTENT))
        await time_out(lambda: brain.classify(PUBLIC, [], "three"), fake_llm, mock_clock, [1])

        fake_llm.script(a, Stall(Text(LONG, tokens_in=300), events=4))
        await cancel_when_held(lambda: brain.answer(PUBLIC, [], "four", None), fake_llm, 2)
        fake_llm.script(a, Hang())
        await cancel_when_held(lambda: brain.answer(PUBLIC, [], "five", None), fake_llm, 3)

        fake_llm.script(a, Hang())  # both models time out
        fake_llm.script(o, Hang())

        async def summarize() -> None:
            with pytest.raises(AllModelsFailed):
                await brain.summarize(PUBLIC, [])

        await time_out(summarize, fake_llm, mock_clock, [4, 5])
    assert fake_llm.pending() == {}
    rows = await ledger(store)
    assert len(rows) == len(fake_llm.requests) == 8
    assert [r["model"] for r in rows] == [r.model for r in fake_llm.requests]
    outcomes = collections.Counter(r["meta"]["outcome"] for r in rows)
    assert outcomes == {"ok": 3, "timeout": 3, "cancelled": 2}
    assert [r["meta"]["estimated"] for r in rows if r["meta"]["outcome"] == "ok"] == [False] * 3


async def test_error_statuses_write_no_row(fake_llm: FakeLLM, store: Store) -> None:
    """What the provider does not bill stays out of the ledger: 429, 529, 5xx and
    other 4xx answers."""
    fake_llm.script("claude-a", HttpError.rate_limited(retry_after=600))
    fake_llm.script("claude-b", HttpError.overloaded())
    fake_llm.script("claude-c", HttpError.server())
    fake_llm.script("gpt-o", HttpError(500, message="upstream exploded"))
    async with open_brain(settings_for(fake_llm, cascade=["a", "b", "c", "o"]), store) as brain:
        with pytest.raises(AllModelsFailed):
            await brain.summarize(PUBLIC, [])
        fake_llm.script("claude-b", HttpError.bad_request())
        with pytest.raises(AllModelsFailed):
            await brain.summarize(PUBLIC, [])  # a is held by its retry-after; b says 400
    assert fake_llm.pending() == {}
    assert len(fake_llm.requests) == 5
    assert await ledger(store) == []


@pytest.mark.parametrize("model", ["a", "o"])
async def test_a_refused_connection_writes_no_row(
    fake_llm: FakeLLM, store: Store, model: str
) -> None:
    """The request never went out (nobody listens on the port): nothing was billed."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = settings_for(
        fake_llm,
        cascade=[model],
        models={**models(fake_llm), "o": {**models(fake_llm)["o"], "base_url": f"{closed}/v1"}},
        anthropic_url=closed,
    )
    async with open_brain(settings, store) as brain:
        with pytest.raises(AllModelsFailed) as info:
            await brain.summarize(PUBLIC, [])
    assert info.value.errors[0][1].startswith("connection")
    assert fake_llm.requests == []
    assert await ledger(store) == []


async def test_a_stream_broken_mid_way_is_an_error_row_and_the_cascade_goes_on(
    fake_llm: FakeLLM, store: Store
) -> None:
    """A stream the provider cut off after message_start was billed: an "error" row
    with message_start's input tokens; the next model answers."""
    fake_llm.script("claude-a", Stall(Text(LONG, tokens_in=222), events=4, hang_up=True))
    fake_llm.script("claude-b", Text("from b", tokens_in=10, tokens_out=2))
    async with open_brain(settings_for(fake_llm, cascade=["a", "b"]), store) as brain:
        assert await brain.answer(PUBLIC, [], "hi", None) == "from b"
    broken, ok = await ledger(store)
    assert (broken["model"], broken["meta"]["outcome"], broken["tokens_in"]) == (
        "claude-a",
        "error",
        222,
    )
    assert broken["meta"]["estimated"] is True
    assert broken["tokens_out"] == math.ceil(len(HALF) / 4)
    assert (ok["model"], ok["meta"]["outcome"], ok["meta"]["estimated"]) == (
        "claude-b",
        "ok",
        False,
    )
    assert (ok["tokens_in"], ok["tokens_out"]) == (10, 2)


class StuckLedger:
    """The real Store, except that ledger writes never finish (a database that
    stopped answering mid-write): fault injection, not a stand-in."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def record_tokens(self, usage: TokenUsage) -> int:
        self.attempts += 1
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_cancelled_calls_ledger_write_is_shielded_and_bounded(
    fake_llm: FakeLLM, store: Store, mock_clock: trio.testing.MockClock
) -> None:
    """Issue 10, item 7: the row of a cancelled call is written although its caller
    is cancelled (shielded), but a stuck database holds the cancelled caller only
    LEDGER_WRITE_TIMEOUT_S; then the row goes to the log instead."""
    stuck = StuckLedger(store)
    fake_llm.script("claude-a", Stall(Text(LONG, tokens_in=321), events=4))
    brain = Brain(settings_for(fake_llm), cast(Store, stuck))
    done = trio.Event()
    scope = trio.CancelScope()

    async def answer() -> None:
        with scope:
            await brain.answer(PUBLIC, [], "hi", None)
        done.set()

    try:
        with structlog.testing.capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer)
                await fake_llm.wait_hanging()
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert stuck.attempts == 1 and not done.is_set()  # held by the write
                mock_clock.jump(LEDGER_WRITE_TIMEOUT_S - 0.5)
                await trio.testing.wait_all_tasks_blocked()
                assert not done.is_set()
                mock_clock.jump(0.5)
                await done.wait()
    finally:
        await brain.aclose()
    [line] = [e for e in logs if e["event"] == "brain.ledger_write_timeout"]
    assert line["tokens_in"] == 321 and line["meta"]["outcome"] == "cancelled"
