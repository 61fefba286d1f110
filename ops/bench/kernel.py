"""Kernel benchmarks: greenroom beside pykka and raw trio, one process per figure.

DESIGN.md states the targets as same-run ratios (these shared machines move
absolute figures by 2x from run to run): tell throughput >= 5x pykka and
>= 0.5x a raw trio ``send_nowait`` loop; ask p50 <= 1.0x a raw trio channel
ping-pong; <= 1 KB per idle live actor, with its key and ref; spawn and the
restart of a failed child (no backoff) printed beside a bare trio task +
channel start and a pykka actor start. Every reference is measured in the
same run, each figure in a fresh process.

Run with ``make bench``. Prints a table (figure, greenroom, reference, ratio,
target, met), then (last line) one JSON object with the figures. Numbers,
never a test: nothing here asserts on speed.
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
import trio.testing

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
TRIO_TASK_N = SPAWN_N  # the same count as the spawn figure: per-unit costs grow with it (GC)
PYKKA_START_N = 1_000
IDLE_KEY = "telegram:{}"  # keys as the application makes them (platform:user_id)


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
    """``await ref.tell(i)`` N times into the default (bounded, 1000) mailbox, then
    one ask so every message has been handled."""
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
    """Bytes per idle live actor, counted with its key (a fresh string per user, as
    the application's ``platform:user_id``) and its ref (materialised and held
    by the caller, as a connector would), once each has handled a message."""
    async with open_system(
        lambda: Supervisor(
            [ChildSpec("users", lambda: Directory(Sink, idle_timeout_s=None, max_live=None))]
        )
    ) as system:
        directory = system.lookup("/users")._cell.actor
        assert isinstance(directory, Directory)
        gc.collect()
        before = rss_bytes()
        refs = []
        t0 = time.perf_counter()
        for i in range(n):
            refs.append(directory.get_or_spawn(IDLE_KEY.format(i)))
        spawn_s = time.perf_counter() - t0
        # each actor handles one message, then goes idle (no task, no mailbox);
        # messages arrive in batches, as they would, not as one 1M-task burst
        for i, ref in enumerate(refs):
            await ref.tell(i)
            if i % 256 == 255:
                await system.quiescent()
        await system.quiescent()
        gc.collect()
        after = rss_bytes()
        assert len(refs) == n and all(refs[i]._cell.name == IDLE_KEY.format(i) for i in (0, n - 1))
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


def pykka_start() -> dict[str, float]:
    """Start one pykka ThreadingActor (a thread each), until it answers its first ask."""
    import pykka

    class PIdle(pykka.ThreadingActor):  # type: ignore[misc]
        use_daemon_thread = True

        def on_receive(self, message: Any) -> Any:
            return message

    lat = []
    refs = []
    for _ in range(PYKKA_START_N):
        t0 = time.perf_counter()
        ref = PIdle.start()
        ref.ask("up")
        lat.append(time.perf_counter() - t0)
        refs.append(ref)
    for ref in refs:
        ref.stop(block=False)
    return {"pykka_start_us": statistics.median(lat) * 1e6}


# ---------------------------------------------------------------- raw trio
async def trio_nowait() -> dict[str, float]:
    """The raw reference for tell: one producer ``send_nowait``s N messages into a
    memory channel (buffered for all N), one consumer task takes them
    (``receive_nowait``, awaiting ``receive()`` only when the channel is empty, as
    a drain task does). The same message count as the tell figure."""
    send, recv = trio.open_memory_channel[int](TELL_N)
    done = trio.Event()

    async def consume() -> None:
        n = 0
        while n < TELL_N:
            try:
                recv.receive_nowait()
            except trio.WouldBlock:
                await recv.receive()
            n += 1
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()  # the consumer waits for the first
        t0 = time.perf_counter()
        for i in range(TELL_N):
            send.send_nowait(i)
        await done.wait()
        dt = time.perf_counter() - t0
    return {"trio_nowait_msgs_per_s": TELL_N / dt}


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


async def trio_task_start() -> dict[str, float]:
    """A bare trio task + channel start: open a channel, start a task that parks on
    it; per unit, until every task has started and parked."""

    async def parked(recv: trio.MemoryReceiveChannel[int]) -> None:
        await recv.receive()

    async with trio.open_nursery() as nursery:
        t0 = time.perf_counter()
        sends = []
        for _ in range(TRIO_TASK_N):
            send, recv = trio.open_memory_channel[int](0)
            nursery.start_soon(parked, recv)
            sends.append(send)
        await trio.testing.wait_all_tasks_blocked()
        dt = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return {"trio_task_start_us": dt / TRIO_TASK_N * 1e6}


FIGURES: dict[str, Callable[[], dict[str, float]]] = {
    "tell": lambda: trio.run(gr_tell),
    "pykka": pykka_tell,
    "trio_nowait": lambda: trio.run(trio_nowait),
    "ask": lambda: trio.run(gr_ask),
    "trio_pingpong": lambda: trio.run(trio_pingpong),
    "idle_100k": lambda: trio.run(gr_idle, 100_000),
    "idle_1m": lambda: trio.run(gr_idle, 1_000_000),
    "restart": lambda: trio.run(gr_restart),
    "trio_task": lambda: trio.run(trio_task_start),
    "pykka_start": pykka_start,
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


def collect(names: list[str]) -> dict[str, Any]:
    r: dict[str, Any] = {}
    for name in names:
        fig = run_figure(name)
        if name.startswith("idle_"):
            r[f"{name}_bytes"] = fig["bytes"]
            r[f"{name}_tasks"] = fig["tasks"]
            if name == "idle_100k":
                r["spawn_us"] = fig["spawn_us"]
        else:
            r.update(fig)
    r["idle_actor_bytes"] = r["idle_1m_bytes"]
    return r


def rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, greenroom, reference, ratio, target, met) for each line of the table."""

    def row(
        name: str, mine: float, ref_name: str, ref: float, fmt: str, target: float | None, up: bool
    ) -> tuple[str, str, str, str, str, str]:
        ratio = mine / ref
        goal = "" if target is None else f"{'>=' if up else '<='} {target:g}x"
        met = (
            ""
            if target is None
            else ("yes" if (ratio >= target if up else ratio <= target) else "NO")
        )
        return (name, format(mine, fmt), f"{ref_name} {ref:{fmt}}", f"{ratio:.2f}x", goal, met)

    tell, ask = r["tell_msgs_per_s"], r["ask_p50_us"]
    return [
        row("tell (msg/s)", tell, "pykka", r["pykka_tell_msgs_per_s"], ",.0f", 5.0, True),
        row(
            "tell (msg/s)", tell, "trio send_nowait", r["trio_nowait_msgs_per_s"], ",.0f", 0.5, True
        ),
        row("ask p50 (us)", ask, "trio ping-pong", r["trio_pingpong_p50_us"], ",.1f", 1.0, False),
        row("ask p50 (us)", ask, "pykka ask", r["pykka_ask_p50_us"], ",.1f", None, False),
        row("idle actor, key+ref, 1M (B)", r["idle_1m_bytes"], "1 KB", 1024, ",.0f", 1.0, False),
        row(
            "idle actor, key+ref, 100k (B)", r["idle_100k_bytes"], "1 KB", 1024, ",.0f", 1.0, False
        ),
        row(
            "spawn (us)",
            r["spawn_us"],
            "trio task+channel",
            r["trio_task_start_us"],
            ",.2f",
            None,
            False,
        ),
        row("spawn (us)", r["spawn_us"], "pykka start", r["pykka_start_us"], ",.2f", None, False),
        row(
            "restart, no backoff (us)",
            r["restart_us"],
            "trio task+channel",
            r["trio_task_start_us"],
            ",.1f",
            None,
            False,
        ),
        row(
            "restart, no backoff (us)",
            r["restart_us"],
            "pykka start",
            r["pykka_start_us"],
            ",.1f",
            None,
            False,
        ),
    ]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--figure", choices=sorted(FIGURES))
    args = p.parse_args()
    if args.figure:
        configure()
        print(json.dumps(FIGURES[args.figure]()))
        return
    r = collect(list(FIGURES))
    head = ("figure", "greenroom", "reference (same run)", "ratio", "target", "met")
    table = [head, *rows(r)]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for line in table:
        print(
            "  ".join(
                cell.ljust(w) if i != 1 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
    notes = (
        f"ask p99 {r['ask_p99_us']:,.1f} us; restart p99 {r['restart_p99_us']:,.1f} us; "
        f"tasks held by 1,000 idle actors: {r['idle_1m_tasks']} (1M), {r['idle_100k_tasks']} (100k)"
    )
    print(notes)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))


if __name__ == "__main__":
    main()
