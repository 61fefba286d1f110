"""Metering: what one model call cost, as the provider said or as estimated, and its ledger row.

A provider bills a request once it has it, whether or not we read the answer:
a call that timed out, or a streamed answer cancelled by a supersede, still
cost tokens. So the cascade gives every attempt a :class:`Meter` that the
provider fills in as the call goes (the request went out; the usage the
provider reported so far; how much output streamed), and every attempt that
reached the provider becomes one ledger row, known or estimated:

==========  ===========================================================  =====
outcome     when                                                         row
==========  ===========================================================  =====
ok          an answer came back                                          yes
timeout     the request went out, no answer within the call timeout      yes
cancelled   the request went out, the caller was cancelled (supersede)   yes
error       the request went out, then the connection broke or the       yes
            answer was unreadable (the provider may have billed it)
--          an HTTP error status (4xx, 5xx, 429, 529): not billed        no
--          the request never went out (connection refused, DNS)         no
==========  ===========================================================  =====

Estimates are deterministic functions of the request and of what streamed,
documented on :func:`estimate_input_tokens` and :meth:`Meter.spent`; a row
that holds one says ``"estimated": true`` in its meta.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import structlog
import trio

from storage import Store, TokenUsage

from ._errors import ModelCallError
from ._providers import ModelRequest

__all__ = [
    "CHARS_PER_TOKEN",
    "IMAGE_TOKENS",
    "LEDGER_WRITE_TIMEOUT_S",
    "Meter",
    "Outcome",
    "Spent",
    "estimate_input_tokens",
    "write_usage",
]

log = structlog.get_logger("greenroom.brain")

Outcome = Literal["ok", "timeout", "cancelled", "error"]

#: The estimate's exchange rate. Real tokenizers give 3-4.5 characters per
#: token for English and fewer for other scripts; 4 is the figure both
#: providers document as a rule of thumb.
CHARS_PER_TOKEN = 4
#: An image's input tokens when the provider did not say: Anthropic's ceiling
#: for one image (it resizes larger ones). We do not decode the image to get
#: its size; over-estimating is the safe side for a budget.
IMAGE_TOKENS = 1600
#: How long a ledger write may hold a caller, even a cancelled one. The write
#: is shielded (tokens spent are recorded even when a supersede cancels the
#: call); the bound keeps a stuck database from holding a cancelled task (a
#: shutdown, a supersede) forever. When it runs out the row is logged instead.
LEDGER_WRITE_TIMEOUT_S = 10.0

# The httpcore trace events (HTTP/1.1 and HTTP/2) after which the provider has
# the whole request. Headers alone are not enough: a request cut off mid-body
# is not processed, so it is not billed.
_SENT = ("http11.send_request_body.complete", "http2.send_request_body.complete")


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_input_tokens(request: ModelRequest) -> int:
    """Input tokens of ``request`` when the provider did not say: ``ceil(chars / 4)``
    over the system prompt, every turn's text, tool calls (their JSON input),
    tool results and the tools' specs (name, description, JSON schema), plus
    IMAGE_TOKENS per image. Pure and deterministic; never negative."""
    chars = len(request.system)
    images = 0
    for turn in request.turns:
        chars += len(turn.text)
        chars += sum(len(c.name) + len(json.dumps(c.input or {})) for c in turn.tool_calls)
        chars += sum(len(r.content) for r in turn.tool_results)
        images += len(turn.images)
    chars += sum(
        len(t.name) + len(t.description) + len(json.dumps(t.input_schema)) for t in request.tools
    )
    return _tokens(chars) + images * IMAGE_TOKENS


@dataclass(frozen=True)
class Spent:
    """One attempt's ledger figures: tokens (known or estimated) and how it ended."""

    tokens_in: int
    tokens_out: int
    estimated: bool
    outcome: Outcome


@dataclass
class Meter:
    """What one attempt has cost so far; the provider fills it in as the call goes.

    ``sent``: the whole request was written to the provider (httpcore's trace,
    see :meth:`trace`). ``tokens_in``/``tokens_out``: the provider's counts so
    far (None until it reports any; a stream's ``message_start`` carries the
    input and a first output count), ``final`` once ``tokens_out`` is its last
    word (``message_delta``, or a whole answer's usage). ``chars_out``: output
    text and tool-input JSON received so far.
    """

    sent: bool = False
    tokens_in: int | None = None
    tokens_out: int | None = None
    final: bool = False
    chars_out: int = 0

    async def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` request extension (it must be a coroutine function on
        the async path). Not a checkpoint."""
        if name in _SENT:
            self.sent = True

    def report(self, tokens_in: int | None, tokens_out: int | None, *, final: bool) -> None:
        """The provider's usage: None leaves a count as it was."""
        if tokens_in is not None:
            self.tokens_in = tokens_in
        if tokens_out is not None:
            self.tokens_out = tokens_out
        self.final = self.final or final

    @property
    def reached(self) -> bool:
        """Whether the provider has the request: it was sent, or the provider said
        something about it (a transport without httpcore's trace still reports usage)."""
        return self.sent or self.tokens_in is not None or self.tokens_out is not None

    def billable(self, failure: ModelCallError | None) -> bool:
        """Whether the attempt that ended with ``failure`` (None: an answer, or a
        cancellation) is billed: it reached the provider and did not end in an HTTP
        error status, which providers do not bill."""
        if failure is not None and failure.status is not None and failure.status >= 400:
            return False
        return self.reached

    def spent(self, request: ModelRequest, outcome: Outcome) -> Spent:
        """The figures for the ledger. Input: the provider's count, else
        :func:`estimate_input_tokens`. Output: the provider's final count, else
        the larger of its count so far and ``ceil(chars_out / 4)`` (0 when nothing
        came back). ``estimated`` when either figure is an estimate."""
        estimated = False
        if self.tokens_in is None:
            tokens_in, estimated = estimate_input_tokens(request), True
        else:
            tokens_in = self.tokens_in
        if self.final and self.tokens_out is not None:
            tokens_out = self.tokens_out
        else:
            tokens_out, estimated = max(self.tokens_out or 0, _tokens(self.chars_out)), True
        return Spent(tokens_in, tokens_out, estimated, outcome)


async def write_usage(store: Store, usage: TokenUsage, *, raise_errors: bool) -> None:
    """Append ``usage`` to the ledger, shielded from cancellation and bounded by
    LEDGER_WRITE_TIMEOUT_S: a cancelled caller still records what it spent, and
    resumes its cancellation afterwards.

    When the bound runs out the row is logged (``brain.ledger_write_timeout``,
    with every figure) and nothing is raised. A store error propagates when
    ``raise_errors``, else it is logged (``brain.ledger_write_failed``): on a
    failure or cancellation path it must not replace the error being raised.
    """
    with trio.CancelScope(shield=True):
        with trio.move_on_after(LEDGER_WRITE_TIMEOUT_S) as bound:
            try:
                await store.record_tokens(usage)
            except Exception as exc:
                if raise_errors:
                    raise
                log.error("brain.ledger_write_failed", error=repr(exc), **asdict(usage))
        if bound.cancelled_caught:
            log.error(
                "brain.ledger_write_timeout", timeout_s=LEDGER_WRITE_TIMEOUT_S, **asdict(usage)
            )
