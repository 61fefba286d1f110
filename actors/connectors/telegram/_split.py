"""Splitting a reply into messages Telegram accepts (at most 4096 characters each).

Telegram counts the text's length after entity parsing in UTF-16 code units
(https://core.telegram.org/bots/api#sendmessage: "1-4096 characters after
entities parsing"); replies are sent as plain text, so the length is the
UTF-16 length of the string. Cuts prefer a paragraph break, then a line
break, then a space, and only then a hard cut, so no word is split while a
better place exists.
"""

from __future__ import annotations

__all__ = ["MAX_MESSAGE", "split_text", "utf16_len"]

MAX_MESSAGE = 4096


def utf16_len(text: str) -> int:
    """The length Telegram counts: UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> int:
    """The longest prefix length (in characters) whose UTF-16 length is <= limit."""
    if utf16_len(text) <= limit:
        return len(text)
    units = 0
    for n, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return n
    return len(text)


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 units, cut at paragraph, line or
    word boundaries when possible; whitespace at the cuts is dropped. Empty or
    blank text gives one piece ``"…"`` (Telegram refuses empty messages).
    Raises ValueError for ``limit < 16``."""
    if limit < 16:
        raise ValueError(f"limit must be >= 16, not {limit!r}")
    rest = text.strip()
    if not rest:
        return ["…"]
    pieces: list[str] = []
    while rest:
        end = _fit(rest, limit)
        if end == len(rest):
            pieces.append(rest)
            break
        window = rest[:end]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep)
            if at > limit // 4:  # a cut too near the start would make a sliver
                cut = at
                break
        if cut == -1:
            cut = end
        piece, rest = rest[:cut].rstrip(), rest[cut:].strip()
        if piece:
            pieces.append(piece)
    return pieces
