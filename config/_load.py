"""Where settings come from, in which order, and how failures are reported.

Each source becomes a flat layer ``{"http.port": (value, "env GREENROOM_HTTP_PORT")}``;
layers are applied lowest first (packaged defaults < ``--config`` file <
secrets file < environment < CLI overrides), then validated once by
:class:`Settings`. Keeping the origin of every value lets one
:class:`ConfigError` say which source to fix.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from ._errors import ConfigError
from ._settings import SECRET_ENV, Settings

__all__ = ["PACKAGED_CONFIG", "load_settings"]

PACKAGED_CONFIG = Path(__file__).with_name("greenroom.toml")

#: Environment (and secrets-file) names -> dotted setting.
ENV_NAMES: dict[str, str] = {
    "GREENROOM_DATA_DIR": "data_dir",
    "GREENROOM_HTTP_HOST": "http.host",
    "GREENROOM_HTTP_PORT": "http.port",
    "GREENROOM_DEBUG_TCP": "debug.tcp",
    "ANTHROPIC_BASE_URL": "anthropic.base_url",
    "TELEGRAM_API_BASE": "telegram.api_base",
    "NOSTR_RELAYS": "nostr.relays",
    "LNBITS_URL": "lnbits.url",
    **{env: field for field, env in SECRET_ENV.items()},
}
_LIST_SETTINGS = frozenset({"nostr.relays"})  # comma-separated in env and secrets files
_PREFIX = "GREENROOM_"

Layer = dict[str, tuple[Any, str]]


def _secret_not_here(field: str, where: str, *, source: str = "") -> ConfigError:
    """The one-line refusal of a secret given anywhere but the environment or a 0600
    secrets file (``where``: what it was found in)."""
    return ConfigError(
        f"secret {field!r} must come from the environment or a 0600 secrets file "
        f"(as {SECRET_ENV[field]}), not {where}",
        setting=field,
        source=source,
    )


def _secret_field(path: str) -> str | None:
    """The secret field a dotted path names, however spelled (``telegram.bot_token``)."""
    for candidate in (path.lower(), path.lower().replace(".", "_")):
        if candidate in SECRET_ENV:
            return candidate
    upper = path.upper()
    return next((field for field, env in SECRET_ENV.items() if env == upper), None)


def _flatten(table: Mapping[str, Any], source: str, prefix: str = "") -> Layer:
    layer: Layer = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            layer.update(_flatten(value, source, f"{path}."))
        else:
            layer[path] = (value, source)
    return layer


def _toml_layer(path: Path, label: str) -> Layer:
    try:
        with path.open("rb") as file:
            table = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in config file {path}: {exc}") from None
    layer = _flatten(table, f"{label} {path}")
    for key in layer:
        field = _secret_field(key)
        if field is not None:
            raise _secret_not_here(field, f"config file {path}", source=f"{label} {path}")
    return layer


def _env_path(name: str) -> str | None:
    """The dotted setting an environment name sets, or None if it sets none."""
    if name in ENV_NAMES:
        return ENV_NAMES[name]
    if name.startswith(_PREFIX) and "__" in name:
        path = ".".join(name[len(_PREFIX) :].lower().split("__"))
        return _secret_field(path) or path
    return None


def _env_layer(env: Mapping[str, str], label: str) -> Layer:
    """Settings named by ``env``; unrelated names are ignored.

    The ``GREENROOM_<SECTION>__<KEY>`` spelling is applied after the short one
    (``GREENROOM_HTTP_PORT``), so it wins when both are set.
    """
    layer: Layer = {}
    for name in sorted(env, key=lambda n: ("__" in n, n)):
        path = _env_path(name)
        if path is None:
            continue  # the environment is shared with everything else on the box
        value: Any = env[name]
        if path in _LIST_SETTINGS:
            value = [item.strip() for item in value.split(",") if item.strip()]
        layer[path] = (value, f"{label} {name}")
    return layer


def _read_secrets_file(path: Path) -> dict[str, str]:
    try:
        # fstat on the open file: the mode checked is the mode of what is read.
        with path.open("r", encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & 0o077:
                raise ConfigError(
                    f"secrets file {path} has mode {mode & 0o777:04o}: it must not be "
                    f"accessible by group or others (chmod 600 {path})",
                    source=f"secrets file {path}",
                )
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read secrets file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"secrets file {path} is not valid UTF-8") from None
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        # Never echo the line: it may hold a secret.
        if not sep or not key:
            raise ConfigError(f"secrets file {path}, line {number}: expected KEY=VALUE")
        if _env_path(key) is None:
            raise ConfigError(f"secrets file {path}, line {number}: unknown key {key!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        entries[key] = value
    return entries


def _override_layer(overrides: Mapping[str, Any]) -> Layer:
    layer: Layer = {}
    for key, value in overrides.items():
        if value is None:
            continue  # an option not given on the command line
        items = _flatten(value, "", f"{key}.") if isinstance(value, Mapping) else {key: (value, "")}
        for path, (item, _) in items.items():
            field = _secret_field(path)
            if field is not None:
                # Command lines are visible to every user in `ps`.
                raise _secret_not_here(field, "a command-line override")
            layer[path] = (item, f"override {path}")
    return layer


def _unflatten(merged: Layer) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for path, (value, source) in merged.items():
        *parents, leaf = path.split(".")
        node = data
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parents[: depth + 1])
                raise ConfigError(f"setting {where!r} must be a table ({source})", setting=where)
            node = child
        if isinstance(node.get(leaf), dict):
            raise ConfigError(f"setting {path!r} must be a table ({source})", setting=path)
        node[leaf] = value
    return data


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _config_error(exc: pydantic.ValidationError, merged: Layer) -> ConfigError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    setting = ".".join(loc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if not loc:
        return ConfigError(f"invalid configuration: {first['msg']}{more}")
    # The longest dotted prefix with a known origin (list items, nested keys).
    source = next(
        (merged[p][1] for i in range(len(loc), 0, -1) if (p := ".".join(loc[:i])) in merged),
        "",
    )
    origin = f" (from {source})" if source else ""
    if first["type"] == "extra_forbidden":
        message = f"unknown setting {setting!r}{origin}{more}"
    else:
        value = first["input"]
        if loc[0] in SECRET_ENV:
            shown = " = '***'"
        elif first["type"] == "missing" or isinstance(value, dict):
            shown = ""
        else:
            shown = f" = {_short(value)}"
        message = f"invalid setting {setting!r}{shown}{origin}: {first['msg']}{more}"
    return ConfigError(message, setting=setting, source=source)


def load_settings(
    *,
    config_file: Path | None = None,
    secrets_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load, merge and validate the configuration.

    Precedence, lowest first: the packaged ``greenroom.toml`` < ``config_file``
    < the secrets file (``secrets_file``, else ``$GREENROOM_SECRETS_FILE``) <
    ``env`` (default ``os.environ``) < ``overrides`` (dotted keys such as
    ``"data_dir"`` or ``"http.port"``; ``None`` values are skipped).

    Raises :class:`ConfigError`, one line, for: an unreadable or invalid TOML
    file (naming the path); a secret in a TOML file or in ``overrides``; a
    secrets file with group/other permission bits, a malformed line or an
    unknown key; and the first invalid value, naming the dotted setting, its
    source and the value (``'***'`` for secrets).
    """
    env = os.environ if env is None else env
    layers = [_toml_layer(PACKAGED_CONFIG, "defaults")]
    if config_file is not None:
        layers.append(_toml_layer(Path(config_file), "config file"))
    secrets_path = secrets_file or env.get("GREENROOM_SECRETS_FILE") or None
    if secrets_path is not None:
        secrets_path = Path(secrets_path)
        layers.append(_env_layer(_read_secrets_file(secrets_path), f"secrets file {secrets_path}:"))
    layers.append(_env_layer(env, "env"))
    if overrides:
        layers.append(_override_layer(overrides))
    merged: Layer = {}
    for layer in layers:
        merged.update(layer)
    try:
        return Settings.model_validate(_unflatten(merged))
    except pydantic.ValidationError as exc:
        # `from None`: the chained ValidationError's text would show secret inputs.
        raise _config_error(exc, merged) from None
