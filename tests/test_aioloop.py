"""The asyncio loop thread that hosts asyncpg: results, errors and cancellation."""

from __future__ import annotations

import asyncio

import pytest
import trio

from storage._aioloop import LoopThread


async def test_results_and_errors_cross_back_to_trio() -> None:
    loop = LoopThread()
    try:

        async def add(a: int, b: int) -> int:
            await asyncio.sleep(0)
            return a + b

        async def boom() -> None:
            raise KeyError("x")

        assert await loop.run(add, 2, 3) == 5
        with pytest.raises(KeyError):
            await loop.run(boom)
    finally:
        await loop.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await loop.run(add, 1, 1)


async def test_a_cancelled_caller_returns_only_after_the_asyncio_side_cleaned_up() -> None:
    """Regression: the caller used to see Cancelled at once while the asyncio task
    (a transaction) could still commit, racing the caller's next call."""
    loop = LoopThread()
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()
    log: list[str] = []

    async def slow() -> None:
        token.run_sync_soon(started.set)
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits, like a rollback
            log.append("cleaned up")

    try:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def caller() -> None:
                    await loop.run(slow)

                nursery.start_soon(caller)
                await started.wait()
                scope.cancel()
        assert log == ["cleaned up"]
        with trio.CancelScope() as already:
            already.cancel()
            await loop.run(slow)  # cancelled before it began: never starts
        assert log == ["cleaned up"]
    finally:
        await loop.aclose()
