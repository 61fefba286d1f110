"""Telegram ``Update`` JSON to what the door does with it: ingest, an OK press, or nothing.

Untrusted input: :func:`parse_update` never raises; anything it cannot use
becomes :class:`Ignored` with a reason. Shapes from
https://core.telegram.org/bots/api#update (``Message``, ``CallbackQuery``,
``MessageEntity``, ``Voice``, ``Audio``, ``PhotoSize``).

What is used:

- ``message`` and ``edited_message`` (an edit is a new message: its update
  id is new) in private chats; in groups only when the bot is mentioned
  (``@username`` ``mention``, a ``text_mention`` of the bot, a
  ``/command@username``) or the message replies to one of the bot's;
- text, or the caption of a voice/audio/photo message (the media is
  :class:`Media`; the photo is the largest ``PhotoSize``);
- ``callback_query`` (the OK button).

Ignored (stored raw by the connector, never answered): channel posts,
``my_chat_member`` and every other update kind, messages from bots, group
messages not addressed to the bot, messages with nothing the door reads
(stickers, locations...).

:func:`to_inbound` turns an :class:`Incoming` into the ``chat.Inbound`` that
is stored: the same one whoever stores it (the HTTP door's webhook route or
the Telegram door's poller), so a redelivery through either is one message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from .chat import Inbound

__all__ = [
    "PLATFORM",
    "BotIdentity",
    "Callback",
    "Ignored",
    "Incoming",
    "Media",
    "parse_update",
    "to_inbound",
]

#: The platform name of every Telegram message (``chat.Inbound.platform``).
PLATFORM = "telegram"
#: What a media message says until its enrichment (transcript, description) replaces it.
_PENDING = {"voice": "[voice message]", "audio": "[audio]", "photo": "[photo]"}

_GROUPS = ("group", "supergroup")


@dataclass(frozen=True)
class BotIdentity:
    """Who the bot is (``getMe``): to recognise mentions and replies in groups."""

    id: int
    username: str


@dataclass(frozen=True)
class Media:
    """A file to fetch with ``getFile``: a voice note, an audio file or a photo."""

    kind: Literal["voice", "audio", "photo"]
    file_id: str
    mime_type: str
    file_size: int | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Incoming:
    """A message to ingest (``chat.Inbound`` with ``message_id`` ``u<update_id>``).

    With ``media`` it is stored *held*: without a job until the door has
    enriched it (transcript, image description) and released it."""

    update_id: int
    chat_id: str
    chat_type: str
    user_id: str
    author: str
    text: str
    sent_at: datetime | None
    edited: bool
    media: Media | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class Callback:
    """A press of an inline button: ``data`` as the bot set it (``ok:<approval_id>``)."""

    update_id: int
    id: str
    user_id: str
    data: str
    chat_id: int | None  # the message with the button, when Telegram still has it
    message_id: int | None


@dataclass(frozen=True)
class Ignored:
    """An update the door does not act on; ``kind`` names what it was."""

    update_id: int | None
    kind: str
    reason: str


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _author(user: dict[str, Any]) -> str:
    name = " ".join(str(user.get(k) or "") for k in ("first_name", "last_name")).strip()
    return (name or str(user.get("username") or ""))[:256]


def _media(msg: dict[str, Any]) -> Media | None:
    for kind in ("voice", "audio"):
        item = msg.get(kind)
        if isinstance(item, dict) and isinstance(item.get("file_id"), str):
            meta = {k: item[k] for k in ("duration", "file_unique_id") if k in item}
            return Media(
                kind,
                item["file_id"],
                str(item.get("mime_type") or "audio/ogg"),
                _int(item.get("file_size")),
                meta,
            )
    sizes = msg.get("photo")
    if isinstance(sizes, list):
        photos = [p for p in sizes if isinstance(p, dict) and isinstance(p.get("file_id"), str)]
        if photos:
            # The largest by pixels; Telegram lists sizes ascending, but says nothing binding.
            best = max(
                photos, key=lambda p: (_int(p.get("width")) or 0) * (_int(p.get("height")) or 0)
            )
            meta = {k: best[k] for k in ("width", "height", "file_unique_id") if k in best}
            return Media("photo", best["file_id"], "image/jpeg", _int(best.get("file_size")), meta)
    return None


def _addressed(msg: dict[str, Any], text: str, bot: BotIdentity) -> bool:
    """Whether a group message is for the bot: mention, text_mention, /cmd@bot, or a reply."""
    reply = msg.get("reply_to_message")
    replied_to = reply.get("from") if isinstance(reply, dict) else None
    if isinstance(replied_to, dict) and _int(replied_to.get("id")) == bot.id:
        return True
    entities = msg.get("entities") or msg.get("caption_entities") or []
    handle = "@" + bot.username.lower()
    # Offsets count UTF-16 code units (MessageEntity docs), not Python characters.
    units = text.encode("utf-16-le")
    for entity in entities if isinstance(entities, list) else []:
        if not isinstance(entity, dict):
            continue
        kind = entity.get("type")
        if kind == "text_mention":
            user = entity.get("user")
            if isinstance(user, dict) and _int(user.get("id")) == bot.id:
                return True
        if kind in ("mention", "bot_command"):
            start, length = _int(entity.get("offset")), _int(entity.get("length"))
            if start is None or length is None:
                continue
            word = units[2 * start : 2 * (start + length)].decode("utf-16-le", "replace").lower()
            if word == handle or (kind == "bot_command" and word.endswith(handle)):
                return True
    return False


def _strip_mention(text: str, bot: BotIdentity) -> str:
    handle = "@" + bot.username
    at = text.lower().find(handle.lower())
    if at == -1:
        return text
    stripped = (text[:at] + text[at + len(handle) :]).strip()
    return stripped or text


def _message(update_id: int, msg: Any, edited: bool, bot: BotIdentity) -> Incoming | Ignored:
    kind = "edited_message" if edited else "message"
    if not isinstance(msg, dict):
        return Ignored(update_id, kind, "not an object")
    chat, user = msg.get("chat"), msg.get("from")
    if not isinstance(chat, dict) or _int(chat.get("id")) is None:
        return Ignored(update_id, kind, "no chat")
    if not isinstance(user, dict) or _int(user.get("id")) is None:
        return Ignored(update_id, kind, "no sender (anonymous admin or channel)")
    if user.get("is_bot") is True:
        return Ignored(update_id, kind, "from a bot")
    text = msg.get("text") if isinstance(msg.get("text"), str) else msg.get("caption")
    text = text if isinstance(text, str) else ""
    media = _media(msg)
    if not text.strip() and media is None:
        return Ignored(update_id, kind, "nothing the door reads (no text, voice, audio or photo)")
    chat_type = str(chat.get("type") or "")
    if chat_type in _GROUPS:
        if not _addressed(msg, text, bot):
            return Ignored(update_id, kind, "group message not addressed to the bot")
        text = _strip_mention(text, bot)
    elif chat_type != "private":
        return Ignored(update_id, kind, f"{chat_type or 'unknown'} chat")
    date = _int(msg.get("edit_date")) if edited else None
    date = date or _int(msg.get("date"))
    return Incoming(
        update_id=update_id,
        chat_id=str(chat["id"]),
        chat_type=chat_type,
        user_id=str(user["id"]),
        author=_author(user),
        text=text,
        sent_at=datetime.fromtimestamp(date, UTC) if date else None,
        edited=edited,
        media=media,
        raw=msg,
    )


def _callback(update_id: int, query: Any) -> Callback | Ignored:
    if not isinstance(query, dict) or not isinstance(query.get("id"), str):
        return Ignored(update_id, "callback_query", "no id")
    user = query.get("from")
    if not isinstance(user, dict) or _int(user.get("id")) is None:
        return Ignored(update_id, "callback_query", "no sender")
    message = query.get("message")
    chat_id = message_id = None
    if isinstance(message, dict):
        message_id = _int(message.get("message_id"))
        chat = message.get("chat")
        chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
    data = query.get("data")
    return Callback(
        update_id=update_id,
        id=query["id"],
        user_id=str(user["id"]),
        data=data if isinstance(data, str) else "",
        chat_id=chat_id,
        message_id=message_id,
    )


def parse_update(update: Any, bot: BotIdentity) -> Incoming | Callback | Ignored:
    """What ``update`` asks of the door. Never raises (see the module docstring)."""
    if not isinstance(update, dict):
        return Ignored(None, "invalid", "an update is a JSON object")
    update_id = _int(update.get("update_id"))
    if update_id is None or update_id < 0:
        return Ignored(None, "invalid", "no update_id")
    if "message" in update:
        return _message(update_id, update["message"], False, bot)
    if "edited_message" in update:
        return _message(update_id, update["edited_message"], True, bot)
    if "callback_query" in update:
        return _callback(update_id, update["callback_query"])
    kinds = [k for k in update if k != "update_id"]
    return Ignored(update_id, kinds[0] if kinds else "empty", "not handled by this door")


def placeholder(inc: Incoming) -> str:
    """The text stored for ``inc`` on arrival: its text, or for a media message its
    caption and a marker (``[photo]``) that enrichment later replaces."""
    if inc.media is None:
        return inc.text
    caption = inc.text.strip()
    marker = _PENDING[inc.media.kind]
    return f"{caption}\n\n{marker}" if caption else marker


def to_inbound(inc: Incoming, update: dict[str, Any]) -> Inbound | Ignored:
    """The ``chat.Inbound`` to store for ``inc`` (``raw`` is the whole ``update``,
    ``message_id`` ``u<update_id>``), or :class:`Ignored` when storage could not
    hold it (a NUL in the text...). Never raises."""
    try:
        return Inbound(
            platform=PLATFORM,
            chat_id=inc.chat_id,
            user_id=inc.user_id,
            message_id=f"u{inc.update_id}",
            text=placeholder(inc),
            author=inc.author,
            sent_at=inc.sent_at,
            raw=update,
        )
    except ValidationError as exc:
        why = exc.errors()[0].get("msg", "invalid")
        return Ignored(inc.update_id, "message", f"unstorable: {why}")
