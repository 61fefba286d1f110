"""The application's own tree in a test: settings to data and back, and ``open_app``.

``open_app`` is what ``greenroom run`` does, in-process: a SQLite Store in the
test's directory, the Brain, ``build_root``, plus an httpx client on the HTTP
door's (port 0) address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from actors import build_root
from actors.brain import Brain
from config import SECRET_ENV, Settings
from storage import Store, open_store
from supervision import ActorSystem, open_system


def settings_data(settings: Settings) -> dict[str, Any]:
    """``settings`` as plain data that validates back into the same settings (secrets
    revealed, which ``model_dump`` alone would leave as SecretStr objects)."""
    data = settings.model_dump()
    for field in SECRET_ENV:
        value = getattr(settings, field)
        data[field] = value.get_secret_value() if isinstance(value, SecretStr) else None
    return data


def http_port(system: ActorSystem) -> int:
    """The port the HTTP door listens on now (it changes when the door restarts)."""
    for cell in system.cells():
        if cell.path == "/connectors/http":
            port = getattr(cell.actor, "port", None)
            assert isinstance(port, int)
            return port
    raise AssertionError("no /connectors/http")


@asynccontextmanager
async def open_app(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[ActorSystem, Store, httpx.AsyncClient]]:
    """The whole tree on ``settings`` over a fresh SQLite Store; stopped in order."""
    async with open_store(None, tmp_path) as store:
        brain = Brain(settings, store)
        try:
            async with open_system(
                build_root(settings, store, brain), ask_timeout_s=10, clock=store.clock
            ) as system:
                base_url = f"http://127.0.0.1:{http_port(system)}"
                async with httpx.AsyncClient(base_url=base_url, timeout=15) as http:
                    yield system, store, http
        finally:
            await brain.aclose()
