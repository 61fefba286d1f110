"""Errors raised while loading configuration.

There is one: :class:`ConfigError`. Whatever went wrong (a bad value, a
missing file, a secret in the wrong place, a secrets file others can read),
the operator gets one line naming the setting, where it came from and the bad
value; a secret's value is never part of the message.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """The configuration cannot be loaded or is invalid.

    ``setting`` is the dotted name of the offending setting (``"http.port"``)
    or ``""`` when the problem is a file; ``source`` says where the value came
    from (``"env GREENROOM_HTTP_PORT"``, ``"config file /etc/g.toml"``) or ``""``.
    """

    def __init__(self, message: str, *, setting: str = "", source: str = "") -> None:
        self.setting = setting
        self.source = source
        super().__init__(message)
