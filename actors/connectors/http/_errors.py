"""The door's errors: what a request did wrong, as an HTTP status and a clear message.

::

    ApiError              a 4xx/5xx answer with a JSON body {"error": code, "message": text}
    └── BodyTooLarge      413: the request body passed [http] max_body_bytes

Everything a route raises on purpose is an ApiError; foreign exceptions
(``storage.StorageError``, the kernel's ``AskTimeout``...) are translated into
one at the boundary (``_app``), so a client never sees a traceback or a 500 for
its own mistake.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ApiError", "BodyTooLarge"]


class ApiError(Exception):
    """An answer other than success: ``status``, a stable ``code`` for programs, a
    ``message`` for people, and extra ``headers`` (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class BodyTooLarge(ApiError):
    """The request body is larger than ``max_body_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"request body is larger than {limit} bytes")
