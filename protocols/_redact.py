"""Redaction of secrets in strings that must still be shown (logs, error lines)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["mask_url"]

_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def mask_url(url: str) -> str:
    """Return ``url`` with its password (and any ``password=`` query value) as ``***``.

    ``postgresql://u:pw@h/db`` becomes ``postgresql://u:***@h/db``. Never
    raises: a URL too malformed to parse has everything before its last ``@``
    masked after the user name, so a password cannot leak through a typo.
    """
    masked = _QUERY_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(masked)
    except ValueError:
        parts = None
    if parts is not None and "@" in parts.netloc:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostinfo}"
            return urlunsplit(parts._replace(netloc=netloc))
        return masked
    # Unparseable authority (no scheme, "/" or "#" in the password, ...).
    head_match = _SCHEME.match(masked)
    head = head_match.group(0) if head_match else ""
    rest = masked[len(head) :]
    userinfo, at, hostinfo = rest.rpartition("@")
    if at and ":" in userinfo:
        return f"{head}{userinfo.split(':', 1)[0]}:***@{hostinfo}"
    return masked
