"""Issue 10 item 6b: kill -9 under load, with confirmation on, on both backends.

A real ``greenroom run`` child (``tests/crash_app.py``) serves web-chat users
over HTTP; the model is tests/fake_llm.py answering every request (classify
always asks for confirmation, so every message goes ack -> OK -> answer). The
tests SIGKILL the child at random moments and at chosen windows (right after a
chosen Store method committed, before the caller's next step) and start it
again on the same data. Every message a user got a 202 for must be answered
exactly once: one final reply (the answer, or the gave-up notice) per message,
never two, and at most one ack.

The clients retry through the outages (connection refused while the child is
down): that pacing is a retry interval against a real process, not a sync
point; the tests synchronise on the clients' progress and the child's exit.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors._users import GAVE_UP
from config import Settings
from ops.pg import free_port
from storage import Store, open_store
from tests.appkit import settings_data
from tests.brainkit import intent, settings_for
from tests.fake_llm import FakeLLM, Script, Text, ToolUse
from tests.runkit import JsonLog

CHILD = Path(__file__).with_name("crash_app.py")
ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"u\d+ m\d+")

pytestmark = pytest.mark.slow


def responder(body: dict[str, Any]) -> Script:
    """The model: plans everything (confirmation on), answers with the message's tag."""
    tool = (body.get("tool_choice") or {}).get("name")
    tags = TAG.findall(json.dumps(body.get("messages", [])[-1:]))
    tag = tags[-1] if tags else "?"
    match tool:
        case "report_intent":
            return intent(True, f"They sent {tag}.", f"Answer {tag}.")
        case "report_memories":
            return ToolUse("report_memories", {"facts": []})
        case _:
            return Text(f"answer to {tag}")


class Progress:
    """Something happened (a message answered, the child exited): wake the waiters."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def bump(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass
class Child:
    """The greenroom process, restartable on the same data dir and port."""

    settings_file: Path
    progress: Progress
    proc: trio.Process | None = None
    starts: int = 0
    chosen: list[str] = field(default_factory=list)  # crash points reached

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, nursery: trio.Nursery, crash_at: str = "") -> None:
        """Start it and wait until it logged ``started`` (or died trying)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GREENROOM_")}
        env.pop("DATABASE_URL", None)
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(CHILD), str(self.settings_file)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={**env, "PYTHONPATH": str(ROOT), "CRASH_AT": crash_at},
        )
        self.proc = proc
        self.starts += 1
        started = trio.Event()
        nursery.start_soon(self._read, proc, started)
        with trio.fail_after(60):  # a hang guard for a real process
            await started.wait()

    async def _read(self, proc: trio.Process, started: trio.Event) -> None:
        assert proc.stderr is not None
        log = JsonLog(proc.stderr, strict=False)
        while (events := await log.read_more()) is not None:
            for event in events:
                if event.get("event") == "started":
                    started.set()
                elif event.get("event") == "crash_at":
                    self.chosen.append(event["point"])
        await proc.wait()
        started.set()  # died before starting: the start returns, `alive` says so
        self.progress.bump()

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        with trio.fail_after(30):
            await self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM, and the exit status (0: it stopped in order)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            return await self.proc.wait()


@asynccontextmanager
async def child_app(
    tmp_path: Path, fake: FakeLLM, database_url: str | None
) -> AsyncIterator[tuple[Child, httpx.AsyncClient]]:
    """The child's settings (the fake model, a fixed port, a quick reconciler) and an
    HTTP client for it; the child is killed if the test leaves it running."""
    fake.responder = responder
    port = free_port()
    data = settings_data(settings_for(fake, cascade=["a"]))
    data.update(
        data_dir=str(tmp_path / "data"),
        http={"port": port, "session_rate_per_minute": 10_000},
        log={"level": "info", "format": "json"},
        reconciler={"interval_s": 1.0, "queued_after_s": 3.0, "unsent_after_s": 1.0},
        database_url=database_url,
    )
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(settings_data(Settings.model_validate(data)), default=str))
    child = Child(file, Progress())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield child, http
    finally:
        if child.alive:
            assert child.proc is not None
            child.proc.kill()
            await child.proc.wait()


class Client:
    """One web-chat user: a session, then messages one at a time, each ack approved."""

    def __init__(self, http: httpx.AsyncClient, n: int, progress: Progress) -> None:
        self.http = http
        self.n = n
        self.progress = progress
        self.user_id = ""
        self.token = ""
        self.cursor = 0
        self.accepted: list[str] = []
        self.answers: dict[str, list[str]] = {}  # tag -> the final replies seen for it

    async def call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """One request, retried while the server is down or says 503 (retry later)."""
        while True:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            try:
                response = await self.http.request(method, url, headers=headers, **kw)
            except httpx.TransportError:
                await trio.sleep(0.05)  # the child is restarting: retry pacing
                continue
            if response.status_code != 503:
                return response
            await trio.sleep(0.05)

    async def run(self, messages: int) -> None:
        r = await self.call("POST", "/api/session")
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]
        self.user_id = r.json()["user"].partition(":")[2]
        for i in range(messages):
            await self.say(f"u{self.n} m{i}")

    async def say(self, tag: str) -> None:
        """Send ``tag`` (idempotent by client_id), approve its ack, wait for its answer."""
        body = {"text": tag, "client_id": tag.replace(" ", "-")}
        r = await self.call("POST", "/api/messages", json=body)
        assert r.status_code == 202, r.text
        self.accepted.append(tag)
        while tag not in self.answers:
            r = await self.call("GET", "/api/events", params={"after": self.cursor, "wait": 2})
            assert r.status_code == 200, r.text
            for event in r.json()["events"]:
                self.cursor = max(self.cursor, event["seq"])
                if event["kind"] == "ack" and event["approval_id"] is not None:
                    ok = await self.call("POST", f"/api/approvals/{event['approval_id']}")
                    assert ok.status_code in (200, 404, 409), ok.text
                elif event["kind"] in ("reply", "error"):
                    found = TAG.findall(event["text"])
                    # The gave-up notice names no tag: it answers the message in hand.
                    self.answers.setdefault(found[-1] if found else tag, []).append(event["text"])
        self.progress.bump()


async def verify(store: Store, clients: list[Client]) -> dict[str, int]:
    """Storage's record: each accepted message is stored once, with exactly one final
    reply and at most one ack; each client saw each of its messages answered once."""
    counts = {"messages": 0, "acks": 0, "gave_up": 0}
    for c in clients:
        assert all(len(seen) == 1 for seen in c.answers.values()), (c.n, c.answers)
        assert sorted(c.answers) == sorted(c.accepted), (c.n, c.answers, c.accepted)
        thread = await store.get_thread("http", c.user_id)
        assert thread is not None
        messages = await store.recent_messages(thread.id, 100_000)
        inbound = [m for m in messages if m.role == "user"]
        assert [m.text for m in inbound] == c.accepted  # each once, in order
        for m in inbound:
            kinds = [r.raw.get("kind") for r in messages if r.reply_to == m.id]
            final = [k for k in kinds if k in ("reply", "error")]
            assert len(final) == 1 and kinds.count("ack") <= 1, (m.text, kinds)
            counts["messages"] += 1
            counts["acks"] += kinds.count("ack")
            counts["gave_up"] += final == ["error"]
    assert await store.queued_work() == []
    return counts


async def run_clients(clients: list[Client], messages: int) -> None:
    async with trio.open_nursery() as nursery:
        for c in clients:
            nursery.start_soon(c.run, messages)


def answered(clients: list[Client]) -> int:
    return sum(len(c.answers) for c in clients)


async def test_kill9_at_random_moments_and_chosen_windows_answers_every_message_once(
    tmp_path: Path, fake_llm: FakeLLM, database_url: str | None
) -> None:
    """20 users x 10 messages, each acked, approved and answered, while the child is
    killed: at a random number of answers, and three times at a chosen window (the
    child then crashes itself right after the plan, a job's end, a claim committed;
    each window must be reached). Every accepted message is answered exactly once.
    Old code: on both backends a message was never answered (the guard fired)."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    users, per_user = 20, 10
    total = users * per_user
    # Right after the plan was committed (the old code's ack came in a second
    # transaction), after a job's end, after a claim; then random moments.
    windows = ["propose_with_ack:7", "finish_with_reply:5", "claim_jobs:9"]
    async with child_app(tmp_path, fake_llm, database_url) as (child, http):
        clients = [Client(http, n, child.progress) for n in range(users)]
        async with trio.open_nursery() as nursery:
            await child.start(nursery)
            with trio.fail_after(400):  # a hang guard for the whole run

                async def chaos() -> None:
                    armed = False  # the running child crashes itself at its window
                    while answered(clients) < total:
                        target = total if armed else answered(clients) + rng.randint(8, 25)
                        while answered(clients) < min(target, total) and child.alive:
                            await child.progress.wait()
                        if answered(clients) >= total:
                            return
                        await child.kill()  # a random moment (or already dead)
                        armed = bool(windows)
                        await child.start(nursery, crash_at=windows.pop(0) if windows else "")

                async with trio.open_nursery() as load:
                    load.start_soon(chaos)
                    await run_clients(clients, per_user)
                    load.cancel_scope.cancel()
            assert await child.stop() == 0
            nursery.cancel_scope.cancel()
    context = f"seed={seed} starts={child.starts} chosen={child.chosen}"
    async with open_store(database_url, tmp_path / "data") as store:
        counts = await verify(store, clients)
    assert counts["messages"] == total, (counts, context)
    assert child.starts >= 5, context
    assert sorted(child.chosen) == ["claim_jobs", "finish_with_reply", "propose_with_ack"], context


async def one_message_through_crashes(
    tmp_path: Path, fake: FakeLLM, database_url: str | None, crashes: list[str]
) -> tuple[Client, Child, dict[str, int]]:
    """One user sends one message; the child starts with ``crashes[0]`` armed and,
    each time it dies by it, starts again with the next (then unarmed). Returns the
    client, the child and ``verify``'s counts."""
    async with child_app(tmp_path, fake, database_url) as (child, http):
        client = Client(http, 0, child.progress)
        async with trio.open_nursery() as nursery:
            await child.start(nursery, crash_at=crashes[0])
            with trio.fail_after(60):
                async with trio.open_nursery() as load:
                    load.start_soon(client.run, 1)
                    for n in range(1, len(crashes) + 1):
                        while child.alive:
                            await child.progress.wait()
                        await child.start(nursery, crash_at=crashes[n] if n < len(crashes) else "")
            assert await child.stop() == 0
            nursery.cancel_scope.cancel()
    async with open_store(database_url, tmp_path / "data") as store:
        counts = await verify(store, [client])
    return client, child, counts


async def test_kill9_right_after_the_plan_is_stored_still_shows_the_plan(
    tmp_path: Path, fake_llm: FakeLLM, database_url: str | None
) -> None:
    """Old code: the plan and its ack were two transactions; killed between them, the
    job waited for an OK nobody was asked for, and the message was never answered."""
    crash = ["propose_with_ack:1"]
    client, child, counts = await one_message_through_crashes(
        tmp_path, fake_llm, database_url, crash
    )
    assert child.chosen, "the chosen window was not reached"
    assert client.answers == {"u0 m0": ["answer to u0 m0"]}
    assert counts["acks"] == 1


async def test_a_job_interrupted_twice_tells_its_author_once(
    tmp_path: Path, fake_llm: FakeLLM, database_url: str | None
) -> None:
    """Old code: recover() failed a job interrupted twice and nobody was told (the
    thread's notice never ran, the job had already left running)."""
    crash = ["claim_jobs:1", "claim_jobs:1"]  # killed right after claiming it, twice
    client, child, counts = await one_message_through_crashes(
        tmp_path, fake_llm, database_url, crash
    )
    assert child.chosen == ["claim_jobs", "claim_jobs"]
    assert client.answers == {"u0 m0": [GAVE_UP]}
    assert counts["gave_up"] == 1
