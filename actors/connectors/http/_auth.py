"""Guest sessions: tokens, their hashes, the Bearer header, and the per-address rate limit.

A token is ``secrets.token_urlsafe(32)`` (256 random bits) and only its SHA-256
hex is stored (``Store.create_session``). A request's token is hashed and the
hash looked up by equality in the database: the comparison runs on a digest
the caller cannot steer byte by byte, so its timing says nothing about a
stored token. Where this module compares secrets itself it uses
``hmac.compare_digest``.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import math
import secrets
from collections.abc import Callable

__all__ = ["RateLimiter", "bearer_token", "hash_token", "mint_token", "new_user_id"]

#: The scheme prefix of an Authorization header, compared case-insensitively (RFC 9110).
_BEARER = "bearer "
#: Longer than any token we mint; a longer header is not worth hashing.
_MAX_TOKEN_CHARS = 256


def mint_token() -> str:
    """A new session token: 43 URL-safe characters from 32 random bytes."""
    return secrets.token_urlsafe(32)


def new_user_id() -> str:
    """A new guest's id (the ``<id>`` of ``http:<id>``): 24 lowercase hex digits."""
    return secrets.token_hex(12)


def hash_token(token: str) -> str:
    """The SHA-256 hex of ``token``: what storage keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None when the
    header is missing, of another scheme, empty or implausibly long."""
    if not header or len(header) > len(_BEARER) + _MAX_TOKEN_CHARS:
        return None
    if not hmac.compare_digest(header[: len(_BEARER)].lower(), _BEARER):
        return None
    token = header[len(_BEARER) :].strip()
    return token or None


class RateLimiter:
    """A token bucket per key (a client address): ``rate_per_minute`` tokens, refilled
    continuously, holding at most ``rate_per_minute``.

    Time comes from ``clock`` (``trio.current_time`` in the app, so tests run it
    on a MockClock). At most ``max_keys`` buckets are kept: the least recently
    used one is dropped first, which can only make a forgotten client's next
    request succeed, never wrongly refuse one. Not thread-safe (one trio loop).
    """

    def __init__(
        self, rate_per_minute: int, clock: Callable[[], float], *, max_keys: int = 10_000
    ) -> None:
        if isinstance(rate_per_minute, bool) or rate_per_minute < 1:
            raise ValueError(f"rate_per_minute must be >= 1, not {rate_per_minute!r}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, not {max_keys!r}")
        self.capacity = float(rate_per_minute)
        self.per_second = rate_per_minute / 60.0
        self.max_keys = max_keys
        self._clock = clock
        # key -> (tokens left, time of that count); insertion order = LRU order
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def acquire(self, key: str) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until one is
        available (what ``Retry-After`` says, rounded up by the caller)."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.per_second)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.per_second
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """``wait`` seconds as a ``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))
