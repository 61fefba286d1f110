"""config: defaults, layering, validation errors, secrets and masking."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

import config
from config import (
    PACKAGED_CONFIG,
    SECRET_ENV,
    ConfigError,
    Settings,
    effective_config,
    load_settings,
    mask_url,
)

ALL_SECRETS = {
    "DATABASE_URL": "postgresql://app:hunter2-db@db.internal:5432/greenroom",
    "GREENROOM_DEBUG_TOKEN": "s3cret-debug-token",
    "ANTHROPIC_API_KEY": "sk-ant-s3cret",
    "TELEGRAM_BOT_TOKEN": "123:s3cret-bot",
    "TELEGRAM_WEBHOOK_SECRET": "s3cret-hook",
    "NOSTR_PRIVATE_KEY": "nsec1s3cret",
    "LNBITS_INVOICE_KEY": "s3cret-invoice",
    "LNBITS_ADMIN_KEY": "s3cret-admin",
    "OPENAI_API_KEY": "sk-openai-s3cret",
}


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_public_names_are_pinned() -> None:
    assert sorted(config.__all__) == sorted(
        [
            "PACKAGED_CONFIG",
            "SECRET_ENV",
            "ConfigError",
            "ReconcilerSettings",
            "Settings",
            "effective_config",
            "load_settings",
            "mask_url",
        ]
    )


# --------------------------------------------------------------------------- defaults


def test_defaults_with_empty_env() -> None:
    s = load_settings(env={})
    assert s.data_dir == Path("./data")
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert s.debug.tcp == ""
    assert (s.log.level, s.log.format) == ("info", "auto")
    assert s.kernel.mailbox_capacity == 1000
    assert s.kernel.ask_timeout_s == 5.0
    assert s.kernel.dead_letter_capacity == 1000
    assert s.kernel.shutdown_timeout_s == 5.0
    assert s.supervision.max_restarts == 3
    assert s.supervision.within_s == 5.0
    assert (s.supervision.backoff_min_s, s.supervision.backoff_max_s) == (0.1, 10.0)
    assert s.supervision.backoff_jitter == 0.2
    assert s.supervision.backoff_reset_after_s == 30.0
    assert (s.users.idle_timeout_s, s.users.max_live) == (600.0, 100_000)
    assert s.telegram.api_base == "https://api.telegram.org"
    assert s.nostr.relays == ()
    assert s.anthropic.base_url == "" and s.lnbits.url == ""
    assert all(getattr(s, field) is None for field in SECRET_ENV)


def test_packaged_toml_matches_model_defaults() -> None:
    # The TOML file is the documented source of defaults; the model must agree.
    with PACKAGED_CONFIG.open("rb") as f:
        assert tomllib.load(f)
    assert load_settings(env={}) == Settings()


def test_settings_is_frozen() -> None:
    s = load_settings(env={})
    with pytest.raises(ValueError):
        s.http.port = 1  # type: ignore[misc]


def test_settings_constructor_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENROOM_HTTP_PORT", "9999")
    assert Settings().http.port == 8080


def test_os_environ_is_the_default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENROOM_HTTP_PORT", "9999")
    assert load_settings().http.port == 9999


# --------------------------------------------------------------------------- precedence


def test_env_overrides_file_overrides_defaults(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "g.toml",
        '[http]\nport = 9000\nhost = "0.0.0.0"\n[kernel]\nmailbox_capacity = 10\n',
    )
    s = load_settings(config_file=cfg, env={})
    assert (s.http.port, s.http.host, s.kernel.mailbox_capacity) == (9000, "0.0.0.0", 10)
    assert s.kernel.ask_timeout_s == 5.0  # untouched keys keep the defaults
    s = load_settings(config_file=cfg, env={"GREENROOM_HTTP_PORT": "9100"})
    assert (s.http.port, s.http.host) == (9100, "0.0.0.0")


def test_overrides_beat_env(tmp_path: Path) -> None:
    s = load_settings(
        env={"GREENROOM_DATA_DIR": "/from/env", "GREENROOM_HTTP_PORT": "9100"},
        overrides={"data_dir": tmp_path, "http.port": 9200, "log": None},
    )
    assert s.data_dir == tmp_path
    assert s.http.port == 9200


def test_secrets_file_below_env(tmp_path: Path) -> None:
    secrets = write(tmp_path / "secrets.env", "TELEGRAM_BOT_TOKEN=from-file\n")
    s = load_settings(secrets_file=secrets, env={})
    assert s.telegram_bot_token is not None
    assert s.telegram_bot_token.get_secret_value() == "from-file"
    s = load_settings(secrets_file=secrets, env={"TELEGRAM_BOT_TOKEN": "from-env"})
    assert s.telegram_bot_token is not None
    assert s.telegram_bot_token.get_secret_value() == "from-env"


def test_double_underscore_env_sets_any_section_key() -> None:
    s = load_settings(
        env={
            "GREENROOM_KERNEL__MAILBOX_CAPACITY": "50",
            "GREENROOM_SUPERVISION__BACKOFF_JITTER": "0.5",
            "GREENROOM_LOG__LEVEL": "DEBUG",
        }
    )
    assert s.kernel.mailbox_capacity == 50
    assert s.supervision.backoff_jitter == 0.5
    assert s.log.level == "debug"


def test_double_underscore_wins_over_short_name() -> None:
    env = {"GREENROOM_HTTP__PORT": "1111", "GREENROOM_HTTP_PORT": "2222"}
    assert load_settings(env=env).http.port == 1111


def test_design_env_names() -> None:
    env = {
        "GREENROOM_DATA_DIR": "/var/lib/g",
        "GREENROOM_HTTP_HOST": "0.0.0.0",
        "GREENROOM_DEBUG_TCP": "127.0.0.1:7070",
        "ANTHROPIC_BASE_URL": "https://proxy.example/v1",
        "TELEGRAM_API_BASE": "http://localhost:8081",
        "NOSTR_RELAYS": "wss://a.example, wss://b.example,",
        "LNBITS_URL": "https://ln.example",
        **ALL_SECRETS,
    }
    s = load_settings(env=env)
    assert s.data_dir == Path("/var/lib/g")
    assert s.http.host == "0.0.0.0"
    assert s.debug.tcp == "127.0.0.1:7070"
    assert s.anthropic.base_url == "https://proxy.example/v1"
    assert s.telegram.api_base == "http://localhost:8081"
    assert s.nostr.relays == ("wss://a.example", "wss://b.example")
    assert s.lnbits.url == "https://ln.example"
    for field, name in SECRET_ENV.items():
        assert getattr(s, field).get_secret_value() == ALL_SECRETS[name]


def test_unrelated_env_is_ignored() -> None:
    assert load_settings(env={"HOME": "/root", "GREENROOM_SECRETS_FILEX": "x"}).http.port == 8080


def test_empty_secret_is_unset() -> None:
    s = load_settings(env={"DATABASE_URL": "", "TELEGRAM_BOT_TOKEN": ""})
    assert s.database_url is None and s.telegram_bot_token is None


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"GREENROOM_HTTP_PORT": "70000"}, "'http.port' = '70000' (from env GREENROOM_HTTP_PORT)"),
        ({"GREENROOM_HTTP_PORT": "-1"}, "'http.port' = '-1'"),
        ({"GREENROOM_KERNEL__MAILBOX_CAPACITY": "0"}, "'kernel.mailbox_capacity' = '0'"),
        ({"GREENROOM_KERNEL__ASK_TIMEOUT_S": "0"}, "'kernel.ask_timeout_s' = '0'"),
        ({"GREENROOM_KERNEL__ASK_TIMEOUT_S": "nan"}, "'kernel.ask_timeout_s' = 'nan'"),
        ({"GREENROOM_USERS__IDLE_TIMEOUT_S": "-1"}, "'users.idle_timeout_s' = '-1'"),
        ({"GREENROOM_SUPERVISION__MAX_RESTARTS": "-1"}, "'supervision.max_restarts' = '-1'"),
        ({"GREENROOM_SUPERVISION__BACKOFF_JITTER": "1.5"}, "'supervision.backoff_jitter' = '1.5'"),
        ({"GREENROOM_SUPERVISION__BACKOFF_MAX_S": "0.01"}, "must be >= backoff_min_s (0.1)"),
        ({"GREENROOM_LOG__LEVEL": "loud"}, "'log.level' = 'loud'"),
        ({"GREENROOM_LOG__FORMAT": "xml"}, "'log.format' = 'xml'"),
        ({"GREENROOM_DEBUG_TCP": "0.0.0.0:7070"}, "'debug.tcp' = '0.0.0.0:7070'"),
        ({"GREENROOM_DEBUG_TCP": "127.0.0.1"}, "loopback HOST:PORT"),
        ({"NOSTR_RELAYS": "wss://ok,https://bad"}, "'nostr.relays.1' = 'https://bad'"),
        ({"TELEGRAM_API_BASE": "ftp://x"}, "'telegram.api_base' = 'ftp://x'"),
        ({"GREENROOM_DATA_DIR": ""}, "'data_dir' = ''"),
        ({"GREENROOM_KERNEL__MAILBOX_CAPACTY": "5"}, "unknown setting 'kernel.mailbox_capacty'"),
    ],
)
def test_bad_values_name_setting_source_and_value(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_port_error_attributes() -> None:
    with pytest.raises(ConfigError, match=r"http\.port.*70000") as info:
        load_settings(env={"GREENROOM_HTTP_PORT": "70000"})
    assert info.value.setting == "http.port"
    assert info.value.source == "env GREENROOM_HTTP_PORT"


def test_bad_value_from_file_names_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "g.toml", "[http]\nport = 70000\n")
    with pytest.raises(ConfigError, match=re.escape(f"from config file {cfg}")):
        load_settings(config_file=cfg, env={})


def test_several_errors_become_one(tmp_path: Path) -> None:
    env = {"GREENROOM_HTTP_PORT": "-1", "GREENROOM_KERNEL__MAILBOX_CAPACITY": "0"}
    with pytest.raises(ConfigError, match=r"and 1 more"):
        load_settings(env=env)


def test_debug_tcp_requires_a_token() -> None:
    with pytest.raises(ConfigError, match="GREENROOM_DEBUG_TOKEN is unset"):
        load_settings(env={"GREENROOM_DEBUG_TCP": "127.0.0.1:7070"})
    env = {"GREENROOM_DEBUG_TCP": "[::1]:7070", "GREENROOM_DEBUG_TOKEN": "t"}
    assert load_settings(env=env).debug.tcp == "[::1]:7070"


@pytest.mark.parametrize(
    "text", ["[http\n", "[http]\nport = \n", "http = 5\n", "[unknown]\nx = 1\n", "[http]\nx = 1\n"]
)
def test_invalid_toml_file(tmp_path: Path, text: str) -> None:
    cfg = write(tmp_path / "g.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, env={})
    assert "\n" not in str(info.value)


def test_missing_toml_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"cannot read config file {tmp_path / 'nope.toml'}")
    ):
        load_settings(config_file=tmp_path / "nope.toml", env={})


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[telegram]\nbot_token = "abc"\n', "telegram_bot_token"),
        ('telegram_bot_token = "abc"\n', "telegram_bot_token"),
        ('DATABASE_URL = "postgresql://u:p@h/d"\n', "database_url"),
        ('[debug]\ntoken = "abc"\n', "debug_token"),
        ('[lnbits]\nadmin_key = "abc"\n', "lnbits_admin_key"),
    ],
)
def test_secret_in_toml_is_refused(tmp_path: Path, text: str, field: str) -> None:
    cfg = write(tmp_path / "g.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, env={})
    message = str(info.value)
    assert message.startswith(f"secret {field!r} must come from the environment")
    assert f"not config file {cfg}" in message
    assert "abc" not in message and "u:p@" not in message


def test_secret_in_overrides_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'debug_token'.*command-line"):
        load_settings(env={}, overrides={"debug_token": "abc"})


def test_secrets_file_0644_refused(tmp_path: Path) -> None:
    secrets = write(tmp_path / "secrets.env", "TELEGRAM_BOT_TOKEN=abc\n", mode=0o644)
    with pytest.raises(
        ConfigError, match=re.escape(f"secrets file {secrets} has mode 0644")
    ) as info:
        load_settings(secrets_file=secrets, env={})
    assert "abc" not in str(info.value)


def test_secrets_file_0600_accepted_with_comments_and_quotes(tmp_path: Path) -> None:
    secrets = write(
        tmp_path / "secrets.env",
        "# greenroom secrets\n\nLNBITS_INVOICE_KEY = 'inv'\nLNBITS_URL=https://ln.example\n"
        'NOSTR_PRIVATE_KEY="nsec1x#y"\nNOSTR_RELAYS=wss://r.example\n',
    )
    s = load_settings(secrets_file=secrets, env={})
    assert s.lnbits_invoice_key is not None and s.lnbits_invoice_key.get_secret_value() == "inv"
    assert s.nostr_private_key is not None
    assert s.nostr_private_key.get_secret_value() == "nsec1x#y"
    assert s.nostr.relays == ("wss://r.example",)


def test_secrets_file_from_env(tmp_path: Path) -> None:
    secrets = write(tmp_path / "secrets.env", "ANTHROPIC_API_KEY=k\n")
    s = load_settings(env={"GREENROOM_SECRETS_FILE": str(secrets)})
    assert s.anthropic_api_key is not None and s.anthropic_api_key.get_secret_value() == "k"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("TELEGRAM_BOT_TOKEN abc\n", "line 1: expected KEY=VALUE"),
        ("# c\nTELEGRAM_BOT_TKN=abc\n", "line 2: unknown key 'TELEGRAM_BOT_TKN'"),
    ],
)
def test_secrets_file_bad_lines_do_not_echo_values(tmp_path: Path, text: str, match: str) -> None:
    secrets = write(tmp_path / "secrets.env", text)
    with pytest.raises(ConfigError, match=match) as info:
        load_settings(secrets_file=secrets, env={})
    assert "abc" not in str(info.value)


def test_missing_secrets_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read secrets file"):
        load_settings(secrets_file=tmp_path / "nope", env={})


# --------------------------------------------------------------------------- database url


@pytest.mark.parametrize("url", ["mysql://app:hunter2@h/db", "app:hunter2@h/db", "sqlite:///x.db"])
def test_bad_database_url_scheme(url: str) -> None:
    with pytest.raises(ConfigError, match="postgresql://") as info:
        load_settings(env={"DATABASE_URL": url})
    message = str(info.value)
    assert "hunter2" not in message
    assert mask_url(url) in message


@pytest.mark.parametrize("url", ["postgresql://u:p@h/db", "postgres://h/db"])
def test_good_database_urls(url: str) -> None:
    s = load_settings(env={"DATABASE_URL": url})
    assert s.database_url is not None and s.database_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        (
            "postgresql://u:pw@h:5432/db?sslmode=require",
            "postgresql://u:***@h:5432/db?sslmode=require",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db?password=pw&x=1", "postgresql://h/db?password=***&x=1"),
        ("postgresql://u:p/w#d@h/db", "postgresql://u:***@h/db"),
        ("u:pw@h/db", "u:***@h/db"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --------------------------------------------------------------------------- output


def test_effective_config_masks_every_secret() -> None:
    s = load_settings(env={**ALL_SECRETS, "GREENROOM_DEBUG_TCP": "127.0.0.1:7070"})
    eff = effective_config(s)
    dumped = json.dumps(eff)
    for text in (dumped, repr(eff), str(eff), repr(s), str(s)):
        for name, secret in ALL_SECRETS.items():
            value = "hunter2-db" if name == "DATABASE_URL" else secret
            assert value not in text, name
    assert eff["database_url"] == "postgresql://app:***@db.internal:5432/greenroom"
    assert all(eff[field] == "***" for field in SECRET_ENV if field != "database_url")
    assert (eff["http"]["host"], eff["http"]["port"]) == ("127.0.0.1", 8080)
    assert eff["data_dir"] == "data"


def test_effective_config_unset_secrets_are_empty() -> None:
    eff: dict[str, Any] = effective_config(load_settings(env={}))
    assert all(eff[field] == "" for field in SECRET_ENV)
    assert json.loads(json.dumps(eff)) == eff


def test_enabled_doors() -> None:
    doors = load_settings(env={}).enabled_doors()
    assert doors["http"] is True
    assert doors["telegram"] == "TELEGRAM_BOT_TOKEN is unset"
    assert doors["nostr"] == "NOSTR_PRIVATE_KEY is unset and NOSTR_RELAYS is empty"
    assert doors["lnbits"] == "LNBITS_URL is unset and LNBITS_INVOICE_KEY is unset"
    env = {
        "TELEGRAM_BOT_TOKEN": "t",
        "NOSTR_PRIVATE_KEY": "k",
        "NOSTR_RELAYS": "wss://r.example",
        "LNBITS_URL": "https://ln.example",
        "LNBITS_INVOICE_KEY": "i",
    }
    assert all(v is True for v in load_settings(env=env).enabled_doors().values())
    partial = load_settings(env={"NOSTR_PRIVATE_KEY": "k", "LNBITS_URL": "https://ln"})
    assert partial.enabled_doors()["nostr"] == "NOSTR_RELAYS is empty"
    assert partial.enabled_doors()["lnbits"] == "LNBITS_INVOICE_KEY is unset"
