"""Storage: the ``Store`` interface and its Postgres and SQLite backends.

Empty until the storage issue lands; nothing imports it yet.
"""

from __future__ import annotations

__all__: list[str] = []
