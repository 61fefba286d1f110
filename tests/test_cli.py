"""`greenroom` as a real process: run until SIGTERM, clean exit; bad config in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

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


async def read_events(proc: trio.Process, until: str) -> list[dict[str, object]]:
    """JSON log lines from the process's stderr up to the event ``until``."""
    assert proc.stderr is not None
    events: list[dict[str, object]] = []
    buf = b""
    with trio.fail_after(60):  # a hang guard for a real process, not a sync point
        while not any(e.get("event") == until for e in events):
            chunk = await proc.stderr.receive_some()
            assert chunk, f"greenroom exited before {until!r}: {events}"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            events += [json.loads(line) for line in lines if line.strip()]
    return events


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
        events = await read_events(proc, "started")
        if callable(while_running):
            await trio.to_thread.run_sync(while_running, proc.pid)
        proc.send_signal(signal.SIGTERM)
        stopped = await read_events(proc, "stopped")
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
