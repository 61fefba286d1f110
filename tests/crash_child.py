"""The process the crash test kills: it ingests a stream of messages and works jobs.

``python tests/crash_child.py DATABASE_URL|- DATA_DIR``. Prints ``ready`` once
the store is open, then ``ingested <producer> <n>`` after each ``ingest``
returned (that is, once the message is durable) and ``done <job id>`` after a
job was finished. Runs until killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols import Inbound
from storage import open_store

PRODUCERS = 8


async def main(url: str | None, data_dir: Path) -> None:
    async with open_store(url, data_dir) as store:
        await store.recover()
        print("ready", flush=True)

        async def producer(p: int) -> None:
            n = 0
            while True:
                msg = Inbound(
                    platform="crash",
                    chat_id=str(p),
                    user_id=str(p),
                    message_id=str(n),
                    text=f"{p}/{n}",
                )
                await store.ingest(msg)
                print(f"ingested {p} {n}", flush=True)
                n += 1

        async def worker() -> None:
            # Finish every other job and leave the rest running: a kill then
            # finds jobs in every state.
            while True:
                for job in await store.claim_jobs(4):
                    if job.id % 2:
                        await store.finish_job(job.id, "done")
                        print(f"done {job.id}", flush=True)
                await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            for p in range(PRODUCERS):
                nursery.start_soon(producer, p)
            nursery.start_soon(worker)


if __name__ == "__main__":
    trio.run(main, None if sys.argv[1] == "-" else sys.argv[1], Path(sys.argv[2]))
