"""Shared setup for the Telegram door tests: settings for the fake Bot API, finding the actor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actors.connectors import TelegramConnector
from config import Settings
from supervision import ActorSystem
from tests.appkit import settings_data
from tests.fake_telegram import TOKEN, FakeTelegram

SECRET = "s3cret-Webhook_token"
WEBHOOK_URL = "https://bot.example.org/telegram/webhook"


def telegram_settings(
    fake: FakeTelegram, tmp_path: Path, base: Settings | None = None, **telegram: Any
) -> Settings:
    data: dict[str, Any] = settings_data(base) if base is not None else {}
    data.update(
        data_dir=str(tmp_path),
        http={"port": 0},
        kernel={"ask_timeout_s": 10.0, "shutdown_timeout_s": 2.0},
        telegram={"api_base": fake.url, "poll_timeout_s": 5, **telegram},
        telegram_bot_token=TOKEN,
    )
    if telegram.get("mode") == "webhook":
        data["telegram"].setdefault("webhook_url", WEBHOOK_URL)
        data["telegram_webhook_secret"] = SECRET
    return Settings.model_validate(data)


def connector(system: ActorSystem, path: str = "/connectors/telegram") -> TelegramConnector:
    for cell in system.cells():
        if cell.path == path:
            assert isinstance(cell.actor, TelegramConnector)
            return cell.actor
    raise AssertionError(f"no {path}")
