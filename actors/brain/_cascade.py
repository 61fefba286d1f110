"""The cascade: try a purpose's models in order until one answers.

Policy, by the failure's kind (``ModelCallError.kind``):

=================================  ===========================================
rate_limited (429)                 counts against the breaker; a retry-after
                                   holds the model until then (later calls
                                   skip it); next model at once
overloaded (529), server (5xx),    counts against the breaker; next model
connection, timeout
client (any other 4xx)             not retried and the cascade stops: the
                                   request (or the key) is wrong and would be
                                   wrong for the next model too; sending it on
                                   only spends more. Not counted against the
                                   breaker: the model is healthy.
=================================  ===========================================

Each model is tried at most once per call; there is no waiting for a
retry-after inside a call (the user is waiting; the next model is the retry).
A model without credentials, or whose breaker is open, is skipped and the
reason is part of ``AllModelsFailed.errors``.

Every attempt that reached the provider is handed to the caller's ``record``
exactly once, whatever its end (an answer, a timeout, a broken connection, a
cancellation): see ``_ledger`` for which ends are billed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
import trio

from ._breaker import Breaker
from ._errors import AllModelsFailed, ModelCallError, NoModelConfigured
from ._ledger import Meter, Outcome, Spent
from ._providers import Completion, ModelRequest, Provider, ProviderName

__all__ = ["Cascade", "ModelSlot", "Record"]

#: Writes one attempt's ledger row. It must finish even while its caller is
#: being cancelled (shielded and bounded, as ``_ledger.write_usage`` is), and
#: may raise only for an "ok" attempt: on the other paths an error of its own
#: would replace the failure or cancellation being raised.
Record = Callable[["ModelSlot", Spent], Awaitable[None]]

log = structlog.get_logger("greenroom.brain")


@dataclass
class ModelSlot:
    """One configured model: its provider (None without credentials), price and breaker."""

    name: str
    provider_name: ProviderName
    model: str
    price_in_per_mtok: float
    price_out_per_mtok: float
    provider: Provider | None
    missing: str  # why provider is None ("ANTHROPIC_API_KEY is unset"), else ""
    breaker: Breaker

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD for one call, from the per-million-token prices."""
        return (tokens_in * self.price_in_per_mtok + tokens_out * self.price_out_per_mtok) / 1e6


class Cascade:
    """The models by name, the per-call timeout, and the policy above."""

    def __init__(self, slots: dict[str, ModelSlot], *, timeout_s: float) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s!r}")
        self.slots = slots
        self.timeout_s = timeout_s

    def usable(self, names: Sequence[str]) -> bool:
        """Whether any of ``names`` has credentials (breakers aside)."""
        return any(self.slots[name].provider is not None for name in names)

    async def call(
        self, purpose: str, names: Sequence[str], request: ModelRequest, record: Record
    ) -> Completion:
        """Return the first model's answer, trying ``names`` in order; ``record``
        receives every attempt that reached its provider (with its slot), answered
        or not, before this returns or raises.

        Raises NoModelConfigured when none of ``names`` has credentials (nothing
        is called), AllModelsFailed when every model failed or was skipped, or
        at once on a non-429 4xx. A checkpoint. Cancellation abandons the model
        call in flight without counting it against the model; its tokens are
        recorded ("cancelled") before the cancellation goes on.
        """
        if not self.usable(names):
            raise NoModelConfigured(purpose)
        errors: list[tuple[str, str]] = []
        for name in names:
            slot = self.slots[name]
            if slot.provider is None:
                errors.append((name, f"skipped: {slot.missing}"))
                continue
            now = trio.current_time()
            if not slot.breaker.try_acquire(now):
                errors.append((name, f"skipped: breaker {slot.breaker.describe(now)}"))
                continue
            meter = Meter()
            try:
                completion = await self._attempt(slot.provider, slot.model, request, meter)
            except ModelCallError as exc:
                errors.append((name, exc.one_line()))
                log.warning("brain.model_failed", purpose=purpose, model=name, error=exc.one_line())
                if exc.kind == "client":
                    slot.breaker.release()
                else:
                    slot.breaker.failure(trio.current_time(), exc.retry_after)
                if meter.billable(exc):
                    outcome: Outcome = "timeout" if exc.kind == "timeout" else "error"
                    await record(slot, meter.spent(request, outcome))
                if exc.kind == "client":
                    break
            except BaseException as exc:
                slot.breaker.release()  # cancelled: no verdict on the model
                if meter.billable(None):
                    # An Exception here is a bug in a provider, not a cancellation.
                    outcome = "error" if isinstance(exc, Exception) else "cancelled"
                    await record(slot, meter.spent(request, outcome))
                raise
            else:
                slot.breaker.success()
                await record(slot, meter.spent(request, "ok"))
                return completion
        # One line with every model's error, as the issue asks.
        log.error(
            "brain.all_models_failed",
            purpose=purpose,
            errors="; ".join(f"{name}: {error}" for name, error in errors),
        )
        raise AllModelsFailed(purpose, errors)

    async def _attempt(
        self, provider: Provider, model: str, request: ModelRequest, meter: Meter
    ) -> Completion:
        try:
            with trio.fail_after(self.timeout_s):
                return await provider.complete(model, request, meter)
        except trio.TooSlowError:
            raise ModelCallError(
                "timeout", f"no answer within call_timeout_s={self.timeout_s:g}"
            ) from None
