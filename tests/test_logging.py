"""Log lines never carry a secret: RedactSecrets masks values by key name."""

from __future__ import annotations

import io
import json

import structlog

from supervision import RedactSecrets, configure_logging


def test_values_of_secret_keys_are_masked_every_time() -> None:
    redact = RedactSecrets()
    for _ in range(2):  # the second line takes the cached verdicts
        event = redact(
            None,
            "info",
            {
                "event": "x",
                "bot_token": "123:abc",
                "DB_Password": "pw",
                "api_key": "",
                "tokens_in": 5,
                "path": "/users/a",
                "secret": None,
            },
        )
        assert event == {
            "event": "x",
            "bot_token": "***",
            "DB_Password": "***",
            "api_key": "",
            "tokens_in": 5,
            "path": "/users/a",
            "secret": None,
        }


def test_configured_logging_writes_json_without_the_secret() -> None:
    out = io.StringIO()
    try:
        configure_logging("info", "json", out)
        structlog.get_logger("t").info("connected", authorization="Bearer s3cr3t", user="ada")
    finally:
        structlog.reset_defaults()
    line = json.loads(out.getvalue())
    assert (
        line["authorization"] == "***" and line["user"] == "ada" and "s3cr3t" not in out.getvalue()
    )
