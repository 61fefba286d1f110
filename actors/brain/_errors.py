"""What the brain raises.

::

    BrainError                  the brain could not produce what was asked
    ├── NoModelConfigured       no usable model for the purpose: an operator must configure one
    ├── AllModelsFailed         every model of the cascade failed (``errors`` says how)
    ├── InvalidIntent           report_intent's input was invalid twice in a row
    └── ModelCallError          (private) one model call failed; the cascade handles it

``ModelCallError`` is how a provider reports a failure to the cascade:
foreign exceptions (``anthropic.APIStatusError``, ``httpx.HTTPError``,
``trio.TooSlowError``) are translated into it at the provider boundary, with
a ``kind`` the cascade's policy is written against. It never leaves the
package: the cascade turns it into ``AllModelsFailed``.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["AllModelsFailed", "BrainError", "InvalidIntent", "ModelCallError", "NoModelConfigured"]

#: rate_limited: 429; overloaded: 529; server: 5xx or an unreadable answer;
#: connection: the endpoint could not be reached or hung up; timeout: no answer
#: within call_timeout_s; client: any other 4xx (our request or our key is wrong).
FailureKind = Literal["rate_limited", "overloaded", "server", "connection", "timeout", "client"]


class BrainError(Exception):
    """The brain could not produce what was asked; ``str()`` is one line for the user's log."""


class NoModelConfigured(BrainError):
    """No model of the purpose's cascade has credentials: nothing was called."""

    def __init__(self, purpose: str) -> None:
        self.purpose = purpose
        super().__init__(
            f"no model is configured for {purpose}: set ANTHROPIC_API_KEY, or add a "
            '[brain.models] entry with provider "openai" and an OpenAI-compatible base_url '
            "(and OPENAI_API_KEY if it needs one)"
        )


class AllModelsFailed(BrainError):
    """Every model tried failed. ``errors`` is ``[(model name, one-line error), ...]`` in
    cascade order, including models skipped because their breaker was open."""

    def __init__(self, purpose: str, errors: list[tuple[str, str]]) -> None:
        self.purpose = purpose
        self.errors = errors
        detail = "; ".join(f"{name}: {error}" for name, error in errors)
        super().__init__(f"every model failed for {purpose}: {detail}")


class InvalidIntent(BrainError):
    """The classifier's ``report_intent`` input failed validation on both attempts."""


class ModelCallError(Exception):
    """One model call failed (private to the brain; see the module docstring).

    ``retry_after`` is the provider's ``retry-after`` in seconds, when it sent one.
    """

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind: FailureKind = kind
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)

    def one_line(self) -> str:
        """``"529 overloaded: Overloaded"``-style summary for logs and AllModelsFailed."""
        head = f"{self.status} {self.kind}" if self.status is not None else self.kind
        text = " ".join(str(self).split())
        return f"{head}: {text[:200]}" if text else head
