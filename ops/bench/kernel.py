"""Kernel benchmarks: greenroom beside pykka and raw trio, one process per figure.

Run with ``make bench``. Prints a table, then (last line) one JSON object with
the figures. Numbers, never a test: nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import trio

from supervision import (
    Actor,
    ActorFailed,
    ChildSpec,
    Directory,
    Supervisor,
    configure_logging,
    open_system,
)

TELL_N = 1_000_000
PYKKA_TELL_N = 200_000
ASK_N = 20_000
SPAWN_N = 100_000
RESTART_N = 2_000


class Sink(Actor):
    """The trivial handler."""

    def __init__(self, _: str = "") -> None:
        self.n = 0

    async def receive(self, msg: Any) -> Any:
        self.n += 1
        return msg


def pct(samples: list[float], q: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(len(samples) * q))] * 1e6


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- greenroom
async def gr_tell() -> dict[str, float]:
    async with open_system(lambda: Supervisor([ChildSpec("sink", Sink)])) as system:
        ref = system.lookup("/sink")
        t0 = time.perf_counter()
        for i in range(TELL_N):
            await ref.tell(i)
        await ref.ask("sync", timeout=None)
        dt = time.perf_counter() - t0
    return {"tell_msgs_per_s": TELL_N / dt}


async def gr_ask() -> dict[str, float]:
    async with open_system(lambda: Supervisor([ChildSpec("sink", Sink)])) as system:
        ref = system.lookup("/sink")
        for i in range(1000):
            await ref.ask(i)
        lat = []
        for i in range(ASK_N):
            t0 = time.perf_counter()
            await ref.ask(i)
            lat.append(time.perf_counter() - t0)
    return {"ask_p50_us": pct(lat, 0.5), "ask_p99_us": pct(lat, 0.99)}


async def gr_idle(n: int) -> dict[str, float]:
    async with open_system(
        lambda: Supervisor(
            [ChildSpec("users", lambda: Directory(Sink, idle_timeout_s=None, max_live=None))]
        )
    ) as system:
        directory = system.lookup("/users")._cell.actor
        assert isinstance(directory, Directory)
        gc.collect()
        before = rss_bytes()
        t0 = time.perf_counter()
        for i in range(n):
            directory.get_or_spawn(f"telegram:{i}")
        spawn_s = time.perf_counter() - t0
        # each actor handles one message, then goes idle (no task, no mailbox);
        # messages arrive in batches, as they would, not as one 1M-task burst
        for i in range(n):
            await directory.get_or_spawn(f"telegram:{i}").tell(i)
            if i % 256 == 255:
                await system.quiescent()
        await system.quiescent()
        gc.collect()
        after = rss_bytes()
        tasks = sum(c.tasks for c in system.snapshot("/users").children[:1000])
    return {"bytes": (after - before) / n, "spawn_us": spawn_s / n * 1e6, "tasks": tasks}


class Flaky(Actor):
    """Fails on "boom"; records when the replacement instance starts."""

    marks: list[float] = []

    async def receive(self, msg: Any) -> Any:
        if msg == "boom":
            Flaky.marks.append(time.perf_counter())
            raise RuntimeError("boom")
        return msg

    async def on_restart(self, error: BaseException) -> None:
        Flaky.marks.append(time.perf_counter())


async def gr_restart() -> dict[str, float]:
    sup = lambda: Supervisor([ChildSpec("f", Flaky)], max_restarts=10**9)  # noqa: E731
    async with open_system(sup) as system:
        ref = system.lookup("/f")
        lat = []
        for _ in range(RESTART_N):
            Flaky.marks.clear()
            try:
                await ref.ask("boom")
            except ActorFailed:
                pass
            await ref.ask("sync")  # queued; handled by the restarted instance
            lat.append(Flaky.marks[1] - Flaky.marks[0])
    return {"restart_us": statistics.median(lat) * 1e6, "restart_p99_us": pct(lat, 0.99)}


# ---------------------------------------------------------------- pykka
def pykka_tell() -> dict[str, float]:
    import pykka

    class PSink(pykka.ThreadingActor):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def on_receive(self, message: Any) -> Any:
            self.n += 1
            return message

    ref = PSink.start()
    t0 = time.perf_counter()
    for i in range(PYKKA_TELL_N):
        ref.tell(i)
    ref.ask("sync")
    dt = time.perf_counter() - t0
    lat = []
    for i in range(ASK_N // 4):
        t1 = time.perf_counter()
        ref.ask(i)
        lat.append(time.perf_counter() - t1)
    ref.stop()
    return {"pykka_tell_msgs_per_s": PYKKA_TELL_N / dt, "pykka_ask_p50_us": pct(lat, 0.5)}


# ---------------------------------------------------------------- raw trio
async def trio_channel() -> dict[str, float]:
    send, recv = trio.open_memory_channel[int](1000)
    done = trio.Event()

    async def consume() -> None:
        n = 0
        async for _ in recv:
            n += 1
            if n == TELL_N:
                done.set()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        t0 = time.perf_counter()
        for i in range(TELL_N):
            await send.send(i)
        await done.wait()
        dt = time.perf_counter() - t0
    s2, r2 = trio.open_memory_channel[int](TELL_N)
    t0 = time.perf_counter()
    for i in range(TELL_N):
        s2.send_nowait(i)
    for _ in range(TELL_N):
        r2.receive_nowait()
    dt2 = time.perf_counter() - t0
    return {"trio_channel_msgs_per_s": TELL_N / dt, "trio_channel_nowait_msgs_per_s": TELL_N / dt2}


async def trio_pingpong() -> dict[str, float]:
    s1, r1 = trio.open_memory_channel[int](1)
    s2, r2 = trio.open_memory_channel[int](1)

    async def echo() -> None:
        async for m in r1:
            await s2.send(m)

    lat = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        for i in range(ASK_N):
            t0 = time.perf_counter()
            await s1.send(i)
            await r2.receive()
            lat.append(time.perf_counter() - t0)
        nursery.cancel_scope.cancel()
    return {"trio_pingpong_p50_us": pct(lat, 0.5)}


FIGURES: dict[str, Callable[[], dict[str, float]]] = {
    "tell": lambda: trio.run(gr_tell),
    "pykka": pykka_tell,
    "trio_channel": lambda: trio.run(trio_channel),
    "ask": lambda: trio.run(gr_ask),
    "trio_pingpong": lambda: trio.run(trio_pingpong),
    "idle_100k": lambda: trio.run(gr_idle, 100_000),
    "idle_1m": lambda: trio.run(gr_idle, 1_000_000),
    "restart": lambda: trio.run(gr_restart),
}


def configure() -> None:
    """Log as production does (JSON at info), into the void."""
    configure_logging("info", "json", open(os.devnull, "w"))  # noqa: SIM115


def run_figure(name: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--figure", name],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--figure", choices=sorted(FIGURES))
    args = p.parse_args()
    if args.figure:
        configure()
        print(json.dumps(FIGURES[args.figure]()))
        return
    r: dict[str, Any] = {}
    for name in FIGURES:
        fig = run_figure(name)
        if name.startswith("idle_"):
            r[f"{name}_bytes"] = fig["bytes"]
            r[f"{name}_tasks"] = fig["tasks"]
            if name == "idle_100k":
                r["spawn_us"] = fig["spawn_us"]
        else:
            r.update(fig)
    r["idle_actor_bytes"] = r["idle_1m_bytes"]
    rows = [
        (
            "tell throughput (msg/s)",
            r["tell_msgs_per_s"],
            "pykka",
            r["pykka_tell_msgs_per_s"],
            "trio channel await send",
            r["trio_channel_msgs_per_s"],
            ">= 500,000 and >= 3x pykka",
        ),
        (
            "ask round trip p50 (us)",
            r["ask_p50_us"],
            "pykka",
            r["pykka_ask_p50_us"],
            "trio ping-pong",
            r["trio_pingpong_p50_us"],
            "<= 25 and <= 1.5x ping-pong",
        ),
    ]
    print(f"{'figure':<28}{'greenroom':>14}   {'beside':<34}{'target'}")
    for name, mine, n1, v1, n2, v2, target in rows:
        print(f"{name:<28}{mine:>14,.1f}   {n1} {v1:,.1f}; {n2} {v2:,.1f}   {target}")
    lines = [
        ("ask round trip p99 (us)", f"{r['ask_p99_us']:,.1f}", ""),
        ("trio send_nowait (msg/s)", f"{r['trio_channel_nowait_msgs_per_s']:,.0f}", "reference"),
        (
            "bytes/idle actor, 100k",
            f"{r['idle_100k_bytes']:,.0f}",
            f"tasks held: {r['idle_100k_tasks']}   <= 1024",
        ),
        (
            "bytes/idle actor, 1M",
            f"{r['idle_1m_bytes']:,.0f}",
            f"tasks held: {r['idle_1m_tasks']}   <= 1024",
        ),
        ("spawn (us/actor)", f"{r['spawn_us']:,.2f}", "<= 5"),
        (
            "restart, no backoff (us)",
            f"{r['restart_us']:,.1f}",
            f"p99 {r['restart_p99_us']:,.1f}   <= 200",
        ),
        ("tell vs pykka", f"{r['tell_msgs_per_s'] / r['pykka_tell_msgs_per_s']:.2f}x", ">= 3x"),
        ("ask vs trio ping-pong", f"{r['ask_p50_us'] / r['trio_pingpong_p50_us']:.2f}x", "<= 1.5x"),
    ]
    for name, value, note in lines:
        print(f"{name:<28}{value:>14}   {note}")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))


if __name__ == "__main__":
    main()
