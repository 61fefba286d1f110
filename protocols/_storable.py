"""What both storage backends can hold, checked once, at the door.

Postgres TEXT and JSONB refuse NUL; UTF-8 cannot encode a lone surrogate
(which any JSON body may carry as ``"\\ud800"``); JSON has no NaN or infinity.
SQLite would store some of these and fail on others, so the same value would
behave differently on the two backends. Refusing them where untrusted input
enters gives every backend one contract and the sender one clear error.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["storable_problem", "storable_text_problem"]


def storable_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as TEXT, or None when it can."""
    if "\x00" in text:
        return "must not contain NUL (U+0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def storable_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON text (or TEXT, for a string), or None.

    Walks dicts, lists and tuples; keys must be strings; floats must be finite.
    """
    match value:
        case str():
            return storable_text_problem(value)
        case bool() | int() | None:
            return None
        case float():
            return None if math.isfinite(value) else "must not hold NaN or infinity"
        case dict():
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"has a non-string key {key!r}"
                problem = storable_text_problem(key) or storable_problem(item)
                if problem:
                    return problem
            return None
        case list() | tuple():
            for item in value:
                problem = storable_problem(item)
                if problem:
                    return problem
            return None
        case _:
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                return f"holds {type(value).__name__}, which is not JSON"
            return None
