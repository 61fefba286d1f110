"""The ASGI app: FastAPI routes over a :class:`Door`, wrapped in :class:`DoorMiddleware`.

Routes (every error body is ``{"error": code, "message": text}``)::

    POST /api/session                 201 {user, token}   429 rate limited
    POST /api/messages        Bearer  202 {id}            400 415 413 422 503
    GET  /api/events          Bearer  200 {events}        (long-poll: ?after=&wait=)
    GET  /api/stream          Bearer  200 text/event-stream (Last-Event-ID resumes)
    POST /api/approvals/{id}  Bearer  200 {status}        404 409 503
    POST /telegram/webhook    secret  200 {ok}            400 401 404 503 (Telegram's webhook;
                                      200 once the update is durable, enrichment after)
    GET  /healthz /readyz /metrics    alive; ready (503 + reasons); Prometheus text
    GET  /  /app.js  /app.css         the web chat
    GET  /openapi.json                the schema

Request bodies are parsed here rather than by FastAPI's body injection so that
authentication runs first, a wrong content type is a 415 and malformed JSON a
400 (FastAPI would fold both into a 422), and the request model is validated
in one pydantic call; ``openapi_extra`` keeps the schema accurate.
"""

from __future__ import annotations

import hmac
import json
from importlib import resources
from typing import Annotated, Any

import structlog
import trio
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from protocols.telegram import (
    BotIdentity,
    Identify,
    Incoming,
    TelegramStored,
    TelegramUpdate,
    parse_update,
)
from storage import StorageError
from supervision import ActorRef, KernelError, UnknownPath

from .._route import store_telegram
from ._asgi import DoorMiddleware, RawPost, RawResponse
from ._door import Door, storage_error
from ._errors import ApiError
from ._metrics import CONTENT_TYPE, render
from ._schema import (
    Accepted,
    ApprovalOut,
    ErrorOut,
    Events,
    Health,
    MessageIn,
    Readiness,
    SessionOut,
)

__all__ = ["build_app"]

_log = structlog.get_logger("greenroom.http")

#: Seconds between keep-alive comments on an idle event stream (proxies drop silent ones).
SSE_KEEPALIVE_S = 15.0
_MAX_ID = (1 << 63) - 1
_NO_STORE = {"Cache-Control": "no-store"}
# The page renders untrusted text with textContent only; the policy makes sure
# nothing else could run even if that slipped.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "message": exc.message}, status_code=exc.status, headers=exc.headers
    )


def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


async def _message_body(request: Request) -> MessageIn:
    ctype = request.headers.get("content-type", "")
    if ctype.partition(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")
    raw = await request.body()
    try:
        return MessageIn.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            why = first.get("ctx", {}).get("error", "invalid JSON")
            raise ApiError(400, "malformed_json", f"body is not valid JSON: {why}") from None
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, "invalid_body", f"{where}: {first['msg']}") from None


_MESSAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": MessageIn.model_json_schema()}},
    }
}


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_response(exc)

    async def storage_failed(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StorageError)
        return _error_response(storage_error(exc))

    async def invalid_request(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error_response(ApiError(422, "invalid_request", f"{where}: {first['msg']}"))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(ApiError(exc.status_code, code, str(exc.detail), exc.headers))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StorageError, storage_failed)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


_bearer = HTTPBearer(auto_error=False, description="The token from POST /api/session.")


def _door(request: Request) -> Door:
    door: Door = request.app.state.door
    return door


async def _current_user(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    # HTTPBearer is there for the schema (securitySchemes); the header is read
    # again so that a missing and a forged token get the same clear 401.
    return await _door(request).authenticate(request.headers.get("authorization"))


# Module-level aliases: FastAPI resolves string annotations in module globals.
User = Annotated[str, Depends(_current_user)]
DoorDep = Annotated[Door, Depends(_door)]
router = APIRouter()


@router.post(
    "/api/session",
    status_code=201,
    response_model=SessionOut,
    responses=_errors(413, 429, 503),
    summary="Create a guest identity and its bearer token",
)
async def create_session(request: Request, response: Response, door: DoorDep) -> SessionOut:
    client = request.client.host if request.client is not None else "unknown"
    user, token = await door.new_session(client)
    response.headers.update(_NO_STORE)
    return SessionOut(user=user, token=token)


@router.post(
    "/api/messages",
    status_code=202,
    response_model=Accepted,
    responses=_errors(400, 401, 413, 415, 422, 503),
    openapi_extra=_MESSAGE_BODY,
    summary="Send a message; 202 once it is stored",
)
async def post_message(
    user: User, body: Annotated[MessageIn, Depends(_message_body)], door: DoorDep
) -> Accepted:
    return Accepted(id=await door.accept(user, body.text, body.client_id))


@router.get(
    "/api/events",
    response_model=Events,
    responses=_errors(401, 422, 503),
    summary="Replies after a sequence number, waiting up to `wait` seconds for one",
)
async def events(
    user: User,
    door: DoorDep,
    after: Annotated[int, Query(ge=0, le=_MAX_ID, description="The last seq seen.")] = 0,
    wait: Annotated[float, Query(ge=0, allow_inf_nan=False, description="Seconds.")] = 0.0,
) -> Events:
    return Events(events=await door.poll(user, after, wait))


@router.get(
    "/api/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        **_errors(401, 422, 503),
    },
    summary="The same replies as server-sent events (id: seq; resume with Last-Event-ID)",
)
async def stream(
    user: User,
    door: DoorDep,
    after: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    if last_event_id is not None:
        if not (last_event_id.isdigit() and int(last_event_id) <= _MAX_ID):
            raise ApiError(422, "invalid_request", "Last-Event-ID must be an event seq")
        after = max(after, int(last_event_id))
    if door.feed.waiting >= door.feed.max_waiters:
        door.counters.rejected_busy += 1
        raise ApiError(503, "busy", "too many open streams", {"Retry-After": "5"})
    return StreamingResponse(
        door.stream(user, after, SSE_KEEPALIVE_S),
        media_type="text/event-stream",
        headers={**_NO_STORE, "X-Accel-Buffering": "no"},
    )


@router.post(
    "/api/approvals/{approval_id}",
    response_model=ApprovalOut,
    responses=_errors(401, 404, 409, 422, 503),
    summary="OK a plan the agent proposed (the approval_id of an ack)",
)
async def approve(
    user: User, door: DoorDep, approval_id: Annotated[int, Path(ge=1, le=_MAX_ID)]
) -> ApprovalOut:
    await door.approve(user, approval_id)
    return ApprovalOut(status="approved")


# ---------------------------------------------------------------- Telegram's webhook
# Issue 10, item 8: a message is made durable here, in the request's own task
# (concurrent webhooks share the Store's group commit; the old path asked the
# Telegram door, one update at a time, and that door downloaded, transcribed
# and described before it even looked for a duplicate); the Telegram door is
# told what was stored (into its mailbox) and Telegram gets its 200 before the
# door does anything with it: hand the message over, enrich media, show typing.
# Updates that are not storable messages (a button press, an ignored kind) are
# still asked of the door.
_TELEGRAM = "/connectors/telegram"


def _malformed() -> ApiError:
    return ApiError(400, "malformed_update", "the body is not a storable JSON object")


def _telegram_busy() -> ApiError:
    return ApiError(503, "busy", "the Telegram door is not ready; retry", {"Retry-After": "5"})


async def _telegram_bot(ref: ActorRef, door: Door) -> BotIdentity:
    """Who the bot is (a group message is only for it when it mentions it), asked of
    the Telegram door once and kept on the door (a bot's username never changes);
    503 until the door's getMe has answered."""
    bot = door.telegram_bot
    if isinstance(bot, BotIdentity):
        return bot
    try:
        bot = await ref.ask(Identify(), timeout=door.ask_timeout_s)
    except KernelError:
        raise _telegram_busy() from None
    if not isinstance(bot, BotIdentity):
        raise _telegram_busy()
    door.telegram_bot = bot
    return bot


_OK = b'{"ok":true}'
_SECRET_HEADER = b"x-telegram-bot-api-secret-token"


def telegram_webhook(door: Door) -> RawPost:
    """``POST /telegram/webhook``, a raw route of :class:`DoorMiddleware` (Telegram is
    its only caller, with one JSON body; at 1,000 updates/s FastAPI's and
    Starlette's layers were an eighth of the door's time for nothing).

    200 ``{"ok": true}`` once the update is durable. 404 when the webhook is off,
    401 for a wrong secret, 400 for a body that is not a storable JSON object,
    503 (Retry-After) while the Telegram door cannot take it (before anything is
    stored), and 503 while storage is down.
    """

    async def handle(headers: list[tuple[bytes, bytes]], raw: bytes) -> RawResponse:
        settings = door.config
        secret = settings.telegram_webhook_secret
        if settings.telegram_bot_token is None or settings.telegram.mode != "webhook" or not secret:
            raise ApiError(404, "not_found", "the Telegram webhook is not enabled")
        given = next((v for k, v in headers if k == _SECRET_HEADER), b"")
        # Constant time, on bytes.
        if not hmac.compare_digest(given, secret.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "wrong or missing X-Telegram-Bot-Api-Secret-Token")
        try:
            body = json.loads(raw)
        except ValueError:
            raise _malformed() from None
        if not isinstance(body, dict):
            raise _malformed()
        try:
            await _webhook_update(door, body)
        except StorageError as exc:
            raise storage_error(exc) from None
        return 200, _OK, {}

    return handle


async def _webhook_update(door: Door, body: dict[str, Any]) -> None:
    """Make one update durable (or answered, for a button press), then tell the
    Telegram door; ApiError for what Telegram must retry or what is malformed."""
    try:
        ref = door.system.lookup(_TELEGRAM)
        parsed = parse_update(body, await _telegram_bot(ref, door))
        if isinstance(parsed, Incoming):
            if not ref.has_room():
                door.counters.rejected_busy += 1
                raise _telegram_busy()  # before anything is stored: Telegram retries
            # to_inbound checks that storage can hold it (else: Ignored, asked below).
            stored = await store_telegram(door.store, parsed, body)
            if isinstance(stored, TelegramStored):
                await _tell_telegram(ref, stored, door.ask_timeout_s)
                return
        try:
            update = TelegramUpdate(update=body)
        except ValidationError:
            raise _malformed() from None
        # Answered once the update is durable: a 200 from here lets Telegram forget it.
        outcome = await ref.ask(update, timeout=door.ask_timeout_s)
    except (KernelError, UnknownPath):
        raise _telegram_busy() from None
    if outcome == "busy":
        raise _telegram_busy()


async def _tell_telegram(ref: ActorRef, stored: TelegramStored, timeout_s: float) -> None:
    """Tell the Telegram door what was stored, waiting at most ``timeout_s`` for
    room. Never raises: the message is durable, so a door that cannot take it
    now only delays it (a text message's job is re-dispatched, a held message
    is found by the door's periodic resume), and Telegram still gets its 200."""
    with trio.move_on_after(timeout_s) as cs:
        try:
            await ref.tell(stored)
        except KernelError as exc:
            _log.warning("telegram_stored_not_told", id=stored.message_id, error=repr(exc))
    if cs.cancelled_caught:
        _log.warning("telegram_stored_not_told", id=stored.message_id, error="mailbox full")


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready, with reasons"}},
    summary="Storage and every enabled door are up",
)
async def readyz(door: DoorDep) -> Any:
    checks = await door.readiness()
    if all(v == "ok" for v in checks.values()):
        return Readiness(status="ready", checks=checks)
    return JSONResponse(Readiness(status="not_ready", checks=checks).model_dump(), status_code=503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
    summary="Prometheus text exposition",
)
async def metrics(door: DoorDep) -> PlainTextResponse:
    try:
        llm = await door.store.token_totals()
    except StorageError:
        llm = None  # the database is down: /readyz says so; the rest still renders
    text = render(door.counters, door.system, door.feed.waiting, llm)
    return PlainTextResponse(text, media_type=CONTENT_TYPE)


_PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}


def _page(content: bytes, media_type: str) -> Any:
    async def serve() -> Response:
        return Response(content, media_type=media_type, headers=_PAGE_HEADERS)

    return serve


def build_app(door: Door, *, version: str = "0.1.0") -> Any:
    """The door's ASGI app: FastAPI with the routes above, inside DoorMiddleware.

    Builds routes only; nothing is started or read from storage until a
    request arrives. Raises OSError if the packaged web-chat files are missing.
    """
    app = FastAPI(
        title="greenroom HTTP door",
        version=version,
        description="Guest sessions, messages, the reply feed and approvals of the web chat.",
        docs_url=None,  # the docs pages pull scripts from a CDN; the schema is enough
        redoc_url=None,
    )
    app.state.door = door
    _install_error_handlers(app)
    app.include_router(router)
    for path, (name, media_type) in _PAGES.items():
        app.get(path, include_in_schema=False)(_page(_static(name), media_type))
    return DoorMiddleware(
        app,
        max_body_bytes=door.settings.max_body_bytes,
        counters=door.counters,
        raw_posts={"/telegram/webhook": telegram_webhook(door)},
    )
