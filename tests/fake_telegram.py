"""A local stand-in for Telegram's Bot API, speaking its real JSON over HTTP/1.1.

Serves, on 127.0.0.1 and a free port (``fake.url`` is the ``api_base``):

- ``POST /bot<token>/<method>`` for getMe, getUpdates (``offset`` confirms,
  ``timeout`` long-polls), setWebhook, deleteWebhook, sendMessage (4096
  limit), editMessageReplyMarkup, answerCallbackQuery, sendChatAction,
  getFile; answers ``{"ok": true, "result": ...}`` or Telegram's error body
  ``{"ok": false, "error_code", "description", "parameters": {"retry_after"}}``
  (https://core.telegram.org/bots/api#making-requests), with Telegram's own
  descriptions (401 Unauthorized, 409 Conflict for a second poller or an
  active webhook, 429 Too Many Requests: retry after N);
- ``GET /file/bot<token>/<file_path>``: file downloads after getFile;
- ``POST /v1/audio/transcriptions``: an OpenAI-compatible speech-to-text
  endpoint (``{"text": ...}``), for the voice path.

The same handler also backs an ``httpx.MockTransport`` (``fake.transport()``)
for tests on trio's virtual clock, where real sockets would let the clock
jump. Scripting: ``fake.fail(method, error)`` queues errors,
``fake.conflicts = n`` makes the next n getUpdates 409, ``fake.push(update)``
queues an update; ``fake.calls`` records every call with its trio time, and
``await fake.wait_calls(method, n)`` waits for them (no sleeps). Update
builders (``fake.text``, ``fake.voice``...) make payloads in the shapes
Telegram documents. Built on h11, like tests/fake_llm.py.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import h11
import httpx
import pytest
import trio

from tests.h11kit import serve_connection, serve_loopback

__all__ = ["TOKEN", "Call", "FakeTelegram", "Landed", "TgError", "tg"]

TOKEN = "7000000001:AAHfakeTokenForTestsOnly-0123456789ab"
BOT = {"id": 7000000001, "is_bot": True, "first_name": "Greenroom", "username": "greenroom_bot"}
DATE = 1_764_000_000


@dataclass(frozen=True)
class TgError:
    """An error answer with Telegram's body."""

    code: int
    description: str
    retry_after: int | None = None

    @classmethod
    def flood(cls, retry_after: int = 3) -> TgError:
        return cls(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    @classmethod
    def blocked(cls) -> TgError:
        return cls(403, "Forbidden: bot was blocked by the user")

    @classmethod
    def server(cls) -> TgError:
        return cls(500, "Internal Server Error")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass(frozen=True)
class Landed:
    """A scripted failure where the request lands (Telegram did it) but its answer
    is lost on the way back (a proxy's 502 page): the client cannot tell."""


POLLER_CONFLICT = TgError(
    409,
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
)
WEBHOOK_CONFLICT = TgError(
    409,
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first",
)


@dataclass
class Call:
    """One Bot API call the fake received, at trio time ``at``."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass
class FakeTelegram:
    """The scriptable Bot API; see the module docstring."""

    token: str = TOKEN
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # updates not yet confirmed
    webhook: dict[str, Any] | None = None
    conflicts: int = 0
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    transcripts: deque[str] = field(default_factory=deque)
    stt_requests: list[bytes] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)  # requests with a wrong token
    _failures: dict[str, deque[TgError | Landed]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5000))
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900_000_001))
    _lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ scripting
    def fail(self, method: str, *errors: TgError | Landed) -> None:
        """The next calls of ``method`` answer these errors, in order."""
        self._failures.setdefault(method, deque()).extend(errors)

    def push(self, *updates: dict[str, Any]) -> None:
        """Queue updates for getUpdates (a long poll in progress returns them)."""
        self.pending.extend(updates)
        self._lot.unpark_all()

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The params of every sendMessage that succeeded."""
        return [c.params for c in self.calls if c.method == "sendMessage" and c.params.get("_ok")]

    async def wait_calls(
        self, method: str, n: int = 1, *, within: float | None = 10.0, ok_only: bool = True
    ) -> list[Call]:
        """Wait until ``method`` was called ``n`` times (successfully, for sendMessage,
        unless ``ok_only`` is False), failing after ``within`` seconds. On the virtual
        clock pass ``within=None`` and guard in real time: the clock jumps to the
        nearest deadline whenever the store's thread works, a hang guard's too."""
        with trio.fail_after(within if within is not None else float("inf")):
            while True:
                found = [
                    c
                    for c in self.of(method)
                    if not ok_only or method != "sendMessage" or c.params.get("_ok")
                ]
                if len(found) >= n:
                    return found
                await self._lot.park()

    # ------------------------------------------------------------------ update builders
    def user(self, uid: int = 4242, first: str = "Ada", username: str = "ada") -> dict[str, Any]:
        return {
            "id": uid,
            "is_bot": False,
            "first_name": first,
            "username": username,
            "language_code": "en",
        }

    def private(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": user["id"],
            "first_name": user["first_name"],
            "username": user["username"],
            "type": "private",
        }

    def group(self, gid: int = -1001234567890) -> dict[str, Any]:
        return {"id": gid, "title": "Greenroom testers", "type": "supergroup"}

    def update(
        self, key: str, body: dict[str, Any], update_id: int | None = None
    ) -> dict[str, Any]:
        return {"update_id": next(self._update_ids) if update_id is None else update_id, key: body}

    def message(
        self, user: dict[str, Any], text: str, chat: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        body = {
            "message_id": next(self._ids),
            "from": user,
            "chat": chat or self.private(user),
            "date": DATE,
            "text": text,
        }
        return self.update("message", {**body, **extra})

    def edited(self, user: dict[str, Any], text: str) -> dict[str, Any]:
        body = {
            "message_id": next(self._ids),
            "from": user,
            "chat": self.private(user),
            "date": DATE,
            "edit_date": DATE + 60,
            "text": text,
        }
        return self.update("edited_message", body)

    def mention(self, user: dict[str, Any], text: str) -> dict[str, Any]:
        """A supergroup message mentioning the bot with a ``mention`` entity."""
        at = text.index("@" + BOT["username"])
        entity = {
            "offset": len(text[:at].encode("utf-16-le")) // 2,
            "length": len(BOT["username"]) + 1,
            "type": "mention",
        }
        return self.message(user, text, self.group(), entities=[entity])

    def callback(
        self, user: dict[str, Any], data: str, message: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"{next(self._ids)}0816",
            "from": user,
            "chat_instance": "-5838398717465063551",
            "data": data,
        }
        if message is not None:
            body["message"] = message
        return self.update("callback_query", body)

    def voice(self, user: dict[str, Any], audio: bytes, transcript: str) -> dict[str, Any]:
        file_id = f"AwACAgIAAxkBAAI{next(self._ids)}"
        self.files[file_id] = (f"voice/file_{len(self.files)}.oga", audio)
        self.transcripts.append(transcript)
        voice = {
            "duration": 2,
            "mime_type": "audio/ogg",
            "file_id": file_id,
            "file_unique_id": "AgADxx",
            "file_size": len(audio),
        }
        body = {
            "message_id": next(self._ids),
            "from": user,
            "chat": self.private(user),
            "date": DATE,
            "voice": voice,
        }
        return self.update("message", body)

    def photo(
        self, user: dict[str, Any], caption: str = "", image: bytes = b"\xff\xd8\xff fake jpeg"
    ) -> dict[str, Any]:
        """A photo message in its four sizes; the largest downloads as ``image``."""
        self.files["AgACAgIAAxk1280"] = (f"photos/file_{len(self.files)}.jpg", image)
        sizes = [
            {
                "file_id": f"AgACAgIAAxk{w}",
                "file_unique_id": f"AQAD{w}",
                "file_size": w * 10,
                "width": w,
                "height": w * 3 // 4,
            }
            for w in (90, 320, 800, 1280)
        ]
        body = {
            "message_id": next(self._ids),
            "from": user,
            "chat": self.private(user),
            "date": DATE,
            "photo": sizes,
        }
        if caption:
            body["caption"] = caption
        return self.update("message", body)

    def my_chat_member(self, user: dict[str, Any]) -> dict[str, Any]:
        bot = {**BOT}
        body = {
            "chat": self.private(user),
            "from": user,
            "date": DATE,
            "old_chat_member": {"user": bot, "status": "member"},
            "new_chat_member": {"user": bot, "status": "kicked", "until_date": 0},
        }
        return self.update("my_chat_member", body)

    def channel_post(self) -> dict[str, Any]:
        chat = {"id": -1009876543210, "title": "News", "type": "channel"}
        body = {
            "message_id": next(self._ids),
            "sender_chat": chat,
            "chat": chat,
            "date": DATE,
            "text": "Hello channel",
        }
        return self.update("channel_post", body)

    # ------------------------------------------------------------------ the API
    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        call = Call(method, params, trio.current_time())
        self.calls.append(call)
        self._lot.unpark_all()
        queue = self._failures.get(method)
        if queue:
            error = queue.popleft()
            if isinstance(error, Landed):
                handler = getattr(self, f"_m_{method}")
                await handler(params, call)
                return 502, {"html": "<h1>502 Bad Gateway</h1>"}
            return error.code, error.body()
        if method == "getUpdates" and self.webhook is not None:
            return 409, WEBHOOK_CONFLICT.body()
        if method == "getUpdates" and self.conflicts > 0:
            self.conflicts -= 1
            return 409, POLLER_CONFLICT.body()
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        result = await handler(params, call)
        if isinstance(result, TgError):
            return result.code, result.body()
        return 200, {"ok": True, "result": result}

    async def _m_getMe(self, params: dict[str, Any], call: Call) -> Any:
        return {
            **BOT,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _m_getUpdates(self, params: dict[str, Any], call: Call) -> Any:
        offset = int(params.get("offset") or 0)
        if offset:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        with trio.move_on_after(float(params.get("timeout") or 0)):
            while not self.pending:
                await self._lot.park()
        return self.pending[:100]

    async def _m_setWebhook(self, params: dict[str, Any], call: Call) -> Any:
        self.webhook = params
        return True

    async def _m_deleteWebhook(self, params: dict[str, Any], call: Call) -> Any:
        self.webhook = None
        return True

    async def _m_sendMessage(self, params: dict[str, Any], call: Call) -> Any:
        text = params.get("text") or ""
        if not str(text).strip():
            return TgError(400, "Bad Request: message text is empty")
        if len(str(text).encode("utf-16-le")) // 2 > 4096:
            return TgError(400, "Bad Request: message is too long")
        params["_ok"] = True
        chat = {"id": int(params["chat_id"]), "type": "private"}
        message = {
            "message_id": next(self._ids),
            "from": BOT,
            "chat": chat,
            "date": DATE,
            "text": text,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any], call: Call) -> Any:
        return True

    async def _m_answerCallbackQuery(self, params: dict[str, Any], call: Call) -> Any:
        return True

    async def _m_sendChatAction(self, params: dict[str, Any], call: Call) -> Any:
        return True

    async def _m_getFile(self, params: dict[str, Any], call: Call) -> Any:
        found = self.files.get(str(params.get("file_id")))
        if found is None:
            return TgError(400, "Bad Request: invalid file_id")
        path, data = found
        return {
            "file_id": params["file_id"],
            "file_unique_id": "AgADxx",
            "file_size": len(data),
            "file_path": path,
        }

    def _route(self, verb: str, path: str, body: bytes) -> tuple[str, Any] | None:
        """(what, detail) for a request line: ("api", method), ("file", bytes), ("stt", None)."""
        if verb == "POST" and path == "/v1/audio/transcriptions":
            return "stt", None
        for prefix, what in ((f"/bot{self.token}/", "api"), (f"/file/bot{self.token}/", "file")):
            if path.startswith(prefix):
                return what, path[len(prefix) :]
        if "/bot" in path:
            self.leaked.append(path)
        return None

    async def respond(self, verb: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one HTTP request."""
        route = self._route(verb, path, body)
        if route is None:
            unauthorized = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return 401, "application/json", json.dumps(unauthorized).encode()
        what, detail = route
        if what == "stt":
            self.stt_requests.append(body)
            text = self.transcripts.popleft() if self.transcripts else ""
            return 200, "application/json", json.dumps({"text": text}).encode()
        if what == "file":
            for stored_path, data in self.files.values():
                if stored_path == detail:
                    return 200, "application/octet-stream", data
            return (
                404,
                "application/json",
                b'{"ok":false,"error_code":404,"description":"Not Found"}',
            )
        params = json.loads(body or b"{}")
        status, payload = await self.handle(detail, params)
        return status, "application/json", json.dumps(payload).encode()

    def transport(self) -> httpx.MockTransport:
        """The same API in-process (no sockets), for tests on the virtual clock."""

        async def handler(request: httpx.Request) -> httpx.Response:
            status, ctype, data = await self.respond(
                request.method, request.url.path, await request.aread()
            )
            return httpx.Response(status, content=data, headers={"content-type": ctype})

        return httpx.MockTransport(handler)

    # ------------------------------------------------------------------ HTTP/1.1
    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_loopback(self._connection, self._listening, task_status)

    def _listening(self, port: int) -> None:
        self.port = port

    async def _connection(self, stream: trio.SocketStream) -> None:
        await serve_connection(stream, self._answer)

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, body: bytes
    ) -> bool:
        status, ctype, data = await self.respond(
            request.method.decode(), request.target.decode(), body
        )
        headers = [("content-type", ctype), ("content-length", str(len(data)))]
        for event in (
            h11.Response(status_code=status, headers=headers),
            h11.Data(data=data),
            h11.EndOfMessage(),
        ):
            await stream.send_all(conn.send(event) or b"")
        return True


@pytest.fixture
async def tg(nursery: trio.Nursery) -> FakeTelegram:
    """A running FakeTelegram on loopback; stopped with the test's nursery (a plugin
    fixture: ``tests/conftest.py`` loads this module)."""
    fake = FakeTelegram()
    await nursery.start(fake.serve)
    return fake
