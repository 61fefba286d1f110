"""The validated settings model, one pydantic model per TOML section.

Values are validated here; where they come from (files, environment, CLI) is
``_load``'s business. Secrets are ``SecretStr`` top-level fields so their
``repr`` is masked everywhere a Settings object can end up (logs, tracebacks).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from protocols import mask_url

__all__ = ["SECRET_ENV", "Settings", "effective_config", "mask_url"]

#: Secret field -> the environment variable (and secrets-file key) it comes from.
SECRET_ENV: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "debug_token": "GREENROOM_DEBUG_TOKEN",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "telegram_bot_token": "TELEGRAM_BOT_TOKEN",
    "telegram_webhook_secret": "TELEGRAM_WEBHOOK_SECRET",
    "nostr_private_key": "NOSTR_PRIVATE_KEY",
    "lnbits_invoice_key": "LNBITS_INVOICE_KEY",
    "lnbits_admin_key": "LNBITS_ADMIN_KEY",
    "openai_api_key": "OPENAI_API_KEY",
}


def _check_url(value: str, schemes: tuple[str, ...], *, allow_empty: bool) -> str:
    if value == "" and allow_empty:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in schemes or not parts.netloc:
        raise PydanticCustomError(
            "url", "must be a {schemes} URL", {"schemes": " or ".join(f"{s}://" for s in schemes)}
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- sections


class _Section(BaseModel):
    # NaN and infinity are never a sensible timeout or capacity.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _Backoff(_Section):
    """A section with ``backoff_min_s`` and ``backoff_max_s``: max may not be below min."""

    # A field validator rather than a model one, so the error names the field.
    @field_validator("backoff_max_s", check_fields=False)
    @classmethod
    def _max_at_least_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("backoff_min_s")
        if low is not None and value < low:
            raise PydanticCustomError(
                "backoff_order", "must be >= backoff_min_s ({low})", {"low": low}
            )
        return value


class HttpSettings(_Section):
    """``[http]``: the HTTP door and its bounds (each one's behaviour when hit in the toml)."""

    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65535)  # 0 = any free port (logged as http_listening)
    max_text_bytes: int = Field(16384, ge=1)  # a message's text, UTF-8; more: 413
    max_body_bytes: int = Field(65536, ge=1024, le=16 << 20)  # a request body; more: 413
    session_rate_per_minute: int = Field(10, ge=1)  # new sessions per client address; more: 429
    session_ttl_s: float = Field(30 * 86400.0, gt=0)  # a session token's lifetime
    long_poll_max_s: float = Field(30.0, ge=0, le=300)  # cap of GET /api/events?wait=
    max_waiters: int = Field(10_000, ge=1)  # long-polls and streams open at once; more: 503

    # A field validator rather than a model one, so the error names the field.
    @field_validator("max_body_bytes")
    @classmethod
    def _body_holds_text(cls, value: int, info: ValidationInfo) -> int:
        text = info.data.get("max_text_bytes")
        if text is not None and value <= text:
            raise PydanticCustomError(
                "body_limit", "must be > max_text_bytes ({text})", {"text": text}
            )
        return value


class DebugSettings(_Section):
    """``[debug]``: the debug socket's limits and the optional loopback TCP listener."""

    tcp: str = ""  # "" = off, else a loopback HOST:PORT; requires debug_token
    # A request frame above this closes its connection with a too_large error.
    max_frame_bytes: int = Field(1 << 20, ge=1024, le=64 << 20)
    max_connections: int = Field(32, ge=1)  # open connections; more wait in the backlog
    max_in_flight: int = Field(64, ge=1)  # requests running at once per connection

    @field_validator("tcp")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not (sep and port.isdigit() and 1 <= int(port) <= 65535 and _is_loopback(host)):
            raise PydanticCustomError(
                "debug_tcp", "must be '' (off) or a loopback HOST:PORT such as '127.0.0.1:7070'"
            )
        return value


class LogSettings(_Section):
    """``[log]``: structlog level and renderer (case-insensitive)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class KernelSettings(_Section):
    """``[kernel]``: mailbox, ask, dead-letter and shutdown defaults."""

    mailbox_capacity: int = Field(1000, ge=1)
    ask_timeout_s: float = Field(5.0, gt=0)
    dead_letter_capacity: int = Field(1000, ge=1)
    shutdown_timeout_s: float = Field(5.0, gt=0)


class SupervisionSettings(_Backoff):
    """``[supervision]``: restart intensity and backoff defaults."""

    max_restarts: int = Field(3, ge=0)
    within_s: float = Field(5.0, gt=0)
    # min 0 means "restart at once", as supervision.Backoff allows.
    backoff_min_s: float = Field(0.1, ge=0)
    backoff_max_s: float = Field(10.0, ge=0)
    backoff_jitter: float = Field(0.2, ge=0, le=1)
    backoff_reset_after_s: float = Field(30.0, ge=0)
    # /connectors: a door whose platform is down keeps backing off (up to
    # connectors_backoff_max_s between tries) instead of exhausting the intensity
    # and taking /connectors, and every other door with it, down.
    connectors_max_restarts: int = Field(100, ge=0)
    connectors_within_s: float = Field(60.0, gt=0)
    connectors_backoff_max_s: float = Field(60.0, gt=0)


class UsersSettings(_Section):
    """``[users]``: passivation of per-user actors."""

    idle_timeout_s: float = Field(600.0, gt=0)
    max_live: int = Field(100_000, ge=1)


class ReconcilerSettings(_Section):
    """``[reconciler]``: the periodic sweep for work no restart picked up."""

    interval_s: float = Field(30.0, gt=0)  # between sweeps
    # A job queued this long goes to its user's actor again: more than a Telegram photo's
    # enrichment bound (2 x [telegram] enrich_timeout_s), or a text queued behind
    # a photo in its chat is answered before the photo's description exists.
    queued_after_s: float = Field(180.0, gt=0)
    unsent_after_s: float = Field(30.0, gt=0)  # a reply unsent this long goes to its door again
    max_resends: int = Field(5, ge=1)  # per job or reply and process, then it waits for a restart
    batch: int = Field(500, ge=1)  # jobs and replies looked at per sweep


class StorageSettings(_Section):
    """``[storage]``: watching the database this process owns."""

    # How often /storage checks that this process still owns the database; a
    # process that lost it to another ends within one interval. At most an
    # hour: two processes answering the same users for longer is no watch.
    ownership_check_s: float = Field(30.0, gt=0, le=3600)


_TELEGRAM_UPDATES = ("message", "edited_message", "callback_query")


class TelegramSettings(_Section):
    """``[telegram]``: non-secret Telegram door settings (each one's meaning in the toml)."""

    api_base: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    poll_timeout_s: int = Field(30, ge=0, le=50)  # getUpdates long-poll wait
    webhook_url: str = ""  # public https URL of POST /telegram/webhook (mode webhook)
    allowed_updates: tuple[str, ...] = _TELEGRAM_UPDATES
    chat_rate_per_s: float = Field(1.0, gt=0)  # sends per second in one chat
    global_rate_per_s: float = Field(30.0, gt=0)  # sends per second for the whole bot
    max_retry_after_s: float = Field(300.0, gt=0)  # a longer 429 wait leaves the reply unsent
    request_timeout_s: float = Field(30.0, gt=0)  # one Bot API call (not getUpdates)
    conflict_backoff_max_s: float = Field(60.0, gt=0)  # cap of the 409/outage retry delay
    max_file_bytes: int = Field(20 << 20, ge=1)  # voice/photo downloads (Bot API max: 20 MB)
    stt_base_url: str = ""  # OpenAI-compatible .../v1 for /audio/transcriptions; "" = off
    stt_model: str = Field("whisper-1", min_length=1)
    enrich_timeout_s: float = Field(60.0, gt=0)  # each step: download; transcript or description
    max_enrichments: int = Field(4, ge=1)  # media messages enriched at once
    enrich_attempts: int = Field(3, ge=1)  # crash-interrupted starts, then it goes on unenriched
    resume_interval_s: float = Field(60.0, gt=0)  # how often unworked held messages are sought

    @field_validator("api_base")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("https", "http"), allow_empty=False)

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        # Telegram only calls https webhooks (setWebhook docs).
        return _check_url(value, ("https",), allow_empty=True)

    @field_validator("stt_base_url")
    @classmethod
    def _stt(cls, value: str) -> str:
        return _check_url(value, ("https", "http"), allow_empty=True)

    @field_validator("allowed_updates", mode="before")
    @classmethod
    def _update_names(cls, value: Any) -> Any:
        # The environment spells a list as "a,b".
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_url:
            raise PydanticCustomError(
                "webhook_url", "mode is 'webhook' but webhook_url is empty (an https:// URL)"
            )
        return self


def _relay_url(value: str) -> str:
    return _check_url(value, ("wss", "ws"), allow_empty=False)


class NostrSettings(_Backoff):
    """``[nostr]``: relay URLs and the Nostr door's bounds (each one's meaning in the toml)."""

    # Validated per item so an error names the index of the bad relay.
    relays: tuple[Annotated[str, AfterValidator(_relay_url)], ...] = ()
    backoff_min_s: float = Field(1.0, gt=0)  # first reconnect delay of a relay
    backoff_max_s: float = Field(60.0, gt=0)  # cap of the exponential reconnect delay
    connect_timeout_s: float = Field(10.0, gt=0)  # TCP + TLS + websocket handshake
    publish_timeout_s: float = Field(10.0, gt=0)  # wait for a relay's OK to an EVENT
    since_overlap_s: int = Field(300, ge=0)  # resubscribe this far before the stored `since`
    max_text_bytes: int = Field(16384, ge=1)  # longer DMs/mentions are stored cut to this


class AnthropicSettings(_Section):
    """``[anthropic]``: provider endpoint (``""`` = SDK default)."""

    base_url: str = ""  # "" = the SDK's default

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("https", "http"), allow_empty=True)


class LnbitsSettings(_Section):
    """``[lnbits]``: payments endpoint."""

    url: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, ("https", "http"), allow_empty=True)


# --------------------------------------------------------------------------- brain

_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a TOML/env key: no dots


class ModelSettings(_Section):
    """``[brain.models.<name>]``: one model a cascade can name, and its price."""

    provider: Literal["anthropic", "openai"]
    model: str = Field(min_length=1)  # the provider's model id
    # openai: the chat-completions base URL, e.g. "https://openrouter.ai/api/v1" (required);
    # anthropic: must be "" ([anthropic] base_url / ANTHROPIC_BASE_URL applies).
    base_url: str = Field("", validate_default=True)
    price_in_per_mtok: float = Field(0.0, ge=0)  # USD per million input tokens
    price_out_per_mtok: float = Field(0.0, ge=0)  # USD per million output tokens

    @field_validator("base_url")
    @classmethod
    def _base_url_for_provider(cls, value: str, info: ValidationInfo) -> str:
        provider = info.data.get("provider")
        if provider == "openai":
            return _check_url(value, ("https", "http"), allow_empty=False)
        if provider == "anthropic" and value != "":
            raise PydanticCustomError(
                "base_url",
                "must be '' for provider anthropic "
                "(set [anthropic] base_url or ANTHROPIC_BASE_URL)",
            )
        return value


def _names(value: Any) -> Any:
    # The environment spells a list as "a,b" (GREENROOM_BRAIN__CASCADES__ANSWER=a,b).
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


_Cascade = Annotated[tuple[str, ...], BeforeValidator(_names), Field(min_length=1)]


class CascadeSettings(_Section):
    """``[brain.cascades]``: the models tried, in order, for each purpose."""

    classify: _Cascade = ("haiku", "sonnet")
    answer: _Cascade = ("sonnet", "haiku")
    background: _Cascade = ("haiku", "sonnet")


def _default_models() -> dict[str, ModelSettings]:
    # Ids and prices from Anthropic's models overview and pricing pages.
    return {
        "haiku": ModelSettings(
            provider="anthropic",
            model="claude-haiku-4-5",
            price_in_per_mtok=1.0,
            price_out_per_mtok=5.0,
        ),
        "sonnet": ModelSettings(
            provider="anthropic",
            model="claude-sonnet-4-6",
            price_in_per_mtok=3.0,
            price_out_per_mtok=15.0,
        ),
    }


class BrainSettings(_Section):
    """``[brain]``: models, cascades per purpose, breaker, timeouts, tool-loop bound."""

    models: dict[str, ModelSettings] = Field(default_factory=_default_models)
    cascades: CascadeSettings = CascadeSettings()
    breaker_failures: int = Field(3, ge=1)  # consecutive failures that open a model's breaker
    breaker_cooldown_s: float = Field(30.0, gt=0)  # open -> half_open after this long
    call_timeout_s: float = Field(60.0, gt=0)  # one model call, start to last byte
    max_tool_steps: int = Field(4, ge=0)  # tool rounds in one answer before it must reply
    max_output_tokens: int = Field(1024, ge=1)  # per model call

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, ModelSettings]) -> dict[str, ModelSettings]:
        for name in value:
            if not _MODEL_NAME.match(name):
                raise PydanticCustomError(
                    "model_name",
                    "model name '{name}' must be 1-64 letters, digits, '_' or '-'",
                    {"name": name},
                )
        return value

    # A field validator rather than a model one, so the error names the field.
    @field_validator("cascades")
    @classmethod
    def _known_models(cls, value: CascadeSettings, info: ValidationInfo) -> CascadeSettings:
        models = info.data.get("models")
        if models is None:
            return value  # models itself was invalid: that error is the one to report
        for purpose in ("classify", "answer", "background"):
            for name in getattr(value, purpose):
                if name not in models:
                    raise PydanticCustomError(
                        "unknown_model",
                        "{purpose} names unknown model '{name}' (known: {known})",
                        {"purpose": purpose, "name": name, "known": ", ".join(sorted(models))},
                    )
        return value


# --------------------------------------------------------------------------- settings


class Settings(BaseSettings):
    """The whole effective configuration, frozen. Build it with ``load_settings``.

    ``Settings()`` alone gives the built-in defaults and reads nothing: the
    sources and their precedence live in ``load_settings`` (pydantic-settings'
    own sources are switched off so every value's origin is known and can be
    named in errors).
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path("./data")
    http: HttpSettings = HttpSettings()
    debug: DebugSettings = DebugSettings()
    log: LogSettings = LogSettings()
    kernel: KernelSettings = KernelSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    users: UsersSettings = UsersSettings()
    reconciler: ReconcilerSettings = ReconcilerSettings()
    storage: StorageSettings = StorageSettings()
    telegram: TelegramSettings = TelegramSettings()
    nostr: NostrSettings = NostrSettings()
    anthropic: AnthropicSettings = AnthropicSettings()
    lnbits: LnbitsSettings = LnbitsSettings()
    brain: BrainSettings = BrainSettings()

    # Secrets: environment or secrets file only (see SECRET_ENV). None = unset.
    database_url: SecretStr | None = None
    debug_token: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    nostr_private_key: SecretStr | None = None
    lnbits_invoice_key: SecretStr | None = None
    lnbits_admin_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None  # every [brain] model with provider "openai"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    @field_validator("data_dir", mode="before")
    @classmethod
    def _non_empty_dir(cls, value: Any) -> Any:
        if value == "":
            raise PydanticCustomError("empty", "must not be empty")
        return value

    @field_validator(*SECRET_ENV, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("postgresql://", "postgres://")
        ):
            raise PydanticCustomError(
                "database_url",
                "must be unset (SQLite) or start with postgresql:// or postgres://, not '{url}'",
                {"url": mask_url(value.get_secret_value())},
            )
        return value

    @model_validator(mode="after")
    def _token_for_tcp(self) -> Settings:
        # The TCP debug listener is reachable by every local user: DESIGN.md
        # requires a token in its first frame, so refuse to start without one.
        if self.debug.tcp and self.debug_token is None:
            raise PydanticCustomError(
                "debug_token",
                "debug.tcp is '{tcp}' but GREENROOM_DEBUG_TOKEN is unset; "
                "the TCP debug listener requires a token",
                {"tcp": self.debug.tcp},
            )
        return self

    @model_validator(mode="after")
    def _secret_for_webhook(self) -> Settings:
        # Without the secret anyone who guesses the URL could post updates.
        if (
            self.telegram_bot_token is not None
            and self.telegram.mode == "webhook"
            and self.telegram_webhook_secret is None
        ):
            raise PydanticCustomError(
                "telegram_webhook_secret",
                "telegram.mode is 'webhook' but TELEGRAM_WEBHOOK_SECRET is unset; "
                "the webhook requires a secret (1-256 of A-Z a-z 0-9 _ -)",
            )
        return self

    def enabled_doors(self) -> dict[str, bool | str]:
        """Map each door to ``True`` if it will start, else the reason it will not.

        A reason is a non-empty (hence truthy) string: test with ``is True``.
        http always starts; telegram needs TELEGRAM_BOT_TOKEN; nostr needs
        NOSTR_PRIVATE_KEY and NOSTR_RELAYS; lnbits needs LNBITS_URL and
        LNBITS_INVOICE_KEY.
        """

        def status(*missing: tuple[bool, str]) -> bool | str:
            reasons = [reason for absent, reason in missing if absent]
            return " and ".join(reasons) if reasons else True

        return {
            "http": True,
            "telegram": status((self.telegram_bot_token is None, "TELEGRAM_BOT_TOKEN is unset")),
            "nostr": status(
                (self.nostr_private_key is None, "NOSTR_PRIVATE_KEY is unset"),
                (not self.nostr.relays, "NOSTR_RELAYS is empty"),
            ),
            "lnbits": status(
                (self.lnbits.url == "", "LNBITS_URL is unset"),
                (self.lnbits_invoice_key is None, "LNBITS_INVOICE_KEY is unset"),
            ),
        }


# --------------------------------------------------------------------------- masking


def effective_config(settings: Settings) -> dict[str, Any]:
    """Return the whole configuration as JSON-able data with secrets masked.

    Every secret is ``"***"`` when set and ``""`` when unset, except
    ``database_url``, shown with only its password masked. Never raises.
    """
    data = settings.model_dump(mode="json")
    for field in SECRET_ENV:
        secret: SecretStr | None = getattr(settings, field)
        if secret is None:
            data[field] = ""
        elif field == "database_url":
            data[field] = mask_url(secret.get_secret_value())
        else:
            data[field] = "***"
    return data
