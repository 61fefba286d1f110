"""Users (``users``: platform identities and their tier) and web-chat sessions
(``sessions``, by token hash)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from protocols import storable_problem

from ._backend import Script
from ._common import StorePart, check_storable
from ._dialect import Dialect, Q, Row

__all__ = ["Tier", "UserRecord", "Users"]

Tier = Literal["public", "admin"]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A platform identity (``users``)."""

    id: int
    platform: str
    platform_user_id: str
    display_name: str
    tier: Tier
    created_at: datetime
    last_seen_at: datetime

    @property
    def key(self) -> str:
        """``"<platform>:<platform_user_id>"``, the user's actor key."""
        return f"{self.platform}:{self.platform_user_id}"


# ---------------------------------------------------------------- rows -> records
_USER = "id, platform, platform_user_id, display_name, tier, created_at, last_seen_at"


def _user(d: Dialect, r: Row) -> UserRecord:
    return UserRecord(
        id=r["id"],
        platform=r["platform"],
        platform_user_id=r["platform_user_id"],
        display_name=r["display_name"],
        tier=r["tier"],
        created_at=d.from_ts(r["created_at"]),
        last_seen_at=d.from_ts(r["last_seen_at"]),
    )


# ---------------------------------------------------------------- scripts
def get_user(d: Dialect, platform: str, user_id: str) -> Script[UserRecord | None]:
    """A platform identity, if it ever wrote."""
    rows = yield Q(
        f"SELECT {_USER} FROM users WHERE platform = $1 AND platform_user_id = $2",
        (platform, user_id),
    )
    return _user(d, rows[0]) if rows else None


def set_user_tier(
    d: Dialect, platform: str, user_id: str, tier: Tier, now: datetime
) -> Script[UserRecord]:
    """Set a user's tier, creating the user if it never wrote."""
    rows = yield Q(
        "INSERT INTO users (platform, platform_user_id, tier, created_at, last_seen_at) "
        "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (platform, platform_user_id) "
        f"DO UPDATE SET tier = excluded.tier RETURNING {_USER}",
        (platform, user_id, tier, d.ts(now)),
    )
    return _user(d, rows[0])


def create_session(
    d: Dialect, user_key: str, token_hash: str, expires_at: datetime | None, now: datetime
) -> Script[int]:
    """Record a session token (its hash) for a user."""
    rows = yield Q(
        "INSERT INTO sessions (user_key, token_hash, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4) RETURNING id",
        (user_key, token_hash, d.ts(now), d.ts(expires_at) if expires_at else None),
    )
    return int(rows[0]["id"])


def session_user(d: Dialect, token_hash: str, now: datetime) -> Script[str | None]:
    """The user of an unexpired session, by token hash."""
    rows = yield Q(
        "SELECT user_key FROM sessions WHERE token_hash = $1 "
        "AND (expires_at IS NULL OR expires_at > $2)",
        (token_hash, d.ts(now)),
    )
    return str(rows[0]["user_key"]) if rows else None


# ---------------------------------------------------------------- the Store's part
class Users(StorePart):
    """The Store's users and sessions."""

    async def get_user(self, platform: str, user_id: str) -> UserRecord | None:
        """A platform identity, or None if it never wrote."""
        return await self._run(get_user, platform, user_id)

    async def set_user_tier(self, platform: str, user_id: str, tier: Tier) -> UserRecord:
        """Set a user's tier (``public``/``admin``), creating the user if needed."""
        if tier not in ("public", "admin"):
            raise ValueError(f"tier must be public or admin, not {tier!r}")
        return await self._run(set_user_tier, platform, user_id, tier, self._clock())

    async def create_session(
        self, user_key: str, token_hash: str, *, expires_at: datetime | None = None
    ) -> int:
        """Record a session for ``user_key`` by the hash of its token (never the
        token itself); return its id. StorageError for a hash already used."""
        if len(token_hash) < 32:
            raise ValueError("token_hash must be a hash (32 characters or more)")
        check_storable(user_key=user_key, token_hash=token_hash)
        return await self._run(create_session, user_key, token_hash, expires_at, self._clock())

    async def session_user(self, token_hash: str) -> str | None:
        """The user key of the unexpired session with this token hash, or None."""
        if storable_problem(token_hash):
            return None  # no stored hash can match it
        return await self._run(session_user, token_hash, self._clock())
