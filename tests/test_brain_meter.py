"""The ledger's arithmetic (issue 10, item 7), pure: the documented estimate, and
which figures a Meter gives for each way a call can end."""

from __future__ import annotations

import pytest

from actors.brain._errors import ModelCallError
from actors.brain._ledger import IMAGE_TOKENS, Meter, Spent, estimate_input_tokens
from actors.brain._providers import (
    Image,
    ModelRequest,
    ToolCall,
    ToolResult,
    ToolSpec,
    Turn,
)

REQUEST = ModelRequest(
    system="s" * 40,
    turns=(
        Turn("user", "u" * 7),
        Turn("assistant", tool_calls=(ToolCall("t1", "f", {"a": 1}),)),  # 1 + len('{"a": 1}')
        Turn("user", tool_results=(ToolResult("t1", "yz"),), images=(Image("image/png", b"."),)),
    ),
    max_tokens=10,
    tools=(ToolSpec("f", "d", {}),),  # 1 + 1 + len("{}")
)


def test_the_input_estimate_is_characters_over_four_plus_images() -> None:
    # 40 + 7 + 9 + 2 + 4 = 62 characters -> ceil(62 / 4) = 16, and one image.
    assert estimate_input_tokens(REQUEST) == 16 + IMAGE_TOKENS
    assert estimate_input_tokens(ModelRequest(system="", turns=(), max_tokens=1)) == 0


def test_an_answered_call_is_the_providers_word() -> None:
    meter = Meter(sent=True)
    meter.report(120, 30, final=True)
    assert meter.spent(REQUEST, "ok") == Spent(120, 30, estimated=False, outcome="ok")


def test_a_stream_cut_after_message_start_estimates_only_the_output() -> None:
    meter = Meter(sent=True)
    meter.report(500, 1, final=False)  # message_start
    meter.chars_out = 41
    assert meter.spent(REQUEST, "cancelled") == Spent(500, 11, estimated=True, outcome="cancelled")
    meter.chars_out = 2  # less than the provider's own count so far: its count stands
    meter.report(None, 3, final=False)
    assert meter.spent(REQUEST, "cancelled").tokens_out == 3


def test_a_call_without_any_usage_is_estimated_from_the_request() -> None:
    assert Meter(sent=True).spent(REQUEST, "timeout") == Spent(
        estimate_input_tokens(REQUEST), 0, estimated=True, outcome="timeout"
    )


async def test_the_request_counts_as_sent_once_its_body_is_written() -> None:
    meter = Meter()
    for name in ("connection.connect_tcp.complete", "http11.send_request_headers.complete"):
        await meter.trace(name, {})
    assert not meter.reached
    await meter.trace("http11.send_request_body.complete", {})
    assert meter.sent and meter.reached
    h2 = Meter()
    await h2.trace("http2.send_request_body.complete", {})
    assert h2.sent


@pytest.mark.parametrize(
    ("meter", "failure", "billable"),
    [
        (Meter(), None, False),  # never sent (connection refused, cancelled while connecting)
        (Meter(sent=True), None, True),  # cancelled after sending
        (Meter(sent=True), ModelCallError("timeout", "slow"), True),
        (Meter(sent=True), ModelCallError("connection", "reset"), True),
        (Meter(sent=True), ModelCallError("server", "boom", status=500), False),
        (Meter(sent=True), ModelCallError("rate_limited", "slow down", status=429), False),
        (Meter(sent=True), ModelCallError("client", "bad", status=400), False),
        (Meter(tokens_in=5), ModelCallError("server", "unreadable"), True),  # said usage
    ],
)
def test_what_is_billed(meter: Meter, failure: ModelCallError | None, billable: bool) -> None:
    assert meter.billable(failure) is billable
