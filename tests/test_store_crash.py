"""Crash safety with a real process: SIGKILL at a random moment loses no acknowledged ingest.

A child process (``tests/crash_child.py``) ingests from 8 producers with group
commit while a worker claims jobs and finishes half of them. After a random
number of acknowledged ingests it is killed with SIGKILL. Then, like
``greenroom run`` at start, the store is reopened and ``recover()`` runs:
every message whose ingest had returned is there exactly once, and every job
is done or queued again (none left running).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import trio

from protocols import Inbound
from storage import open_store

CHILD = Path(__file__).with_name("crash_child.py")


async def test_sigkill_loses_no_acknowledged_ingest(
    database_url: str | None, tmp_path: Path
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    kill_after = random.Random(seed).randint(50, 600)
    context = f"seed={seed} kill_after={kill_after}"
    acked: list[tuple[int, int]] = []
    done_jobs: set[int] = set()
    proc = await trio.lowlevel.open_process(
        [sys.executable, str(CHILD), database_url or "-", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        buffer = b""
        with trio.fail_after(120):
            while len(acked) < kill_after:
                chunk = await proc.stdout.receive_some()
                assert chunk, f"child exited early ({context}), rc={await proc.wait()}"
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    match line.split():
                        case [b"ingested", p, n]:
                            acked.append((int(p), int(n)))
                        case [b"done", job]:
                            done_jobs.add(int(job))
        proc.send_signal(signal.SIGKILL)  # mid-stream: whatever it was doing
    finally:
        proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    async with open_store(database_url, tmp_path) as store:
        _requeued, failed = await store.recover()
        assert failed == 0, context
        assert await store.recover() == (0, 0), f"jobs still running after recover ({context})"
        for p, n in acked:
            again = await store.ingest(
                Inbound(
                    platform="crash", chat_id=str(p), user_id=str(p), message_id=str(n), text=""
                )
            )
            assert not again.created, f"acknowledged ingest {p}/{n} was lost ({context})"
            assert again.message.text == f"{p}/{n}", context
            assert again.job.status in ("done", "queued"), (again.job, context)
            if again.job.id in done_jobs:
                assert again.job.status == "done", context
        for p in {p for p, _ in acked}:
            thread = await store.get_thread("crash", str(p))
            assert thread is not None
            texts = [m.text for m in await store.recent_messages(thread.id, limit=100_000)]
            assert len(texts) == len(set(texts)), f"a message stored twice ({context})"
