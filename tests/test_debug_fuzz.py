"""Fuzzing the live debug socket (issue 4): hypothesis-generated frames (random
bytes, truncated frames, wrong field types, huge declared lengths, non-map
msgpack, plausible requests with random fields) never take the server down.

Each example is one connection: the bytes are written, the client half-closes,
and everything the server answers is read until it closes. Every answer must
be a well-formed response; afterwards `tree` still works and the process is
alive. ``kill`` is never generated: it would (rightly) fail real actors.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import FRAME_HEADER, decode, encode
from supervision.debug import ErrorKind
from supervision.debug._ops import OPS
from tests.debugkit import Live, start

KINDS = set(get_args(ErrorKind))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("fuzz"))
    yield server
    assert server.stop() == 0


def framed(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload)) + payload


scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text()
values = st.recursive(
    scalars | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` four times in five, else ``bad`` (a wrong type, random text...)."""
    # Hypothesis favours small integers, so 0..3 are the common case.
    return st.integers(0, 4).flatmap(lambda k: bad if k == 4 else good)


paths = st.sampled_from(["/", "/debug", "/users", "/connectors", "/users/fuzz:1", "/nope"])
ops = st.sampled_from(sorted(OPS - {"kill"}))
requests = st.fixed_dictionaries(
    {
        "id": mostly(st.integers(0, 2**31), values),
        "op": mostly(ops, st.text(max_size=10).filter(lambda s: s != "kill")),
    },
    optional={
        "path": mostly(paths, st.text(max_size=12) | values),
        "type": mostly(st.sampled_from(["kernel.Ping", "kernel.Pong", "no.Such"]), values),
        "body": mostly(
            st.fixed_dictionaries({}, optional={"note": mostly(st.text(), values)}), values
        ),
        "timeout_s": mostly(st.floats(0.001, 0.5), values),
        "limit": mostly(st.integers(-5, 50), values),
        "token": values,
    },
)
request_frames = requests.map(lambda r: framed(encode(r)))
non_map_frames = (scalars | st.lists(scalars, max_size=4)).map(lambda v: framed(encode(v)))
junk_frames = st.binary(max_size=64).map(framed)
huge_frames = st.integers((1 << 20) + 1, 2**32 - 1).map(lambda n: FRAME_HEADER.pack(n) + b"\x80")
whole = st.integers(0, 9).flatmap(
    lambda k: (request_frames, request_frames, non_map_frames, junk_frames, huge_frames)[k // 2]
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """One to three frames, the last possibly cut short, or plain random bytes."""
    if draw(st.integers(0, 9)) == 9:
        return draw(st.binary(max_size=200))
    data = b"".join(draw(st.lists(whole, min_size=1, max_size=3)))
    if draw(st.integers(0, 3)) == 3:
        data = data[: draw(st.integers(0, len(data)))]
    return data


def exchange(live: Live, data: bytes) -> list[Any]:
    """Send ``data``, half-close, and return every response until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)  # hang guard only
        sock.connect(str(live.socket))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    responses = []
    while received:
        (length,) = FRAME_HEADER.unpack_from(received)
        responses.append(decode(received[4 : 4 + length]))
        received = received[4 + length :]
    return responses


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=streams())
def test_fuzzed_frames_get_well_formed_answers(live: Live, data: bytes) -> None:
    """Whatever arrives, each answer is a response map with a known error kind."""
    for response in exchange(live, data):
        assert isinstance(response, dict) and set(response) >= {"id", "ok"}, response
        if response["ok"] is False:
            assert response["error"]["kind"] in KINDS, response
            assert response["error"]["kind"] != "internal", response
        else:
            assert "result" in response


def test_server_survives_the_fuzzing(live: Live) -> None:
    """After the fuzzing (this module's other test) the process is alive and
    still answers `tree`; nothing was logged as a connection or request bug."""
    tree = framed(encode({"id": 1, "op": "tree"}))
    [response] = exchange(live, tree)
    assert response["ok"] and response["result"]["path"] == "/"
    assert live.proc.poll() is None
    bugs = {"debug_connection_error", "debug_request_error", "debug_unencodable_result"}
    assert not [e for e in live.events if e.get("event") in bugs]
    assert not [e for e in live.events if e.get("event") == "actor_failed"]
