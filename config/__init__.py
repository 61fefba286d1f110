"""greenroom's configuration: defaults, files, environment, secrets, validation.

``load_settings()`` layers the packaged ``greenroom.toml``, a user TOML file,
a 0600 secrets file, the environment and command-line overrides (lowest to
highest), validates the result once and returns a frozen :class:`Settings`,
or raises one :class:`ConfigError` naming the setting, its source and the bad
value. Secrets are never printed: see :func:`effective_config` and
:func:`mask_url`. This package imports nothing else of greenroom's but
``protocols``.
"""

from __future__ import annotations

from ._errors import ConfigError
from ._load import PACKAGED_CONFIG, load_settings
from ._settings import SECRET_ENV, ReconcilerSettings, Settings, effective_config, mask_url

__all__ = [
    "PACKAGED_CONFIG",
    "SECRET_ENV",
    "ConfigError",
    "ReconcilerSettings",
    "Settings",
    "effective_config",
    "load_settings",
    "mask_url",
]
