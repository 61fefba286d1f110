"""What the Telegram door raises.

::

    TelegramError               talking to the Bot API did not give what was asked
    ├── TelegramUnavailable     the API could not be reached, timed out, or answered garbage
    │                           (``sent`` says whether the request may have reached it)
    └── ApiError                Telegram answered {"ok": false, "error_code", "description"}
        ├── RetryAfter          429: flood control; wait ``retry_after`` seconds
        └── Conflict            409: another getUpdates poller, or a webhook is set

``httpx`` exceptions are translated at the client boundary (``_api``) with
``raise ... from None``: their messages and requests carry the URL, and every
Bot API URL carries the bot token, so none of them may reach a log line.
"""

from __future__ import annotations

__all__ = ["ApiError", "Conflict", "RetryAfter", "TelegramError", "TelegramUnavailable"]


class TelegramError(Exception):
    """Base of every error of the Telegram door; ``str()`` never holds the token."""


class TelegramUnavailable(TelegramError):
    """No usable answer: connection refused, timeout, 5xx without a JSON body...

    ``sent`` is False only when the request certainly never left (a refused
    connection): only then is resending it harmless.
    """

    def __init__(self, method: str, reason: str, *, sent: bool) -> None:
        super().__init__(f"Telegram {method}: {reason}")
        self.method = method
        self.reason = reason
        self.sent = sent


class ApiError(TelegramError):
    """Telegram refused the call: ``error_code`` (HTTP-like) and ``description``."""

    def __init__(self, method: str, error_code: int, description: str) -> None:
        super().__init__(f"Telegram {method}: {error_code} {description}")
        self.method = method
        self.error_code = error_code
        self.description = description


class RetryAfter(ApiError):
    """429 Too Many Requests: the same call may be repeated after ``retry_after`` seconds."""

    def __init__(self, method: str, description: str, retry_after: float) -> None:
        super().__init__(method, 429, description)
        self.retry_after = retry_after


class Conflict(ApiError):
    """409 Conflict: another instance polls with this token, or a webhook is set."""
