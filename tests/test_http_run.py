"""The HTTP door in a real `greenroom run`: port 0, the http_listening line, the API."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests import debugkit


def test_greenroom_run_serves_the_http_door(tmp_path: Path) -> None:
    """`greenroom run` with GREENROOM_HTTP_PORT=0 logs where the door listens; a
    guest gets a session, a message is accepted (202) and the feed answers."""
    live = debugkit.start(tmp_path, wait="http_listening", GREENROOM_HTTP_PORT="0")
    try:
        where = live.wait_for("http_listening")
        assert where["host"] == "127.0.0.1" and where["actor"] == "/connectors/http"
        url = f"http://127.0.0.1:{where['port']}"
        with httpx.Client(base_url=url, timeout=debugkit.START_TIMEOUT_S) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            session = client.post("/api/session")
            assert session.status_code == 201, session.text
            auth = {"Authorization": f"Bearer {session.json()['token']}"}
            sent = client.post("/api/messages", json={"text": "hello"}, headers=auth)
            assert sent.status_code == 202, sent.text
            assert isinstance(sent.json()["id"], int)
            feed = client.get("/api/events", params={"after": 0, "wait": 0}, headers=auth)
            assert feed.status_code == 200 and isinstance(feed.json()["events"], list)
            page = client.get("/")
            assert page.status_code == 200 and "greenroom" in page.text
        # The token never reaches the log.
        assert not any(session.json()["token"].encode() in line for line in live.raw)
    finally:
        assert live.stop() == 0
    assert any(e.get("event") == "http_stopped" for e in live.events)
