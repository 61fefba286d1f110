"""Who may talk to the debug socket (issue 4): the loopback TCP listener wants
the token in its first frame, a non-loopback address is refused at start, a
stale socket file is replaced and a live one is not stolen."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.pg import free_port
from supervision.debug import DebugServer, DebugSocketError
from supervision.debug._listen import open_unix_listener, remove_socket
from tests.debugkit import GREENROOM, Client, Live, env, start

TOKEN = "tok-SECRET-1234567890"


@pytest.fixture(scope="module")
def tcp_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, int]]:
    port = free_port()
    server = start(
        tmp_path_factory.mktemp("tcp"),
        GREENROOM_DEBUG_TCP=f"127.0.0.1:{port}",
        GREENROOM_DEBUG_TOKEN=TOKEN,
    )
    yield server, port
    assert server.stop() == 0
    assert TOKEN.encode() not in b"".join(server.raw), "the token must never be logged"


async def test_tcp_without_hello_is_unauthorized(tcp_live: tuple[Live, int]) -> None:
    """A TCP client whose first frame is not a hello gets `unauthorized`, then EOF."""
    _, port = tcp_live
    client = await Client.tcp("127.0.0.1", port)
    response = await client.call("tree")
    assert response["ok"] is False and response["error"]["kind"] == "unauthorized"
    assert await client.receive() is None
    await client.aclose()


async def test_tcp_with_a_wrong_token_is_unauthorized(tcp_live: tuple[Live, int]) -> None:
    """A hello with the wrong token (or none) is refused the same way."""
    _, port = tcp_live
    for token in ("tok-SECRET-1234567891", None, 42):
        client = await Client.tcp("127.0.0.1", port)
        response = await client.call("hello", token=token)
        assert response["error"]["kind"] == "unauthorized", response
        assert await client.receive() is None
        await client.aclose()
    live, _ = tcp_live
    refused = live.wait_until(lambda e: e.get("event") == "debug_unauthorized")
    assert all(e["peer"]["address"].startswith("127.0.0.1:") for e in refused)


async def test_tcp_with_the_token_is_served_and_audited(tcp_live: tuple[Live, int]) -> None:
    """After a good hello every op works; the audit names the TCP peer address."""
    live, port = tcp_live
    client = await Client.tcp("127.0.0.1", port)
    assert await client.result("hello", token=TOKEN) == {"hello": True}
    assert (await client.result("tree"))["path"] == "/"
    await client.result("inject", path="/users/tcp:1", type="kernel.Ping", body={})
    await client.aclose()
    audit = live.wait_for("debug_audit")
    assert audit["op"] == "inject" and audit["peer"]["transport"] == "tcp"
    assert audit["peer"]["address"].startswith("127.0.0.1:")


def test_non_loopback_tcp_is_refused_at_start(tmp_path: Path) -> None:
    """debug.tcp on a public address: one line naming the setting, exit 2, and
    the server class refuses it too."""
    out = subprocess.run(
        [*GREENROOM, "--data-dir", str(tmp_path), "run"],
        capture_output=True,
        text=True,
        env=env(GREENROOM_DEBUG_TCP="0.0.0.0:7070", GREENROOM_DEBUG_TOKEN=TOKEN),
        check=False,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "debug.tcp" in out.stderr and "0.0.0.0" in out.stderr
    assert TOKEN not in out.stderr
    with pytest.raises(ValueError, match="loopback"):
        DebugServer(tmp_path / "x.sock", tcp="192.168.1.10:7070", token="t")
    with pytest.raises(ValueError, match="token"):
        DebugServer(tmp_path / "x.sock", tcp="127.0.0.1:7070")


async def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    """A socket file nobody listens on (a crashed run) is replaced at start."""
    stale = tmp_path / "debug.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))  # bound, never listening: connecting is refused
    stale.chmod(0o666)
    live = start(tmp_path)
    try:
        assert stale.stat().st_mode & 0o777 == 0o600
        client = await Client.unix(stale)
        assert (await client.result("tree"))["path"] == "/"
        await client.aclose()
    finally:
        assert live.stop() == 0


def test_a_second_greenroom_on_the_same_data_dir_leaves_the_first_alone(
    tcp_live: tuple[Live, int],
) -> None:
    """A second greenroom on the same data dir stops at once with one line (its
    database is owned by the first); the first keeps its socket and keeps serving."""
    first, _ = tcp_live
    second = start(first.data_dir, wait=None)
    assert second.proc.wait(timeout=30) == 2
    second.stop()
    lines = [str(e["line"]) for e in second.events if e["event"] == "unparsed"]
    assert len(lines) == 1 and "another greenroom process" in lines[0]
    assert first.proc.poll() is None and first.socket.exists()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(first.socket))


async def test_a_live_debug_socket_is_not_taken_over(tmp_path: Path) -> None:
    """Behind the database lock, the debug server itself refuses a socket that
    another process answers on, naming it (two instances that share a data dir
    but not a database)."""
    path = tmp_path / "debug.sock"
    listener, identity = await open_unix_listener(path)
    try:
        with pytest.raises(DebugSocketError, match="another greenroom is already serving"):
            await open_unix_listener(path)
        assert path.exists()
    finally:
        await listener.aclose()
        remove_socket(path, identity)
    assert not path.exists()
