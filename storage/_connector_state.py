"""Connector state (``connector_state``): a connector's values by key (an offset, a
cursor), replaced in place."""

from __future__ import annotations

from datetime import datetime

from ._backend import Script
from ._common import StorePart, check_storable
from ._dialect import Dialect, Q

__all__ = ["HELD", "ConnectorState"]

#: The namespace (``connector``) of held messages' markers: one row per message a
#: door holds back until it is enriched (key: the message id; see ``_held``). Here,
#: below both, because ``_jobs`` reads the markers too: a job waits behind an
#: earlier held message of its author in its chat.
HELD = "held"


# ---------------------------------------------------------------- scripts
def get_state(d: Dialect, connector: str, key: str) -> Script[str | None]:
    """A connector's stored value for ``key``, if any."""
    rows = yield Q(
        "SELECT value FROM connector_state WHERE connector = $1 AND key = $2", (connector, key)
    )
    return str(rows[0]["value"]) if rows else None


def set_state(d: Dialect, connector: str, key: str, value: str, now: datetime) -> Script[None]:
    """Store (or replace) a connector's value for ``key``."""
    yield Q(
        "INSERT INTO connector_state (connector, key, value, updated_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (connector, key) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (connector, key, value, d.ts(now)),
    )


# ---------------------------------------------------------------- the Store's part
class ConnectorState(StorePart):
    """The Store's connector state."""

    async def get_state(self, connector: str, key: str) -> str | None:
        """What a connector stored under ``key`` (an offset, a cursor), or None."""
        return await self._run(get_state, connector, key)

    async def set_state(self, connector: str, key: str, value: str) -> None:
        """Store a connector's ``value`` under ``key``, replacing the previous one."""
        check_storable(connector=connector, key=key, value=value)
        await self._run(set_state, connector, key, value, self._clock())
