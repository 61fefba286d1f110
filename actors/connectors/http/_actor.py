"""``/connectors/http``: the actor that owns the HTTP server and delivers replies to it.

The server (Hypercorn's trio worker serving the FastAPI app) is a task the
actor owns: a crash of the actor cancels it and closes its sockets, and the
supervisor's restart binds afresh, without touching ``/users`` or
``/storage``. Requests are handled in the server's tasks, not in ``receive``:
the actor's mailbox only carries ``chat.Deliver``, so a burst of requests
never queues behind a reply.

Lifecycle: ``on_start`` marks the replies a previous run left unsent as sent
(the feed reads them from storage anyway), starts the server and returns once
it listens (logging ``http_listening`` with the bound host and port);
``on_stop`` wakes every long-poll and stream, triggers Hypercorn's graceful
shutdown and waits for the server task, within the kernel's shutdown timeout.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import structlog
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from config import Settings
from protocols import Deliver
from storage import StorageError, Store
from supervision import Actor, TaskHandle, correlated

from ._app import build_app
from ._door import PLATFORM, Door

__all__ = ["HttpConnector"]

#: Replies marked sent per round at start (a restart after a long outage may find many).
_UNSENT_BATCH = 500


class _ToStructlog(logging.Handler):
    """Hypercorn logs through stdlib ``logging``; this hands its records to structlog,
    so stderr stays one JSON object per line. Its chatter goes to debug."""

    def __init__(self) -> None:
        super().__init__()
        self._log = structlog.get_logger("greenroom.http.server")

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelno if record.levelno >= logging.WARNING else logging.DEBUG
        extra = {"error": repr(record.exc_info[1])} if record.exc_info else {}
        self._log.log(level, "hypercorn", message=record.getMessage(), **extra)


def _server_logger() -> logging.Logger:
    logger = logging.getLogger("greenroom.http.hypercorn")
    if not logger.handlers:
        logger.addHandler(_ToStructlog())
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
    return logger


def _hypercorn_config(settings: Settings) -> HypercornConfig:
    http = settings.http
    config = HypercornConfig()
    host = f"[{http.host}]" if ":" in http.host else http.host
    config.bind = [f"{host}:{http.port}"]
    config.accesslog = None  # one line per request is the metrics' job, not the log's
    config.errorlog = _server_logger()
    config.include_server_header = False
    config.backlog = 1024
    # Open connections get most of the shutdown timeout to finish; on_stop
    # has woken the long-polls, so this is only for requests in flight.
    config.graceful_timeout = settings.kernel.shutdown_timeout_s * 0.6
    return config


class HttpConnector(Actor):
    """The HTTP door. Handles ``chat.Deliver``: wakes the chat's long-polls and streams
    and marks the reply sent. See the module docstring for its lifecycle."""

    accepts = (Deliver,)

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.host: str | None = None  # where the server listens, once it does
        self.port: int | None = None
        self.door: Door | None = None
        self._stop = trio.Event()
        self._server: TaskHandle | None = None

    async def on_start(self) -> None:
        """Mark leftover replies sent, start the server, return once it listens.

        A failure to bind (port in use) fails the actor, which its supervisor
        restarts with backoff. Cancelled (the actor stopped meanwhile): the
        server task is cancelled with the actor.
        """
        self.door = door = Door(self.settings, self.store, self.system)
        await self._mark_unsent_sent()
        app = build_app(door)
        listening = trio.Event()
        self._server = self.spawn_task(self._serve, app, listening, name="server")
        await listening.wait()

    async def _serve(self, app: Any, listening: trio.Event) -> None:
        config = _hypercorn_config(self.settings)
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(
                partial(serve, app, config, shutdown_trigger=self._stop.wait)
            )
            where = urlsplit(binds[0])
            self.host, self.port = where.hostname, where.port
            self.log.info("http_listening", host=self.host, port=self.port, binds=binds)
            listening.set()
        self.log.info("http_stopped", host=self.host, port=self.port)

    async def on_stop(self) -> None:
        """Wake every waiter, shut the server down gracefully and wait for it; the
        kernel cancels this (and then the server task) when its timeout runs out."""
        if self.door is not None:
            self.door.feed.close()
        self._stop.set()
        if self._server is not None:
            await self._server.wait()

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Deliver(message_id=message_id, platform=platform, chat_id=chat_id):
                with correlated(msg.correlation_id):
                    if platform != PLATFORM:
                        self.log.warning("deliver_wrong_platform", platform=platform, id=message_id)
                        return None
                    assert self.door is not None
                    # The reply is already in storage (recorded before Deliver was
                    # told), so waking first shows it as soon as possible.
                    self.door.feed.notify(chat_id)
                    self.door.counters.deliveries += 1
                    await self._mark_sent(message_id)
                    return None
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    async def _mark_sent(self, message_id: int) -> bool:
        # A bad id or an outage is the sender's or the database's problem, not a
        # reason to restart the server: log it. An unsent mark only means the
        # reply is marked again at the next start; the feed shows it either way.
        try:
            await self.store.mark_sent(message_id, str(message_id))
        except StorageError as exc:
            self.log.warning("mark_sent_failed", id=message_id, error=repr(exc))
            return False
        return True

    async def _mark_unsent_sent(self) -> None:
        marked = 0
        while True:
            try:
                batch = await self.store.unsent_replies(PLATFORM, limit=_UNSENT_BATCH)
            except StorageError as exc:
                self.log.warning("unsent_replies_failed", error=repr(exc))
                return
            before = marked
            for pending in batch:
                marked += await self._mark_sent(pending.message.id)
            if len(batch) < _UNSENT_BATCH or marked == before:
                break  # all done, or no progress (the failures are logged)
        if marked:
            self.log.info("unsent_replies_marked_sent", count=marked)
