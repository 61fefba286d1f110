"""The HTTP door over real HTTP, in-process: sessions, messages, the feed, approvals.

Each test starts the small tree of ``tests.httpkit`` (real Store, /storage, a
scripted stand-in for the user actors, the real HttpConnector on port 0) and
talks to it with httpx. Synchronisation is by the door's own state (waiters in
the feed, tree events), never by sleeping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.connectors.http._auth import hash_token
from tests.httpkit import Door, Script, open_door

pytestmark = pytest.mark.trio

#: Hang guard per test (a guard, not a sync point).
GUARD_S = 20


async def post_message(door: Door, auth: dict[str, str], text: str, **extra: Any) -> int:
    resp = await door.client.post(
        door.url + "/api/messages", json={"text": text, **extra}, headers=auth
    )
    assert resp.status_code == 202, resp.text
    return int(resp.json()["id"])


async def events(door: Door, auth: dict[str, str], after: int = 0, wait: float = 0) -> list[Any]:
    resp = await door.client.get(
        door.url + "/api/events", params={"after": after, "wait": wait}, headers=auth
    )
    assert resp.status_code == 200, resp.text
    return list(resp.json()["events"])


async def test_session_is_a_guest_with_a_hashed_token_and_rate_limited(tmp_path: Path) -> None:
    """POST /api/session: 201 with http:<id> and a token stored only as its hash;
    past session_rate_per_minute from one address: 429 with Retry-After."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path, session_rate_per_minute=2) as door:
            first = await door.client.post(door.url + "/api/session")
            assert first.status_code == 201
            assert first.headers["cache-control"] == "no-store"
            body = first.json()
            assert body["user"].startswith("http:") and len(body["token"]) >= 43
            assert await door.store.session_user(hash_token(body["token"])) == body["user"]
            assert await door.store.session_user(body["token"]) is None  # never stored raw
            second = await door.client.post(door.url + "/api/session")
            assert second.status_code == 201 and second.json()["user"] != body["user"]
            third = await door.client.post(door.url + "/api/session")
            assert third.status_code == 429
            assert int(third.headers["retry-after"]) >= 1
            assert third.json()["error"] == "rate_limited"


async def test_message_is_durable_then_the_long_poll_returns_the_ack(tmp_path: Path) -> None:
    """A long-poll waiting before the message is sent is woken by the ack's Deliver,
    and the thread got a Received for the stored message."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            user, auth = await door.session()
            got: list[Any] = []
            async with trio.open_nursery() as nursery:

                async def poll() -> None:
                    got.extend(await events(door, auth, wait=10))

                nursery.start_soon(poll)
                await door.waiters(1)
                mid = await post_message(door, auth, "hello")
            (received,) = door.script.received
            assert (received.message_id, received.text) == (mid, "hello")
            assert (received.platform, received.chat_id) == ("http", user.removeprefix("http:"))
            stored = await door.store.get_message(mid)
            assert stored.text == "hello" and stored.role == "user"
            (ack,) = got
            assert ack["kind"] == "ack" and ack["seq"] > mid
            assert ack["text"] == "Understood: hello Will: answer it"
            assert isinstance(ack["approval_id"], int) and ack["at"]
            assert door.connector.door.feed.waiting == 0  # type: ignore[union-attr]
            # Delivered replies are marked sent.
            assert await door.store.unsent_replies("http") == []


async def test_client_id_makes_a_retry_idempotent(tmp_path: Path) -> None:
    """The same client_id twice: one stored message, one Received, the same id back."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            _, auth = await door.session()
            first = await post_message(door, auth, "once", client_id="c-1")
            again = await post_message(door, auth, "once", client_id="c-1")
            assert first == again
            await door.system.quiescent()
            assert len(door.script.received) == 1


async def test_events_wait_zero_and_before_any_thread(tmp_path: Path) -> None:
    """A user who never wrote has an empty feed; wait=0 answers at once; wait is capped."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path, long_poll_max_s=0) as door:
            _, auth = await door.session()
            assert await events(door, auth) == []
            assert await events(door, auth, wait=3600) == []  # capped to 0 s


async def read_sse(lines: Any, n: int) -> list[tuple[int, dict[str, Any]]]:
    """The next ``n`` events of an SSE line iterator as (id, data)."""
    out: list[tuple[int, dict[str, Any]]] = []
    seq: int | None = None
    async for line in lines:
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: "):
            assert seq is not None
            out.append((seq, json.loads(line[6:])))
            if len(out) == n:
                return out
    raise AssertionError(f"stream ended after {out}")


async def test_stream_yields_the_feed_and_resumes_from_last_event_id(tmp_path: Path) -> None:
    """GET /api/stream sends each reply as `id: seq` + JSON data as it arrives; a new
    stream with Last-Event-ID starts after that event."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            _, auth = await door.session()
            url = door.url + "/api/stream"
            async with door.client.stream("GET", url, headers=auth) as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.aiter_lines()
                await door.waiters(1)
                await post_message(door, auth, "streamed")
                ((seq, ack),) = await read_sse(lines, 1)
            assert ack["kind"] == "ack" and ack["seq"] == seq
            assert ack == (await events(door, auth))[0]  # the same event as the long-poll
            approved = await door.client.post(
                f"{door.url}/api/approvals/{ack['approval_id']}", headers=auth
            )
            assert approved.status_code == 200
            resume = {**auth, "Last-Event-ID": str(seq)}
            async with door.client.stream("GET", url, headers=resume) as resp:
                ((_, reply),) = await read_sse(resp.aiter_lines(), 1)
            assert reply["kind"] == "reply" and reply["seq"] > seq
            bad = await door.client.get(url, headers={**auth, "Last-Event-ID": "x"})
            assert bad.status_code == 422


@pytest.mark.parametrize(
    ("scripted", "status", "error"),
    [
        ("approved", 200, None),
        ("superseded", 409, "superseded"),
        ("rejected", 409, "rejected"),
        ("not_found", 404, "not_found"),
    ],
)
async def test_approvals(tmp_path: Path, scripted: Any, status: int, error: str | None) -> None:
    """POST /api/approvals/{id} maps the thread's ApprovalResult to 200/409/404; an
    approved plan's reply then arrives in the feed."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path, Script(approvals=[scripted])) as door:
            _, auth = await door.session()
            await post_message(door, auth, "do it")
            (ack,) = await events(door, auth, wait=10)
            resp = await door.client.post(
                f"{door.url}/api/approvals/{ack['approval_id']}", headers=auth
            )
            assert resp.status_code == status, resp.text
            if error is None:
                assert resp.json() == {"status": "approved"}
                (reply,) = await events(door, auth, after=ack["seq"], wait=10)
                assert reply["kind"] == "reply" and reply["approval_id"] is None
            else:
                assert resp.json()["error"] == error and resp.json()["message"]


async def test_missing_or_forged_token_is_401(tmp_path: Path) -> None:
    """Every /api route but /api/session wants a valid Bearer token."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path) as door:
            forged = {"Authorization": "Bearer " + "A" * 43}
            for headers in ({}, forged, {"Authorization": "Basic dXNlcjpwYXNz"}):
                for method, path in [
                    ("POST", "/api/messages"),
                    ("GET", "/api/events"),
                    ("GET", "/api/stream"),
                    ("POST", "/api/approvals/1"),
                ]:
                    resp = await door.client.request(
                        method, door.url + path, headers=headers, json={"text": "x"}
                    )
                    assert resp.status_code == 401, (method, path, headers)
                    assert resp.json()["error"] == "unauthorized"
                    assert resp.headers["www-authenticate"] == "Bearer"
            assert door.script.received == []


async def test_bad_input_gets_a_clear_4xx(tmp_path: Path) -> None:
    """Empty, oversized, malformed or mistyped input: a 4xx with a JSON reason, never a
    500, nothing stored, and the door keeps serving."""
    with trio.fail_after(GUARD_S):
        async with open_door(tmp_path, max_body_bytes=32768) as door:
            _, auth = await door.session()
            url = door.url + "/api/messages"
            json_h = {**auth, "Content-Type": "application/json"}

            async def chunked() -> Any:
                for _ in range(40):
                    yield b"x" * 1024

            cases: list[tuple[int, str, dict[str, Any]]] = [
                (422, "empty_text", {"json": {"text": ""}}),
                (422, "empty_text", {"json": {"text": " \n\t"}}),
                (413, "text_too_large", {"json": {"text": "é" * 8193}}),  # 16386 bytes
                (413, "body_too_large", {"content": b"x" * 40000, "headers": json_h}),
                (413, "body_too_large", {"content": chunked(), "headers": json_h}),
                (400, "malformed_json", {"content": b'{"text": "hi"', "headers": json_h}),
                (400, "malformed_json", {"content": b"\xff\xfe", "headers": json_h}),
                (415, "unsupported_media_type", {"content": b"text=hi"}),
                (415, "unsupported_media_type", {"content": b"{}", "headers": {**auth}}),
                (422, "invalid_body", {"json": ["hi"]}),
                (422, "invalid_body", {"json": {"text": 5}}),
                (422, "invalid_body", {"json": {"text": "hi", "extra": 1}}),
                (422, "invalid_body", {"json": {"text": "hi", "client_id": "a/b"}}),
                (422, "invalid_text", {"json": {"text": "nul\x00byte"}}),
            ]
            for status, code, kw in cases:
                headers = kw.pop("headers", auth)
                if "content" in kw and "content-type" not in {h.lower() for h in headers}:
                    headers = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
                resp = await door.client.post(url, headers=headers, **kw)
                assert (resp.status_code, resp.json()["error"]) == (status, code), resp.text
                assert resp.json()["message"]
            more = [
                ("GET", "/api/events?after=-1", 422),
                ("GET", "/api/events?wait=nan", 422),
                ("POST", "/api/approvals/abc", 422),
                ("POST", "/api/approvals/0", 422),
                ("GET", "/nowhere", 404),
                ("DELETE", "/api/messages", 405),
            ]
            for method, path, status in more:
                resp = await door.client.request(method, door.url + path, headers=auth)
                assert resp.status_code == status, (path, resp.text)
                assert resp.json()["message"]
            assert door.script.received == []
            assert (await door.client.get(door.url + "/healthz")).status_code == 200
