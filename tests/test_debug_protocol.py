"""The debug protocol against a real `greenroom run` (issue 4): every op, requests
in flight together, watch seeing a kill, inject reaching a user actor, and
errors that never take the connection or the server down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocols import FRAME_HEADER, encode
from tests.debugkit import Client, Live, start


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("gr"))
    yield server
    assert server.stop() == 0
    assert not server.socket.exists(), "the socket file is removed on stop"


async def connect(live: Live) -> Client:
    return await Client.unix(live.socket)


async def test_tree_is_the_application_tree(live: Live) -> None:
    """`tree` returns every actor with its bookkeeping; /debug is the last child."""
    client = await connect(live)
    root = await client.result("tree")
    assert root["path"] == "/" and root["class"] == "Supervisor" and root["state"] == "running"
    names = [child["name"] for child in root["children"]]
    assert names[-1] == "debug" and {"connectors", "users"} <= set(names)
    debug = root["children"][-1]
    assert debug["class"] == "DebugServer" and debug["tasks"] >= 1
    for key in ("mailbox_depth", "mailbox_capacity", "processed", "restarts", "last_error"):
        assert key in debug
    sub = await client.result("tree", path="/users")
    assert sub["path"] == "/users"
    await client.aclose()


async def test_inject_reaches_a_user_thread_and_ask_replies(live: Live) -> None:
    """inject tells a validated kernel.Ping to /users/probe:1 (activating it);
    a following ask sees the count include the injected ping."""
    client = await connect(live)
    first = await client.result("ask", path="/users/probe:1", type="kernel.Ping", body={})
    assert first["reply"] == {"type": "kernel.Pong", "body": {"note": "probe:1: ping 1"}}
    done = await client.result(
        "inject", path="/users/probe:1", type="kernel.Ping", body={"note": "hi"}
    )
    assert done == {"path": "/users/probe:1", "type": "kernel.Ping", "delivered": True}
    again = await client.result(
        "ask", path="/users/probe:1", type="kernel.Ping", body={"note": "x"}, timeout_s=5
    )
    assert again["reply"]["body"]["note"] == "probe:1: ping 3 (x)"
    [audit] = live.wait_until(
        lambda e: (
            e.get("event") == "debug_audit" and (e["op"], e["path"]) == ("inject", "/users/probe:1")
        )
    )
    assert audit["type"] == "kernel.Ping" and audit["reason"] is None
    assert audit["peer"]["transport"] == "unix" and audit["peer"]["pid"] > 0
    await client.aclose()


async def test_watch_sees_a_kill_fail_and_restart(live: Live) -> None:
    """watch streams failed then restarted for a killed actor; inspect then shows
    the restart time and the traceback of the kill."""
    watcher, killer = await connect(live), await connect(live)
    wid = await watcher.send(op="watch")
    assert (await watcher.receive()) == {"id": wid, "ok": True, "result": {"event": "subscribed"}}
    killed = await killer.result("kill", path="/connectors", reason="protocol test")
    assert killed["path"] == "/connectors"
    seen: list[tuple[str, str]] = []
    while ("restarted", "/connectors") not in seen:
        frame = await watcher.receive()
        assert frame is not None and frame["id"] == wid and frame["ok"], frame
        seen.append((frame["result"]["event"], frame["result"]["path"]))
        if frame["result"]["event"] == "failed":
            assert "protocol test" in frame["result"]["error"]
    assert seen.index(("failed", "/connectors")) < seen.index(("restarted", "/connectors"))
    info = await killer.result("inspect", path="/connectors")
    assert info["restarts"] >= 1 and len(info["restart_times"]) == info["restarts"]
    assert info["last_error"]["type"] == "Killed"
    assert "protocol test" in info["last_error"]["traceback"]
    await watcher.aclose()  # mid-watch: the server just drops the stream
    assert (await killer.result("tree"))["state"] == "running"
    await killer.aclose()


async def test_requests_in_flight_together(live: Live) -> None:
    """Replies on one connection do not wait for earlier requests: a watch that
    never ends does not hold up the requests sent after it."""
    client = await connect(live)
    wid = await client.send(op="watch")
    ids = [await client.send(op=op) for op in ("tree", "stats", "dead_letters", "tree")]
    ids.append(await client.send(op="ask", path="/debug", type="kernel.Ping", body={"note": "n"}))
    got: dict[int, dict[str, object]] = {}
    while set(ids) - set(got):
        frame = await client.receive()
        assert frame is not None
        if frame["id"] != wid:
            got[frame["id"]] = frame
    assert all(frame["ok"] for frame in got.values())
    assert got[ids[-1]]["result"] == {
        "path": "/debug",
        "type": "kernel.Ping",
        "reply": {"type": "kernel.Pong", "body": {"note": "n"}},
    }
    await client.aclose()


async def test_types_stats_and_dead_letters(live: Live) -> None:
    """types lists JSON schemas; stats has the operator's numbers; a message that
    fails an actor shows up in dead_letters with its reason."""
    client = await connect(live)
    types = await client.result("types", path="/debug")
    assert types["class"] == "DebugServer"
    [ping] = types["types"]
    assert ping["type"] == "kernel.Ping" and "note" in ping["schema"]["properties"]
    await client.result("inject", path="/users/dead:1", type="kernel.Pong", body={})
    user_types = await client.result("types", path="/users/dead:1")
    assert [t["type"] for t in user_types["types"]] == [
        "chat.Received",
        "chat.Approve",
        "kernel.Ping",
    ]
    # The Pong fails the thread; this ask waits behind it in the mailbox (which
    # survives the restart), so once it is answered the dead letter is recorded.
    after = await client.result("ask", path="/users/dead:1", type="kernel.Ping", body={})
    assert after["reply"]["body"]["note"] == "dead:1: ping 1"
    letters = await client.result("dead_letters", limit=10)
    [letter] = [d for d in letters if d["path"] == "/users/dead:1"]
    assert letter["reason"] == "caused_failure" and letter["type"] == "kernel.Pong"
    before = await client.result("stats")
    n = 25  # messages processed by /debug between the two readings
    for i in range(n):
        await client.result("ask", path="/debug", type="kernel.Ping", body={"note": str(i)})
    stats = await client.result("stats")
    assert stats["actors"] >= 4 and stats["uptime_s"] > 0 and stats["rss_bytes"] > 0
    assert set(stats["loop_lag_ms"]) == {"last", "max"} and stats["debug_connections"] >= 1
    # the rate is the processed count's change over the time between the readings
    moved = stats["processed"] - before["processed"]
    assert moved >= n
    window = stats["uptime_s"] - before["uptime_s"]
    assert window > 0 and stats["messages_per_s"] > 0
    assert stats["messages_per_s"] == pytest.approx(moved / window, rel=0.05)
    await client.aclose()


async def test_bad_requests_get_precise_errors_and_the_connection_stays(live: Live) -> None:
    """Each kind of bad request is answered with its error kind on the same
    connection, which then still serves `tree`."""
    client = await connect(live)

    async def error(expect_id: object = None, **req: object) -> dict[str, object]:
        if "raw" in req:
            await client.send_raw(req["raw"])  # type: ignore[arg-type]
        else:
            await client.send(**req)
        frame = await client.receive()
        assert frame is not None and frame["ok"] is False, frame
        if expect_id is not None:
            assert frame["id"] == expect_id
        return frame["error"]  # type: ignore[no-any-return]

    def raw(payload: bytes) -> bytes:
        return FRAME_HEADER.pack(len(payload)) + payload

    assert (await error(raw=raw(b"\xc1")))["kind"] == "bad_frame"
    assert (await error(raw=raw(encode([1, 2]))))["kind"] == "bad_frame"
    assert (await error(raw=raw(encode({"op": "tree"}))))["kind"] == "bad_frame"
    assert (await error(raw=raw(b"")))["kind"] == "bad_frame"
    assert (await error(7, id=7, op="frobnicate"))["kind"] == "unknown_op"
    assert (await error(8, id=8, op="inspect"))["kind"] == "bad_frame"
    assert (await error(9, id=9, op="inspect", path="/nope"))["kind"] == "unknown_path"
    assert (await error(10, id=10, op="inject", path="/debug", type="no.Such", body={}))[
        "kind"
    ] == "unknown_type"
    invalid = await error(
        11, id=11, op="inject", path="/debug", type="kernel.Ping", body={"note": 5}
    )
    assert invalid["kind"] == "invalid_body" and invalid["field"] == "note"
    assert "note" in str(invalid["message"])
    assert (await error(12, id=12, op="kill", path=3))["kind"] == "bad_frame"
    assert (await error(13, id=13, op="ask", path="/debug", type="kernel.Ping", timeout_s=-1))[
        "kind"
    ] == "bad_frame"
    assert (await client.result("tree"))["path"] == "/"
    await client.aclose()


async def test_too_large_and_cut_frames_close_only_that_connection(live: Live) -> None:
    """A declared length over 1 MiB gets too_large and the connection closes;
    a client vanishing mid-frame is dropped; the server serves the next one."""
    big = await connect(live)
    await big.send_raw(FRAME_HEADER.pack(2 << 20) + b"\x80")
    frame = await big.receive()
    assert frame is not None and frame["error"]["kind"] == "too_large"
    assert await big.receive() is None
    await big.aclose()
    cut = await connect(live)
    await cut.send_raw(FRAME_HEADER.pack(100) + b"\x81\xa2op")
    await cut.aclose()
    half = await connect(live)
    await half.send_raw(b"\x00\x00")
    await half.aclose()
    fresh = await connect(live)
    assert (await fresh.result("tree"))["path"] == "/"
    await fresh.aclose()


def test_socket_file_is_0600(live: Live) -> None:
    """The debug socket is readable and writable by its owner only."""
    assert live.socket.stat().st_mode & 0o777 == 0o600
    assert not [p for p in Path(live.data_dir).iterdir() if p.name.startswith(".debug-")]
