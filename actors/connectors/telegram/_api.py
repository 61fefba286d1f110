"""A small Bot API client over httpx: the methods the door uses, typed errors, no token leaks.

Every call is ``POST {api_base}/bot<token>/<method>`` with a JSON body; the
answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
"description", "parameters": {"retry_after", "migrate_to_chat_id"}}``
(https://core.telegram.org/bots/api#making-requests). Files come from
``GET {api_base}/file/bot<token>/<file_path>``.

The token is in every URL, so: httpx errors are translated here without their
message (see ``_errors``), nothing here logs a URL, and :func:`redact` is
installed as a filter on httpx's own ``logging`` logger, whose INFO line names
each request's URL.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from ._errors import ApiError, Conflict, RetryAfter, TelegramUnavailable

__all__ = ["BotApi", "redact"]

#: ``bot<id>:<secret>`` as it appears in Bot API paths (https://core.telegram.org/bots#how-do-i-create-a-bot).
_TOKEN_RE = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
#: Seconds added to a long poll's own timeout before the client gives up on it.
_POLL_GRACE_S = 10.0


def redact(text: str) -> str:
    """``text`` with every bot token replaced by ``bot***``."""
    return _TOKEN_RE.sub("bot***", text)


class _RedactFilter(logging.Filter):
    """Rewrites httpx's request log lines so they never carry a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact(str(record.msg))
        return True


def _install_log_filter() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactFilter) for f in logger.filters):
            logger.addFilter(_RedactFilter())


class BotApi:
    """One bot's Bot API. ``transport`` replaces httpx's (tests); ``timeout_s`` bounds
    every call except ``get_updates``, which waits its own timeout plus a grace.

    Every method is a checkpoint and raises :class:`TelegramUnavailable` or
    :class:`ApiError` (``RetryAfter``, ``Conflict``); cancelled half-way, the
    request may or may not have reached Telegram.
    """

    def __init__(
        self,
        token: str,
        api_base: str,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not _TOKEN_RE.fullmatch("bot" + token):
            raise ValueError("the bot token must look like <digits>:<letters> (value not shown)")
        base = api_base.rstrip("/")
        self._base = f"{base}/bot{token}/"
        self._files = f"{base}/file/bot{token}/"
        self._timeout = timeout_s
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout_s)
        _install_log_filter()

    def __repr__(self) -> str:
        return "<BotApi bot***>"

    async def aclose(self) -> None:
        """Close the HTTP client. Idempotent."""
        await self._client.aclose()

    # ------------------------------------------------------------------ the call
    async def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        """``method`` with ``params`` (None values dropped); return the ``result``."""
        body = {k: v for k, v in (params or {}).items() if v is not None}
        timeout = kw.get("timeout", self._timeout)
        try:
            response = await self._client.post(self._base + method, json=body, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise TelegramUnavailable(method, _why(exc), sent=False) from None
        except httpx.HTTPError as exc:
            raise TelegramUnavailable(method, _why(exc), sent=True) from None
        return _result(method, response)

    # ------------------------------------------------------------------ methods
    async def get_me(self) -> dict[str, Any]:
        """The bot's own User (``id``, ``username``)."""
        me: dict[str, Any] = await self.call("getMe")
        return me

    async def get_updates(
        self, offset: int, timeout: int, allowed_updates: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Updates from ``offset`` on, waiting up to ``timeout`` seconds for one.

        Asking with ``offset`` confirms every update below it: Telegram forgets them.
        """
        params = {"offset": offset, "timeout": timeout, "allowed_updates": allowed_updates}
        result = await self.call("getUpdates", params, timeout=timeout + _POLL_GRACE_S)
        if not isinstance(result, list):
            raise TelegramUnavailable("getUpdates", "result is not a list", sent=True)
        return [u for u in result if isinstance(u, dict)]

    async def set_webhook(self, url: str, secret_token: str, allowed_updates: list[str]) -> None:
        """Have Telegram POST updates to ``url`` with ``secret_token`` in a header."""
        params = {"url": url, "secret_token": secret_token, "allowed_updates": allowed_updates}
        await self.call("setWebhook", params)

    async def delete_webhook(self) -> None:
        """Remove any webhook (keeping pending updates) so that getUpdates works."""
        await self.call("deleteWebhook", {"drop_pending_updates": False})

    async def send_message(
        self, chat_id: str, text: str, reply_markup: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send ``text`` (plain, no parse mode); return the sent Message."""
        params = {"chat_id": chat_id, "text": text, "reply_markup": reply_markup}
        sent: dict[str, Any] = await self.call("sendMessage", params)
        return sent

    async def edit_reply_markup(self, chat_id: str | int, message_id: int) -> None:
        """Remove the inline keyboard of a message the bot sent."""
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "message_id": message_id,
            "reply_markup": {"inline_keyboard": []},
        }
        await self.call("editMessageReplyMarkup", params)

    async def answer_callback_query(self, callback_query_id: str, text: str) -> None:
        """Stop the button's spinner and show ``text`` to the user who pressed it."""
        await self.call(
            "answerCallbackQuery", {"callback_query_id": callback_query_id, "text": text}
        )

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> None:
        """Show ``action`` (``typing``) in the chat for about five seconds."""
        await self.call("sendChatAction", {"chat_id": chat_id, "action": action})

    async def download(self, file_id: str, max_bytes: int) -> tuple[bytes, str]:
        """``getFile`` then the file itself: (content, file_path). ApiError (413-like,
        code 400) when the file is larger than ``max_bytes``."""
        info = await self.call("getFile", {"file_id": file_id})
        path = info.get("file_path") if isinstance(info, dict) else None
        if not isinstance(path, str) or not path:
            raise TelegramUnavailable("getFile", "no file_path in the answer", sent=True)
        size = info.get("file_size")
        if isinstance(size, int) and size > max_bytes:
            raise ApiError("getFile", 400, f"file is {size} bytes, more than {max_bytes}")
        try:
            response = await self._client.get(self._files + path)
        except httpx.HTTPError as exc:
            raise TelegramUnavailable("file download", _why(exc), sent=True) from None
        if response.status_code != 200:
            raise ApiError("file download", response.status_code, "the file could not be read")
        if len(response.content) > max_bytes:
            raise ApiError("file download", 400, f"file is more than {max_bytes} bytes")
        return response.content, path


def _why(exc: httpx.HTTPError) -> str:
    # The class name only: httpx messages may include the URL (and so the token).
    return type(exc).__name__


def _result(method: str, response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "ok" not in body:
        reason = f"HTTP {response.status_code} without a Bot API body"
        raise TelegramUnavailable(method, reason, sent=True)
    if body["ok"] is True:
        return body.get("result")
    code = body.get("error_code")
    code = code if isinstance(code, int) else response.status_code
    description = redact(str(body.get("description") or "no description"))[:300]
    params: dict[str, Any] = body["parameters"] if isinstance(body.get("parameters"), dict) else {}
    retry = params.get("retry_after") if params else None
    if code == 429:
        wait = float(retry) if isinstance(retry, int | float) and retry >= 0 else 1.0
        raise RetryAfter(method, description, wait)
    if code == 409:
        raise Conflict(method, code, description)
    if code >= 500:
        raise TelegramUnavailable(method, f"{code} {description}", sent=True)
    raise ApiError(method, code, description)
