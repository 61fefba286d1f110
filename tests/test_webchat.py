"""The web chat in a real browser: headless Chromium (Debian's package) driven by
Playwright, against the in-process door with the scripted stand-in thread.

Skipped only when /usr/bin/chromium is missing and CI is not "true"; `make test`
installs it (ops/ensure-chromium.sh). Playwright's sync API runs in a worker
thread while this trio test serves the door.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.httpkit import open_door

CHROMIUM = Path("/usr/bin/chromium")
#: PEERS.md ("Browsers"): how Debian's chromium runs headless as root here.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Playwright's timeout for each wait in the page (a hang guard, not a sync point).
STEP_MS = 10_000

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip(
        "no /usr/bin/chromium (apt-get install -y chromium, or make test)", allow_module_level=True
    )


def browse(url: str, profile: Path) -> dict[str, Any]:
    """Load the chat, send a message, press OK on the ack, wait for the answer."""
    from playwright.sync_api import sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as pw:
        # A fresh profile directory: Playwright passes it as --user-data-dir.
        browser = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=FLAGS, headless=True
        )
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(url, timeout=STEP_MS)
            page.wait_for_selector("#status:text-matches('connected as http:')", timeout=STEP_MS)
            seen["token_kept"] = page.evaluate("!!localStorage.getItem('greenroom.session')")
            page.fill("#text", "what time is it?")
            page.click("#send")
            page.wait_for_selector(".msg.mine", timeout=STEP_MS)
            ack = page.wait_for_selector(".msg.ack", timeout=STEP_MS)
            assert ack is not None
            seen["ack"] = ack.inner_text()
            page.click(".msg.ack button.ok", timeout=STEP_MS)
            reply = page.wait_for_selector(".msg.reply", timeout=STEP_MS)
            assert reply is not None
            seen["reply"] = reply.inner_text()
            seen["outcome"] = page.inner_text(".msg.ack .outcome")
            seen["problems"] = problems
        finally:
            browser.close()
    return seen


async def test_webchat_message_ok_answer(tmp_path: Path) -> None:
    """A person loads /, types, sees the ack with an OK button, presses it, and sees
    the answer arrive; the page kept its session and raised no script error."""
    with trio.fail_after(60):
        async with open_door(tmp_path) as door:
            seen = await trio.to_thread.run_sync(browse, door.url, tmp_path / "profile")
            assert (await door.client.get(door.url + "/metrics")).status_code == 200
    assert seen["token_kept"] is True
    assert seen["ack"].startswith("Understood: what time is it? Will: answer it")
    assert seen["outcome"] == "approved"
    assert seen["reply"].startswith("the answer to ")
    assert seen["problems"] == []
    assert [r.text for r in door.script.received] == ["what time is it?"]
