"""Telegram webhook benchmark: POST /telegram/webhook at 1,000 updates/s, open loop, on Postgres.

DESIGN.md's target (issue 10, item 8): an inbound webhook update is durable
and answered 200 at p99 <= 20 ms at 1,000 updates/s.

The server (this process) is the door as in production: the HTTP door
(Hypercorn's trio worker; the webhook is a raw route of the door's ASGI layer,
no FastAPI per update) and the real Telegram door in webhook mode, a Store on
Postgres (a fresh database on the server ``ops/pg.py`` finds or
starts) with group commit, and a no-op user actor per user under ``/users``
(so the figure is the doors': secret check, parse, durable ingest, the 200,
then the hand-off and ``sendChatAction``). The client is a separate process
(``--client``), so client and server do not share an event loop: it also
serves tests/fake_telegram.py, which the Telegram door calls (``getMe``,
``setWebhook``, ``sendChatAction``).

Open loop: update ``i`` is due at ``t0 + i / rate`` whatever the server does;
``--connections`` keep-alive connections take due updates in order, and a
due update waits for a free connection if none is. Latency is measured from
the due time, so a stalled server shows up in the figures instead of slowing
the client down (the coordinated-omission trap of a closed loop). Text
messages from 1,000 users; one warm-up second first, not counted.

Two figures per run, both from the due time: "to 200" (the client saw the
200) and "to durable" (the ingest that stored it returned in the server;
``time.monotonic`` is one system-wide clock for both processes).

``--code DIR`` runs the same harness against another checkout (its
``actors``, ``storage``... are imported instead of this one's): for the
figures before a change, e.g. ``git archive <commit> | tar -x -C DIR``.

Prints a table, then one JSON object as the last line. Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _code_root(argv: list[str]) -> Path:
    # Before any greenroom import: --code decides which checkout is imported.
    for n, arg in enumerate(argv):
        if arg == "--code" and n + 1 < len(argv):
            return Path(argv[n + 1]).resolve()
        if arg.startswith("--code="):
            return Path(arg.split("=", 1)[1]).resolve()
    return Path(__file__).resolve().parents[2]


ROOT = _code_root(sys.argv)
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402
from _common import pct  # noqa: E402

SECRET = "bench-Webhook_secret"
USERS = 1000
WARMUP_S = 1.0


def _figures(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "p50_ms": pct(ordered, 0.50) * 1e3,
        "p99_ms": pct(ordered, 0.99) * 1e3,
        "max_ms": (ordered[-1] if ordered else float("nan")) * 1e3,
    }


async def _read_line(stream: Any, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("the other process closed its pipe")
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


# ---------------------------------------------------------------------- the client process
def _update(update_id: int) -> bytes:
    uid = 10_000 + update_id % USERS
    user = {"id": uid, "is_bot": False, "first_name": "Load", "username": f"load{uid}"}
    chat = {"id": uid, "first_name": "Load", "type": "private"}
    message = {"message_id": update_id, "from": user, "chat": chat, "date": 1_764_000_000,
               "text": f"load message {update_id}"}  # fmt: skip
    return json.dumps({"update_id": update_id, "message": message}).encode()


def _request(host: str, body: bytes) -> bytes:
    head = (
        f"POST /telegram/webhook HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(stream: trio.SocketStream, buffer: bytearray) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; return its status."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection")
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection mid-body")
        rest += data
    buffer[:] = rest[length:]
    return status


async def drive(
    port: int, rate: float, seconds: float, connections: int, first_id: int
) -> dict[str, Any]:
    """Send ``rate * seconds`` updates on the open-loop schedule; per update its due
    time, its 200 time (or None) and its status."""
    total = int(rate * seconds)
    due: list[float] = [0.0] * total
    done: list[float | None] = [None] * total
    status: list[int] = [0] * total
    send, receive = trio.open_memory_channel[int](total)
    host = f"127.0.0.1:{port}"

    async def connection() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        buffer = bytearray()
        async with stream:
            async for n in receive:
                await stream.send_all(_request(host, _update(first_id + n)))
                status[n] = await _read_response(stream, buffer)
                done[n] = time.monotonic()

    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(connection)
        t0 = time.monotonic() + 0.05
        async with send:
            for n in range(total):
                due[n] = t0 + n / rate
                await trio.sleep_until(trio.current_time() + max(0.0, due[n] - time.monotonic()))
                send.send_nowait(n)
    return {"first_id": first_id, "due": due, "done": done, "status": status}


async def client_main(args: argparse.Namespace) -> None:
    from tests.fake_telegram import FakeTelegram

    fake = FakeTelegram()
    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
    buffer = bytearray()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        print(json.dumps({"fake_port": fake.port}), flush=True)
        port = json.loads(await _read_line(stdin, buffer))["port"]
        await drive(port, args.rate, WARMUP_S, args.connections, 1)
        result = await drive(port, args.rate, args.seconds, args.connections, 1_000_000)
        result["typing_calls"] = len(fake.of("sendChatAction"))
        print(json.dumps(result), flush=True)
        await _read_line(stdin, buffer)  # the server is done with the fake
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------- the server process
async def server_main(args: argparse.Namespace) -> dict[str, Any]:
    from _common import Sink

    from actors import StorageActor
    from actors.connectors import HttpConnector, TelegramConnector
    from config import Settings
    from ops import pg
    from storage import open_store
    from supervision import ChildSpec, Directory, Supervisor, open_system
    from tests.fake_telegram import TOKEN

    server = pg.find_or_start()
    url = await trio.to_thread.run_sync(pg.create_database, server.admin_url, "gr_bench")
    command = [sys.executable, __file__, "--client", "--code", str(ROOT)]
    command += ["--rate", str(args.rate), "--seconds", str(args.seconds)]
    command += ["--connections", str(args.connections)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client = await trio.lowlevel.open_process(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            assert client.stdin is not None and client.stdout is not None
            lines = bytearray()
            fake_port = json.loads(await _read_line(client.stdout, lines))["fake_port"]
            settings = Settings.model_validate(
                {
                    "data_dir": tmp,
                    "http": {"port": 0},
                    "log": {"level": "warning"},
                    "telegram": {
                        "api_base": f"http://127.0.0.1:{fake_port}",
                        "mode": "webhook",
                        "webhook_url": "https://bench.invalid/telegram/webhook",
                    },
                    "telegram_bot_token": TOKEN,
                    "telegram_webhook_secret": SECRET,
                }
            )
            async with open_store(url, Path(tmp)) as store:
                durable: dict[int, float] = {}
                ingest = store.ingest

                async def timed_ingest(inbound: Any) -> Any:
                    result = await ingest(inbound)
                    durable.setdefault(int(inbound.message_id[1:]), time.monotonic())
                    return result

                store.ingest = timed_ingest  # type: ignore[method-assign]
                http: list[HttpConnector] = []
                telegram: list[TelegramConnector] = []

                def doors() -> Supervisor:
                    def web() -> HttpConnector:
                        http.append(HttpConnector(settings, store))
                        return http[-1]

                    def tg() -> TelegramConnector:
                        telegram.append(TelegramConnector(settings, store))
                        return telegram[-1]

                    return Supervisor([ChildSpec("http", web), ChildSpec("telegram", tg)])

                def root() -> Supervisor:
                    return Supervisor(
                        [
                            ChildSpec("storage", lambda: StorageActor(store)),
                            ChildSpec("users", lambda: Directory(Sink, idle_timeout_s=None)),
                            ChildSpec("connectors", doors),
                        ]
                    )

                async with open_system(root):
                    with trio.fail_after(30):
                        await telegram[-1].ready.wait()  # setWebhook answered
                    port = http[-1].port
                    await client.stdin.send_all(json.dumps({"port": port}).encode() + b"\n")
                    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                    result = json.loads(await _read_line(client.stdout, lines))
                    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                    # Both threads (trio's and asyncpg's), warm-up included.
                    cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
                    gc = store.group_commit
                    batches = (gc.items / gc.batches) if gc is not None and gc.batches else 0.0
                await client.stdin.send_all(b"bye\n")
                await client.wait()
    finally:
        await trio.to_thread.run_sync(pg.drop_database, server.admin_url, url)
        server.stop()
    summary = _summary(args, result, durable, batches)
    sent = summary["sent"] + int(args.rate * WARMUP_S)
    summary["server_cpu_ms_per_update"] = cpu_s * 1e3 / sent
    return summary


def _summary(
    args: argparse.Namespace, result: dict[str, Any], durable: dict[int, float], batch: float
) -> dict[str, Any]:
    first, due, done, status = (result[k] for k in ("first_id", "due", "done", "status"))
    to_200 = [
        d - s for s, d, c in zip(due, done, status, strict=True) if d is not None and c == 200
    ]
    to_durable = [durable[first + n] - s for n, s in enumerate(due) if first + n in durable]
    finished = [d for d in done if d is not None]
    span = (max(finished) - due[0]) if finished else float("nan")
    return {
        "code": str(ROOT),
        "offered_per_s": args.rate,
        "seconds": args.seconds,
        "connections": args.connections,
        "sent": len(due),
        "ok_200": len(to_200),
        "not_200": sum(1 for c in status if c != 200),
        "achieved_per_s": len(to_200) / span if finished and span > 0 else 0.0,
        "to_200": _figures(to_200),
        "to_durable": _figures(to_durable),
        "mean_batch": batch,
        "typing_calls": result.get("typing_calls", 0),
    }


def _print(summary: dict[str, Any]) -> None:
    print(
        f"POST /telegram/webhook, open loop {summary['offered_per_s']:,.0f}/s for "
        f"{summary['seconds']:g} s, {summary['connections']} connections, Postgres "
        f"(code: {summary['code']}):"
    )
    for name in ("to_200", "to_durable"):
        f = summary[name]
        print(
            f"  {name.replace('_', ' '):11} p50 {f['p50_ms']:8.2f} ms   "
            f"p99 {f['p99_ms']:8.2f} ms   max {f['max_ms']:8.2f} ms   ({f['count']} updates)"
        )
    print(
        f"  achieved {summary['achieved_per_s']:,.0f} 200s/s; {summary['not_200']} not 200; "
        f"mean group-commit batch {summary['mean_batch']:.1f}; "
        f"{summary['typing_calls']} sendChatAction"
    )
    print(
        f"  server CPU {summary['server_cpu_ms_per_update']:.2f} ms per update "
        "(both its threads; above 1 ms, one core cannot serve 1,000/s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="updates per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="the measured window")
    parser.add_argument("--connections", type=int, default=64, help="client keep-alive connections")
    parser.add_argument("--code", default=None, help="another checkout to measure (see above)")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        trio.run(client_main, args)
    else:
        summary = trio.run(server_main, args)
        _print(summary)
        print(json.dumps(summary))
