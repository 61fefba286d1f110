"""``greenroom ctl``: the debug socket's command-line client, and how it renders.

``tree`` is drawn like ``pstree``, one line per actor; the other commands
print small tables; ``--json`` prints the raw results for scripts (``watch``:
one JSON object per line). Every failure (no socket, nothing listening, a
refused request) is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ._client import DebugClient
from ._errors import CtlError
from ._plain import node_name

__all__ = ["COMMANDS", "ctl", "render_tree"]

#: Command name -> debug op.
COMMANDS = {
    "tree": "tree",
    "inspect": "inspect",
    "types": "types",
    "inject": "inject",
    "ask": "ask",
    "kill": "kill",
    "dead-letters": "dead_letters",
    "stats": "stats",
    "watch": "watch",
}
_FLAGGED = ("failed", "backoff")
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _Usage(CtlError):
    """Bad command-line input (exit status 2)."""


def ctl(
    command: str,
    *,
    socket_path: Path | None = None,
    tcp: str | None = None,
    token: str | None = None,
    as_json: bool = False,
    path: str | None = None,
    type_name: str | None = None,
    body: str | None = None,
    reason: str | None = None,
    limit: int | None = None,
    timeout_s: float | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one ``greenroom ctl`` command and return the exit status.

    Connects to ``socket_path`` (or to loopback ``tcp`` with ``token``),
    sends the op, and renders the result to ``stdout`` (``as_json``: raw
    JSON). On any failure writes one line ``greenroom ctl: ...`` to
    ``stderr`` and returns 1 (2 for bad input such as invalid JSON). ``watch``
    prints events until Ctrl-C, then returns 0.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        op = COMMANDS.get(command)
        if op is None:
            raise _Usage(f"unknown command {command!r}; one of: {', '.join(COMMANDS)}")
        params = _params(op, path, type_name, body, reason, limit, timeout_s)
        wait = None if op == "watch" else max(30.0, (timeout_s or 0.0) + 5.0)
        if tcp is not None:
            client = DebugClient.tcp(tcp, token or "", timeout_s=wait)
        else:
            if socket_path is None:
                raise _Usage("no debug socket given (--socket or --data-dir)")
            client = DebugClient.unix(socket_path, timeout_s=wait)
        with client:
            if op == "watch":
                return _watch(client, as_json, out)
            result = client.request(op, **params)
    except _Usage as exc:
        err.write(f"greenroom ctl: {exc}\n")
        return EXIT_USAGE
    except CtlError as exc:
        err.write(f"greenroom ctl: {_one_line(str(exc))}\n")
        return EXIT_ERROR
    if as_json:
        out.write(json.dumps(result, indent=2, default=str) + "\n")
    else:
        out.write("".join(line + "\n" for line in _render(op, result)))
    return EXIT_OK


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _params(
    op: str,
    path: str | None,
    type_name: str | None,
    body: str | None,
    reason: str | None,
    limit: int | None,
    timeout_s: float | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if op in ("inspect", "types", "inject", "ask", "kill") or (op == "tree" and path):
        if not path:
            raise _Usage(f"{op} needs a PATH")
        params["path"] = path
    if op in ("inject", "ask"):
        if not type_name:
            raise _Usage(f"{op} needs a TYPE")
        try:
            params["body"] = json.loads(body) if body else {}
        except json.JSONDecodeError as exc:
            raise _Usage(f"BODY is not valid JSON: {exc}") from None
        params["type"] = type_name
        if timeout_s is not None:
            params["timeout_s"] = timeout_s
    if op == "kill" and reason:
        params["reason"] = reason
    if op == "dead_letters" and limit is not None:
        params["limit"] = limit
    return params


def _watch(client: DebugClient, as_json: bool, out: TextIO) -> int:
    try:
        for event in client.stream("watch"):
            if not isinstance(event, dict):
                continue
            if event.get("event") == "subscribed":
                if not as_json:
                    out.write("watching tree events (Ctrl-C to stop)\n")
            elif as_json:
                out.write(json.dumps(event, default=str) + "\n")
            else:
                error = f"  {event['error']}" if event.get("error") else ""
                out.write(
                    f"{_clock(event.get('at'))}  {event.get('event', '?'):<11} "
                    f"{event.get('path')}{error}\n"
                )
            out.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


# --------------------------------------------------------------------------- rendering


def _clock(at: Any) -> str:
    if not isinstance(at, int | float):
        return "?"
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _pairs(items: Iterable[tuple[str, Any]]) -> list[str]:
    items = list(items)
    width = max((len(k) for k, _ in items), default=0)
    return [f"{k.ljust(width)}  {v}" for k, v in items]


def render_tree(root: dict[str, Any]) -> list[str]:
    """The ``tree`` result as ``pstree``-style lines: name, class, state,
    mailbox depth/capacity, restarts, owned tasks; failed actors flagged
    ``!!`` with their last error. A node without ``name`` (an
    ``ActorInfo.to_dict()`` tree) is labelled with the last part of its ``path``."""
    labelled: list[tuple[str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], lead: str, branch: str) -> None:
        labelled.append((lead + branch + _label(node), node))
        kids = node.get("children") or []
        below = lead + ("" if not branch else "    " if branch.startswith("└") else "│   ")
        for i, kid in enumerate(kids):
            walk(kid, below, "└── " if i == len(kids) - 1 else "├── ")

    walk(root, "", "")
    rows = []
    for label, node in labelled:
        state = str(node.get("state", "?"))
        flagged = state in _FLAGGED
        extra = f"tasks {node['tasks']}" if node.get("tasks") else ""
        error = node.get("last_error")
        if flagged:
            extra = f"{extra}  !! {error or state}".strip()
        elif error:
            extra = f"{extra}  last error: {error}".strip()
        rows.append(
            [
                label,
                node.get("class", "?"),
                state.upper() if flagged else state,
                f"mailbox {node.get('mailbox_depth', 0)}/{node.get('mailbox_capacity', 0)}",
                f"restarts {node.get('restarts', 0)}",
                extra,
            ]
        )
    return _table([""] * 6, rows)[1:]  # no header row: pstree has none


def _label(node: dict[str, Any]) -> str:
    name, path = node.get("name"), node.get("path")
    if name is None and isinstance(path, str):
        return node_name(path)
    return str(name if name is not None else "?")


def _render_inspect(info: dict[str, Any]) -> list[str]:
    error = info.get("last_error")
    times = [_clock(t) for t in info.get("restart_times") or []]
    lines = _pairs(
        [
            ("path", info.get("path")),
            ("class", info.get("class")),
            ("state", info.get("state")),
            ("dispatcher", info.get("dispatcher")),
            ("mailbox", f"{info.get('mailbox_depth')}/{info.get('mailbox_capacity')}"),
            ("processed", info.get("processed")),
            ("restarts", info.get("restarts")),
            ("restart times", ", ".join(times) or "-"),
            ("tasks", ", ".join(info.get("task_names") or []) or "-"),
            ("children", ", ".join(info.get("children") or []) or "-"),
            ("accepts", ", ".join(info.get("accepts") or []) or "-"),
            ("last error", f"{error['type']}: {error['message']}" if error else "-"),
        ]
    )
    if error and error.get("traceback"):
        lines += ["", f"traceback (at {_clock(error.get('at'))}):"]
        lines += ["  " + line for line in str(error["traceback"]).rstrip().splitlines()]
    return lines


def _render_types(result: dict[str, Any]) -> list[str]:
    lines = [f"{result.get('path')} ({result.get('class')}) accepts:"]
    types = result.get("types") or []
    if not types:
        lines.append("  (no message types declared)")
    for entry in types:
        lines.append(f"  {entry.get('type')}")
        schema = entry.get("schema") or {}
        required = set(schema.get("required", []))
        fields = []
        for name, prop in (schema.get("properties") or {}).items():
            kind = prop.get("type") or prop.get("$ref") or "any"
            default = (
                "required" if name in required else f"default {json.dumps(prop.get('default'))}"
            )
            fields.append([f"    {name}", kind, default])
        lines += _table(["", "", ""], fields)[1:] if fields else []
    return lines


def _render(op: str, result: Any) -> list[str]:
    match op:
        case "tree":
            return render_tree(result)
        case "inspect":
            return _render_inspect(result)
        case "types":
            return _render_types(result)
        case "inject":
            return [f"delivered {result['type']} to {result['path']}"]
        case "ask":
            return [f"{result['path']} replied: {json.dumps(result['reply'], default=str)}"]
        case "kill":
            return [f"killed {result['path']} ({result['reason']})"]
        case "dead_letters":
            if not result:
                return ["no dead letters"]
            rows = [
                [_clock(d["at"]), d["path"], d["reason"], d["type"], d["message"]] for d in result
            ]
            return _table(["AT", "PATH", "REASON", "TYPE", "MESSAGE"], rows)
        case "stats":
            lag = result.get("loop_lag_ms") or {}
            mib = result.get("rss_bytes", 0) / (1 << 20)
            return _pairs(
                [
                    ("pid", result.get("pid")),
                    ("uptime", f"{result.get('uptime_s', 0):.1f} s"),
                    ("actors", result.get("actors")),
                    ("processed", result.get("processed")),
                    ("messages/s", f"{result.get('messages_per_s', 0):.1f}"),
                    ("queued", result.get("queued")),
                    ("dead letters", json.dumps(result.get("dead_letters"))),
                    ("memory (RSS)", f"{mib:.1f} MiB"),
                    ("loop lag", f"{lag.get('last', 0):.2f} ms (max {lag.get('max', 0):.2f} ms)"),
                    ("debug connections", result.get("debug_connections")),
                ]
            )
    return [json.dumps(result, indent=2, default=str)]
