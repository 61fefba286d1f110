"""The debug socket's operations, as plain request maps in and plain data out.

Every op reads kernel bookkeeping from outside, through the kernel's public
introspection (``ActorSystem.snapshot``, ``inspect``, ``children``,
``accepts``, ``task_names``, ``stats``), never through the target's mailbox,
so a stuck actor is still visible, injectable (its mailbox fills, then
``inject`` times out) and killable. Times in results are Unix epoch seconds
(the kernel's virtual ``trio.current_time()`` converted with the system's
start time).

Bad input raises :class:`DebugError` with the wire error kind; nothing here
lets a malformed request escape as another exception.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import structlog
import trio

from protocols import REGISTRY, InvalidBody, Message, Registry, UnknownType
from supervision import (
    ActorFailed,
    ActorInfo,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    EntityRef,
    TreeEvent,
    UnknownPath,
)

from ._errors import DebugError
from ._listen import Peer
from ._metrics import LoopLag, Throughput, rss_bytes
from ._plain import node_name, plain, short_repr, type_name

__all__ = ["OPS", "AuditHook", "Ops"]

AuditHook: TypeAlias = Callable[[dict[str, Any]], Awaitable[None]]
"""``async def audit(record) -> None``, called before each inject, ask and kill
is carried out; raising refuses the action. See :class:`Ops` for the record's
keys and the full contract."""

#: Every op a request may name (``hello`` authenticates TCP; ``watch`` streams).
OPS = frozenset(
    {"hello", "tree", "inspect", "types", "inject", "ask", "kill", "dead_letters", "stats", "watch"}
)
DEFAULT_DEAD_LETTERS = 50
MAX_TIMEOUT_S = 3600.0

T = TypeVar("T")

_log = structlog.get_logger("greenroom.debug")


# --------------------------------------------------------------------------- request fields


def _str(req: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = req.get(key, default)
    if not isinstance(value, str):
        missing = key not in req
        raise DebugError(
            "bad_frame",
            f"{req.get('op')} needs {key!r} (a string)"
            + ("" if missing else f", not {type(value).__name__}"),
        )
    return value


def _timeout(req: Mapping[str, Any], default: float) -> float:
    value = req.get("timeout_s", default)
    if value is None:
        value = default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0 < value <= MAX_TIMEOUT_S)
        or math.isnan(value)
    ):
        raise DebugError(
            "bad_frame", f"timeout_s must be a number in (0, {MAX_TIMEOUT_S:g}], not {value!r}"
        )
    return float(value)


def _limit(req: Mapping[str, Any], capacity: int) -> int:
    value = req.get("limit", DEFAULT_DEAD_LETTERS)
    if value is None:
        value = DEFAULT_DEAD_LETTERS
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DebugError("bad_frame", f"limit must be an int >= 0, not {value!r}")
    return min(value, capacity)


# --------------------------------------------------------------------------- ops


class Ops:
    """The ops of one debug server, over one actor system.

    ``audit`` receives one record per ``inject``, ``ask`` and ``kill`` that
    passed validation, *before* the action is taken, with the keys ``at``
    (Unix time), ``op``, ``path``, ``type`` (registered message type name or
    None), ``reason`` (kill's reason or None), ``request_id`` and ``peer``
    (``{"transport": "unix", "pid", "uid", "gid"}`` or ``{"transport":
    "tcp", "address"}``; fields the OS does not give are absent). Message
    bodies are never included (they may hold user text). The hook must not
    keep the dict past the call without copying it. If the hook raises, the
    action is not taken and the request fails with ``internal``; a slow hook
    delays only that request; cancellation (the server stopping) abandons the
    request. Each record is also logged as a ``debug_audit`` line, so with
    ``audit=None`` the log is the audit trail.

    ``kill`` of ``/`` is allowed: the root fails and the process ends with
    status 1, as any root failure does.
    """

    def __init__(
        self,
        system: ActorSystem,
        *,
        audit: AuditHook | None = None,
        lag: LoopLag | None = None,
        registry: Registry = REGISTRY,
    ) -> None:
        self.system = system
        self.audit_hook = audit
        self.lag = lag
        self.registry = registry
        self.connections = 0
        self._throughput = Throughput(system.stats()["processed"], trio.current_time())
        self._handlers: dict[str, Callable[[Mapping[str, Any], Peer], Awaitable[Any]]] = {
            "hello": self._hello,
            "tree": self._tree,
            "inspect": self._inspect,
            "types": self._types,
            "inject": self._inject,
            "ask": self._ask,
            "kill": self._kill,
            "dead_letters": self._dead_letters,
            "stats": self._stats,
        }

    async def handle(self, req: Mapping[str, Any], peer: Peer) -> Any:
        """Run the (non-streaming) op ``req["op"]`` and return its result.

        Raises :class:`DebugError` for bad input; an ask waits at most its
        ``timeout_s``. Cancelling it abandons the request (an ask's reply slot
        is withdrawn by the kernel).
        """
        op = req.get("op")
        handler = self._handlers.get(op) if isinstance(op, str) else None
        if handler is None:
            raise DebugError("unknown_op", f"unknown op {short_repr(op)}")
        return await handler(req, peer)

    def wall(self, t: float) -> float:
        """A kernel time (``trio.current_time()``) as Unix epoch seconds."""
        return self.system.started_wall + (t - self.system.started_at)

    def event(self, event: TreeEvent) -> dict[str, Any]:
        """A tree event as a ``watch`` result."""
        return {
            "event": event.kind,
            "path": event.path,
            "at": self.wall(event.at),
            "error": event.error,
        }

    # ------------------------------------------------------------------ lookup
    def _read(self, read: Callable[[str], T], path: str) -> T:
        """``read(path)``, one of the system's introspection calls, with
        ``UnknownPath`` as the wire's ``unknown_path``."""
        try:
            return read(path)
        except UnknownPath:
            raise DebugError("unknown_path", f"no actor at {path!r}") from None

    def _target(self, path: str) -> ActorRef:
        """The live actor at ``path``; a Directory child is activated if needed,
        as any message to it would (that is how ``/users/<key>`` is reached)."""
        try:
            return self.system.lookup(path)
        except UnknownPath:
            pass
        unknown = DebugError("unknown_path", f"no actor at {path!r}")
        parent_path, _, key = path.rpartition("/")
        try:
            entity = EntityRef(self.system.lookup(parent_path or "/"), key)
        except (UnknownPath, TypeError, ValueError):  # no parent, not a Directory, a bad key
            raise unknown from None
        try:
            return entity.resolve()
        except (ValueError, ActorStopped):
            raise unknown from None

    def _message(self, req: Mapping[str, Any]) -> tuple[str, Message]:
        name = _str(req, "type")
        body = req.get("body", {})
        try:
            return name, self.registry.validate(name, body)
        except UnknownType:
            raise DebugError("unknown_type", f"unknown message type {name!r}") from None
        except InvalidBody as exc:
            raise DebugError("invalid_body", str(exc), field=exc.field) from None

    async def _audit(self, req: Mapping[str, Any], peer: Peer, **what: Any) -> None:
        record = {
            "at": self.wall(trio.current_time()),
            "op": req["op"],
            "path": None,
            "type": None,
            "reason": None,
            **what,
            "request_id": req.get("id"),
            "peer": peer.to_dict(),
        }
        # Always a log line too: operators read logs, and a refused action
        # (failing hook) is then still on record.
        _log.info("debug_audit", **record)
        if self.audit_hook is None:
            return
        try:
            await self.audit_hook(record)
        except Exception as exc:
            _log.error("debug_audit_failed", op=record["op"], path=record["path"], error=repr(exc))
            raise DebugError("internal", f"audit failed, {req['op']} not done: {exc}") from None

    # ------------------------------------------------------------------ read-only ops
    async def _hello(self, req: Mapping[str, Any], peer: Peer) -> Any:
        return {"hello": True}

    def _node(self, info: ActorInfo) -> dict[str, Any]:
        return {
            "path": info.path,
            "name": node_name(info.path),
            "class": info.cls,
            "state": info.state,
            "dispatcher": info.dispatcher,
            "mailbox_depth": info.mailbox_depth,
            "mailbox_capacity": info.mailbox_capacity,
            "processed": info.processed,
            "restarts": info.restarts,
            "last_error": info.last_error.summary() if info.last_error else None,
            "tasks": info.tasks,
            "children": [self._node(child) for child in info.children],
        }

    async def _tree(self, req: Mapping[str, Any], peer: Peer) -> Any:
        return self._node(self._read(self.system.snapshot, _str(req, "path", "/")))

    async def _inspect(self, req: Mapping[str, Any], peer: Peer) -> Any:
        path = _str(req, "path")
        out = self._read(self.system.inspect, path).to_dict()
        out["restart_times"] = [self.wall(t) for t in out["restart_times"]]
        if out["last_error"] is not None:
            out["last_error"]["at"] = self.wall(out["last_error"]["at"])
        out["children"] = self.system.children(path)
        out["accepts"] = [entry["type"] for entry in self._accepts(self.system.accepts(path))]
        out["task_names"] = self.system.task_names(path)
        return out

    def _accepts(self, models: tuple[type, ...]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for model in models:
            try:
                name = self.registry.name_of(model)
            except (UnknownType, TypeError):
                out.append({"type": f"{model.__module__}.{model.__qualname__}", "schema": None})
            else:
                out.append({"type": name, "schema": self.registry.json_schema(name)})
        return out

    async def _types(self, req: Mapping[str, Any], peer: Peer) -> Any:
        path = _str(req, "path")
        info = self._read(self.system.inspect, path)
        types = self._accepts(self.system.accepts(path))
        return {"path": info.path, "class": info.cls, "types": types}

    async def _dead_letters(self, req: Mapping[str, Any], peer: Peer) -> Any:
        letters = self.system.dead_letters
        limit = _limit(req, len(letters))
        return [
            {
                "path": d.path,
                "reason": d.reason,
                "type": type_name(d.message, self.registry),
                "message": short_repr(d.message),
                "at": self.wall(d.at),
            }
            for d in letters.recent(limit)
        ]

    async def _stats(self, req: Mapping[str, Any], peer: Peer) -> Any:
        kernel = self.system.stats()
        now = trio.current_time()
        return {
            "pid": os.getpid(),
            "uptime_s": kernel["uptime_s"],
            "actors": kernel["actors"],
            "processed": kernel["processed"],
            "messages_per_s": self._throughput.rate(kernel["processed"], now),
            "queued": kernel["queued"],
            "dead_letters": kernel["dead_letters"],
            "events_dropped": kernel["events_dropped"],
            "rss_bytes": rss_bytes(),
            "loop_lag_ms": None
            if self.lag is None
            else {"last": self.lag.last_s * 1000, "max": self.lag.max_s * 1000},
            "debug_connections": self.connections,
        }

    # ------------------------------------------------------------------ acting ops
    async def _delivery(
        self, req: Mapping[str, Any], peer: Peer
    ) -> tuple[ActorRef, str, Message, float]:
        """Validate an inject/ask (path, timeout, type and body), audit it, and
        return where it goes and what."""
        path = _str(req, "path")
        timeout = _timeout(req, self.system.ask_timeout_s or 5.0)
        name, msg = self._message(req)
        ref = self._target(path)
        await self._audit(req, peer, path=ref.path, type=name)
        return ref, name, msg, timeout

    async def _inject(self, req: Mapping[str, Any], peer: Peer) -> Any:
        ref, name, msg, timeout = await self._delivery(req, peer)
        with trio.move_on_after(timeout):
            await ref.tell(msg)
            return {"path": ref.path, "type": name, "delivered": True}
        raise DebugError("timeout", f"mailbox of {ref.path} stayed full for {timeout:g}s")

    async def _ask(self, req: Mapping[str, Any], peer: Peer) -> Any:
        ref, name, msg, timeout = await self._delivery(req, peer)
        try:
            reply = await ref.ask(msg, timeout=timeout)
        except AskTimeout:
            raise DebugError("timeout", f"no reply from {ref.path} within {timeout:g}s") from None
        except ActorFailed as exc:
            raise DebugError(
                "actor_failed",
                f"{ref.path} failed handling {name}: {type(exc.cause).__name__}: {exc.cause}",
            ) from None
        except ActorStopped:
            raise DebugError("unknown_path", f"{ref.path} stopped before replying") from None
        return {"path": ref.path, "type": name, "reply": plain(reply, self.registry)}

    async def _kill(self, req: Mapping[str, Any], peer: Peer) -> Any:
        path = _str(req, "path")
        reason = _str(req, "reason", "killed by operator")
        path = self._read(self.system.lookup, path).path
        await self._audit(req, peer, path=path, reason=reason)
        try:
            before = self.system.inspect(path).state
            self.system.kill(path, reason)
        except UnknownPath:
            raise DebugError("unknown_path", f"{path} stopped before the kill") from None
        return {"path": path, "reason": reason, "state_before": before}
