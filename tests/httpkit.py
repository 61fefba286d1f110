"""The HTTP door in-process, for tests: a small tree, a scripted stand-in thread, a client.

The tree is the part of the application the door talks to::

    /                 one_for_one
    ├── storage       actors.StorageActor over a real SQLite Store (temporary)
    ├── users         Directory of StandIn threads
    └── connectors
        └── http      the real HttpConnector on 127.0.0.1, port 0

``StandIn`` is a test double of the user actor (issue 5's real one is built
elsewhere): on ``Received`` it records an ack with an approval in the outbox
and tells ``/connectors/http`` a ``Deliver``; on ``Approve`` it answers the
next scripted status and, for ``approved``, records and delivers a reply.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import trio
import trio.testing

from actors import StorageActor
from actors.connectors import HttpConnector
from config import Settings
from protocols import ApprovalResult, Approve, Deliver, Received, ReplyKind
from storage import Store, open_store
from supervision import (
    NO_BACKOFF,
    Actor,
    ActorSystem,
    ChildSpec,
    Directory,
    Supervisor,
    open_system,
)
from tests.kit import until

Status = Literal["approved", "superseded", "rejected", "not_found"]


@dataclass
class Script:
    """What the stand-in threads do: Approve answers in order (then ``approved``), and
    an optional gate every Received waits on (to fill a mailbox)."""

    approvals: list[Status] = field(default_factory=list)
    gate: trio.Event | None = None
    received: list[Received] = field(default_factory=list)
    threads: dict[str, StandIn] = field(default_factory=dict)


class StandIn(Actor):
    """A scripted user actor (see the module docstring). Built by the Directory."""

    accepts = (Received, Approve)

    def __init__(self, key: str, store: Store, script: Script) -> None:
        self.key = key
        self.store = store
        self.script = script
        self.thread_id: int | None = None
        self.chat_id: str | None = None
        self.pending: dict[int, int] = {}  # approval id -> job id
        script.threads[key] = self

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Received():
                if self.script.gate is not None:
                    await self.script.gate.wait()
                self.script.received.append(msg)
                self.thread_id, self.chat_id = msg.thread_id, msg.chat_id
                approval = await self.store.propose(
                    msg.thread_id, msg.text, "answer it", message_id=msg.message_id
                )
                self.pending[approval.id] = msg.job_id
                text = f"Understood: {msg.text} Will: answer it"
                await self._say(f"ack:{msg.job_id}", text, "ack", approval.id)
                return None
            case Approve(approval_id=aid):
                approvals = self.script.approvals
                status: Status = approvals.pop(0) if approvals else "approved"
                if aid not in self.pending:
                    status = "not_found"
                if status == "approved":
                    job = self.pending.pop(aid)
                    await self._say(f"reply:{job}", f"the answer to {aid}", "reply", None)
                return ApprovalResult(status=status)
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")

    async def _say(self, key: str, text: str, kind: ReplyKind, approval: int | None) -> None:
        assert self.thread_id is not None and self.chat_id is not None
        raw = {"kind": kind, "approval_id": approval}
        stored, _ = await self.store.record_reply(self.thread_id, text, key, raw=raw)
        deliver = Deliver(
            message_id=stored.id,
            platform="http",
            chat_id=self.chat_id,
            text=text,
            kind=kind,
            approval_id=approval,
        )
        await self.system.lookup("/connectors/http").tell(deliver)


@dataclass
class Door:
    """A running door: its system, store, connector instances (one per start) and client."""

    system: ActorSystem
    store: Store
    script: Script
    made: list[HttpConnector]
    client: httpx.AsyncClient

    @property
    def connector(self) -> HttpConnector:
        return self.made[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.connector.port}"

    async def session(self) -> tuple[str, dict[str, str]]:
        """A new guest: (user key, Authorization header)."""
        resp = await self.client.post(self.url + "/api/session")
        assert resp.status_code == 201, resp.text
        body = resp.json()
        return body["user"], {"Authorization": f"Bearer {body['token']}"}

    async def waiters(self, n: int) -> None:
        """Wait until ``n`` long-polls/streams are parked in the door's feed."""
        feed = self.connector.door.feed  # type: ignore[union-attr]
        await until(lambda: feed.waiting >= n, within=math.inf, cushion=0.001)


def settings(tmp_path: Path, **http: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        http={"host": "127.0.0.1", "port": 0, **http},
        kernel={"shutdown_timeout_s": 2.0, "ask_timeout_s": 2.0},
    )


@asynccontextmanager
async def open_door(
    tmp_path: Path,
    script: Script | None = None,
    *,
    store: Store | None = None,
    mailbox_capacity: int | None = None,
    **http: Any,
) -> AsyncIterator[Door]:
    """Start the tree above (on a fresh SQLite store unless ``store`` is given) and
    yield once the door listens; stop it all on exit."""
    script = script or Script()
    conf = settings(tmp_path, **http)
    made: list[HttpConnector] = []

    def connector() -> HttpConnector:
        made.append(HttpConnector(conf, st))
        return made[-1]

    async with _store(tmp_path, store) as st:

        def users() -> Directory:
            return Directory(
                lambda key: StandIn(key, st, script),
                idle_timeout_s=None,
                mailbox_capacity=mailbox_capacity,
            )

        def connectors() -> Supervisor:
            return Supervisor([ChildSpec("http", connector)], backoff=NO_BACKOFF)

        def root() -> Supervisor:
            return Supervisor(
                [
                    ChildSpec("storage", lambda: StorageActor(st), restart="temporary"),
                    ChildSpec("users", users),
                    ChildSpec("connectors", connectors),
                ],
                backoff=NO_BACKOFF,
            )

        async with (
            open_system(root, shutdown_timeout_s=2.0, ask_timeout_s=2.0) as system,
            httpx.AsyncClient(timeout=10) as client,
        ):
            yield Door(system, st, script, made, client)


@asynccontextmanager
async def _store(tmp_path: Path, store: Store | None) -> AsyncIterator[Store]:
    if store is not None:
        yield store
        return
    async with open_store(None, tmp_path) as st:
        yield st
