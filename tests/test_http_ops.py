"""The HTTP door for operators: health, readiness, metrics, the schema, crashes, restarts,
backpressure and shutdown. In-process, as in ``test_http``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.connectors.http._auth import hash_token, mint_token
from protocols import Inbound
from storage import open_store
from tests.httpkit import Script, open_door
from tests.test_http import GUARD_S, events, post_message

pytestmark = pytest.mark.trio

_SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$')


async def test_healthz_and_readyz(tmp_path: Path) -> None:
    """/healthz is 200 while the process runs; /readyz is 200 with every check ok, and
    503 naming the reason once /storage is gone."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            assert (await door.client.get(door.url + "/healthz")).json() == {"status": "ok"}
            ready = await door.client.get(door.url + "/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ready",
                "checks": {"storage": "ok", "connectors": "ok"},
            }
            with door.system.subscribe() as tree:
                door.system.kill("/storage", "test: storage down")
                async for event in tree:
                    if (event.kind, event.path) == ("stopped", "/storage"):
                        break
            down = await door.client.get(door.url + "/readyz")
            assert down.status_code == 503
            assert down.json()["status"] == "not_ready"
            assert down.json()["checks"]["storage"] == "/storage is not running"
            assert (await door.client.get(door.url + "/healthz")).status_code == 200


async def test_readyz_reports_a_database_that_does_not_answer(tmp_path: Path) -> None:
    """A database that does not answer /storage's Ping makes /readyz 503 with a reason."""
    with trio.fail_after(GUARD_S):
        async with open_store(None, tmp_path) as store, open_door(tmp_path, store=store) as door:
            await store.aclose()
            down = await door.client.get(door.url + "/readyz")
            assert down.status_code == 503
            assert down.json()["checks"]["storage"] != "ok"


async def test_metrics_is_prometheus_text(tmp_path: Path) -> None:
    """/metrics: the text format (HELP and TYPE before each family's samples), the
    door's counters, and restarts and mailbox depths from the tree."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            _, auth = await door.session()
            await post_message(door, auth, "count me")
            await events(door, auth, wait=10)
            resp = await door.client.get(door.url + "/metrics")
            assert resp.status_code == 200
            assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            lines = resp.text.splitlines()
            assert resp.text.endswith("\n")
            families: dict[str, str] = {}
            for line in lines:
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split(" ")
                    families[name] = kind
                elif not line.startswith("# HELP "):
                    assert _SAMPLE.match(line), line
                    assert line.split("{")[0].split(" ")[0] in families, line
            assert families["greenroom_http_messages_in_total"] == "counter"
            assert families["greenroom_actor_mailbox_depth"] == "gauge"
            assert "greenroom_http_messages_in_total 1" in lines
            assert "greenroom_http_messages_out_total 1" in lines
            assert "greenroom_http_sessions_total 1" in lines
            assert 'greenroom_http_responses_total{code="202"} 1' in lines
            assert 'greenroom_actor_restarts_total{path="/connectors/http"} 0' in lines
            assert 'greenroom_directory_live_actors{path="/users"} 1' in lines
            # A user's actor is summed into /users, never a series of its own.
            assert not any("/users/" in line for line in lines)


async def test_openapi_schema_describes_the_routes(tmp_path: Path) -> None:
    """/openapi.json names every route with its status codes, bodies and the Bearer scheme."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            schema = (await door.client.get(door.url + "/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths) == {
        "/api/session",
        "/api/messages",
        "/api/events",
        "/api/stream",
        "/api/approvals/{approval_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    }
    post = paths["/api/messages"]["post"]
    assert {"202", "400", "401", "413", "415", "422", "503"} <= set(post["responses"])
    assert "200" not in post["responses"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["text"] and "client_id" in body["properties"]
    assert post["security"] == [{"HTTPBearer": []}]
    assert {"201", "429"} <= set(paths["/api/session"]["post"]["responses"])
    assert "security" not in paths["/api/session"]["post"]
    approvals = paths["/api/approvals/{approval_id}"]["post"]["responses"]
    assert {"200", "404", "409"} <= set(approvals)
    assert "text/event-stream" in paths["/api/stream"]["get"]["responses"]["200"]["content"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    event = schema["components"]["schemas"]["Event"]["properties"]
    assert event["kind"]["enum"] == ["ack", "reply", "notice", "error"]


async def test_connector_crash_restarts_it_and_leaves_the_users_alone(tmp_path: Path) -> None:
    """Killing /connectors/http restarts it (listening again, serving the same
    sessions and feed); the user actors are untouched."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            user, auth = await door.session()
            await post_message(door, auth, "before")
            (ack,) = await events(door, auth, wait=10)
            thread = door.script.threads[user]
            old_url = door.url
            with door.system.subscribe() as tree:
                door.system.kill("/connectors/http", "test: crash")
                async for event in tree:
                    if (event.kind, event.path) == ("restarted", "/connectors/http"):
                        break
            assert len(door.made) == 2 and door.url != old_url
            with pytest.raises(httpx.ConnectError):
                await door.client.get(old_url + "/healthz")  # the old socket is closed
            assert await events(door, auth) == [ack]
            await post_message(door, auth, "after")
            assert len(await events(door, auth, after=ack["seq"], wait=10)) == 1
            assert door.script.threads[user] is thread
            users = door.system.snapshot("/users")
            assert users.restarts == 0 and all(c.restarts == 0 for c in users.children)
            assert door.system.inspect("/connectors/http").restarts == 1


async def test_unsent_replies_are_marked_sent_at_start_and_shown(tmp_path: Path) -> None:
    """Replies a previous run recorded but never delivered are marked sent when the
    door starts, and the feed shows them."""
    with trio.fail_after(GUARD_S):
        async with open_store(None, tmp_path) as store:
            stored = await store.ingest(
                Inbound(platform="http", chat_id="u1", user_id="u1", message_id="m1", text="hi")
            )
            reply, _ = await store.record_reply(
                stored.thread.id, "sorry, I restarted", "notice:1", raw={"kind": "notice"}
            )
            token = mint_token()
            await store.create_session("http:u1", hash_token(token))
            assert len(await store.unsent_replies("http")) == 1
            async with open_door(tmp_path, store=store) as door:
                assert await store.unsent_replies("http") == []
                assert (await store.get_message(reply.id)).sent_at is not None
                (event,) = await events(door, {"Authorization": f"Bearer {token}"})
                assert (event["seq"], event["kind"], event["approval_id"]) == (
                    reply.id,
                    "notice",
                    None,
                )


async def test_full_mailbox_is_503_and_nothing_is_stored(tmp_path: Path) -> None:
    """A user's actor with a full mailbox: 503 + Retry-After before anything is
    stored; once it drains, the same message is accepted."""
    gate = trio.Event()
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path, Script(gate=gate), mailbox_capacity=1) as door:
            user, auth = await door.session()
            await post_message(door, auth, "one")  # being handled, held at the gate
            await door.system.quiescent()
            await post_message(door, auth, "two")  # queued: the mailbox is full
            url = door.url + "/api/messages"
            busy = await door.client.post(url, json={"text": "three"}, headers=auth)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert busy.json()["error"] == "busy"
            thread = await door.store.get_thread("http", user.removeprefix("http:"))
            assert thread is not None
            texts = [m.text for m in await door.store.recent_messages(thread.id)]
            assert texts == ["one", "two"]
            gate.set()
            acks: list[Any] = []
            while len(acks) < 2:  # the ack of "two" is recorded once it left the mailbox
                acks += await events(door, auth, after=acks[-1]["seq"] if acks else 0, wait=10)
            await post_message(door, auth, "three")
            (ack,) = await events(door, auth, after=acks[-1]["seq"], wait=10)
            assert ack["text"] == "Understood: three Will: answer it"
            assert [r.text for r in door.script.received] == ["one", "two", "three"]


async def test_stopping_answers_open_polls_and_streams_promptly(tmp_path: Path) -> None:
    """Shutting the tree down ends a waiting long-poll (200, no events) and an open
    stream, well within the shutdown timeout, and closes the port."""
    got: dict[str, Any] = {}
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path, long_poll_max_s=60) as door:
            _, auth = await door.session()
            url = door.url

            async def poll() -> None:
                got["poll"] = await door.client.get(
                    url + "/api/events", params={"wait": 60}, headers=auth
                )

            async def stream() -> None:
                async with door.client.stream("GET", url + "/api/stream", headers=auth) as r:
                    got["stream"] = [line async for line in r.aiter_lines()]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll)
                nursery.start_soon(stream)
                await door.waiters(2)
                start = trio.current_time()
                await door.system.shutdown()
            assert trio.current_time() - start < 2.0  # the shutdown timeout
            assert got["poll"].status_code == 200 and got["poll"].json() == {"events": []}
            assert got["stream"][0] == "retry: 2000"
            with pytest.raises(httpx.ConnectError):
                await door.client.get(url + "/healthz")
