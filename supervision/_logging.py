"""structlog, configured once from the entry point.

Every line carries the actor path: kernel lines pass ``actor=`` explicitly,
``Actor.log`` binds it, and drain tasks bind it in contextvars for module-level
loggers used inside ``receive``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "json", "console"]

#: Keys whose values are never logged (matched as words of the key, case-insensitive).
SECRET_KEY_PARTS = (
    "token",
    "secret",
    "password",
    "api_key",
    "apikey",
    "private_key",
    "authorization",
)


class RedactSecrets:
    """A processor masking values whose key names a secret. Decides at construction."""

    def __init__(self, parts: tuple[str, ...] = SECRET_KEY_PARTS) -> None:
        # A part matches as a whole word of the key ("bot_token", "DB_PASSWORD"),
        # not inside one: "tokens_in" in a token-ledger line is not a secret.
        words = "|".join(re.escape(p) for p in parts)
        self._pattern = re.compile(rf"(?:^|[_.\-])(?:{words})(?:$|[_.\-])", re.IGNORECASE)
        # Key name -> secret? Log keys come from a small fixed vocabulary, so
        # each is judged once; the substring scan per key per line was a
        # third of the cost of a kernel log line.
        self._verdicts: dict[str, bool] = {}

    def _is_secret(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._pattern.search(key) is not None
            if len(self._verdicts) < 10_000:  # bounded: keys could be data
                self._verdicts[key] = verdict
        return verdict

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if value not in (None, "") and self._is_secret(key):
                event[key] = "***"
        return event


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Configure structlog for the whole process (call once, from ``bin/``).

    ``auto`` renders for humans on a terminal and JSON otherwise. Raises
    ValueError for an unknown level or format.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"log level must be debug, info, warning or error, not {level!r}")
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"log format must be auto, json or console, not {fmt!r}")
    out = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if console
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            RedactSecrets(),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        # Configured once per process (bin/ calls this before any actor logs):
        # caching skips re-resolving the configuration on every logger call.
        cache_logger_on_first_use=True,
    )


def correlated(cid: str) -> AbstractContextManager[Any]:
    """Bind ``cid`` as the correlation id of every log line written inside the
    block, in this task only (contextvars), and unbind it after. A message's cid
    follows it end to end: the connector that stored it, the thread and the
    brain working on it, the connector that sends the reply (``m<message id>``
    of the inbound message). An empty ``cid`` binds nothing."""
    if not cid:
        return contextlib.nullcontext()
    return structlog.contextvars.bound_contextvars(cid=cid)
