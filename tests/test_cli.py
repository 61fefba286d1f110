"""`greenroom` as a real process: run until SIGTERM, clean exit; bad config in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from tests.runkit import JsonLog

ROOT = Path(__file__).resolve().parents[1]
GREENROOM = [sys.executable, str(ROOT / "bin" / "greenroom")]


def env(**extra: str) -> dict[str, str]:
    # Nothing of the caller's configuration leaks in (a DATABASE_URL would move
    # the test off its temporary SQLite file).
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GREENROOM_") and k != "DATABASE_URL"
    }
    # Port 0: the HTTP door binds any free port (it logs http_listening with it),
    # so test processes never fight over 8080.
    return {**clean, "PYTHONPATH": str(ROOT), "GREENROOM_HTTP_PORT": "0", **extra}


async def start_run(nursery: trio.Nursery, tmp_path: Path, **extra: str) -> trio.Process:
    """`greenroom run` on ``tmp_path`` as a child of ``nursery``, JSON logs on its
    stderr (a pipe), ``extra`` in its environment."""
    proc: trio.Process = await nursery.start(
        lambda **kw: trio.run_process(
            [*GREENROOM, "--data-dir", str(tmp_path), "run"],
            stderr=subprocess.PIPE,
            check=False,
            env=env(GREENROOM_LOG__FORMAT="json", **extra),
            **kw,
        )
    )
    return proc


async def run_until_started(
    tmp_path: Path, while_running: object = None, **extra: str
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Start `greenroom run`, wait for `started`, call ``while_running(pid)`` (in a
    thread), then SIGTERM it and check it exits 0; return the log events up to
    `started` and from there to `stopped`."""
    async with trio.open_nursery() as nursery:
        proc = await start_run(nursery, tmp_path, **extra)
        assert proc.stderr is not None
        log = JsonLog(proc.stderr)
        await log.wait("started")
        events = list(log.events)
        if callable(while_running):
            await trio.to_thread.run_sync(while_running, proc.pid)
        proc.send_signal(signal.SIGTERM)
        await log.wait("stopped")
        stopped = log.events[len(events) :]
        assert await proc.wait() == 0
    return events, stopped


async def test_run_starts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """`greenroom run` starts the tree, says which doors are off, and on SIGTERM
    stops the tree in order and exits 0."""
    started, stopped = await run_until_started(tmp_path)
    doors = {e["door"] for e in started if e["event"] == "door_not_started"}
    assert doors == {"telegram", "nostr", "lnbits"}
    # root, storage, brain, users, connectors, connectors/http, reconciler, debug
    assert [e["actors"] for e in started if e["event"] == "started"] == [8]
    assert [e["signal"] for e in stopped if e["event"] == "stopping"] == ["SIGTERM"]
    assert tmp_path.is_dir()


def test_bad_config_is_one_line_and_non_zero(tmp_path: Path) -> None:
    """An invalid setting gives one line naming the setting and value, exit 2."""
    out = subprocess.run(
        [*GREENROOM, "check-config"],
        capture_output=True,
        text=True,
        env=env(GREENROOM_HTTP_PORT="99999"),
        check=False,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert "http.port" in out.stderr and "99999" in out.stderr


def test_check_config_masks_secrets() -> None:
    """check-config prints the effective config with every secret masked."""
    out = subprocess.run(
        [*GREENROOM, "check-config"],
        capture_output=True,
        text=True,
        env=env(TELEGRAM_BOT_TOKEN="123456:very-secret-token"),
        check=True,
    )
    assert "very-secret-token" not in out.stdout
    assert json.loads(out.stdout)["telegram_bot_token"] == "***"
