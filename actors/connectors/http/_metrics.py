"""``GET /metrics``: the door's counters and the tree's health in Prometheus text format.

Format 0.0.4 (``# HELP``/``# TYPE`` lines, then ``name{label="v"} value``).
Per-actor series are emitted for the fixed part of the tree only; the children
of a :class:`~supervision.Directory` (one per user, possibly a million) are
summed into their directory's series, so the number of series stays bounded.

LLM calls, tokens and cost by model come from the token ledger (all-time sums,
so they only grow, as counters must, and survive restarts).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from supervision import ActorInfo, ActorSystem

__all__ = ["CONTENT_TYPE", "Counters", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The class names whose children are summed rather than listed one by one.
_KEYED = frozenset({"Directory"})


class Counters:
    """What the door counts itself. Plain ints: one trio loop, no locks needed."""

    __slots__ = (
        "deliveries",
        "messages_in",
        "rejected_busy",
        "responses",
        "sessions",
        "sessions_limited",
    )

    def __init__(self) -> None:
        self.messages_in = 0  # POST /api/messages accepted (202), duplicates excluded
        self.deliveries = 0  # Deliver handled: replies made visible to the web chat
        self.sessions = 0  # guest sessions created
        self.sessions_limited = 0  # POST /api/session refused with 429
        self.rejected_busy = 0  # 503s for a full mailbox or too many waiters
        # status code -> responses sent (every route, errors included)
        self.responses: collections.Counter[int] = collections.Counter()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, help_: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]
    return lines


def _actor_rows(root: ActorInfo) -> list[tuple[str, int, int, int | None]]:
    """(path, restarts, mailbox depth, live children or None) for the fixed tree;
    the fourth item is set for directories only."""
    rows: list[tuple[str, int, int, int | None]] = []
    stack = [root]
    while stack:
        info = stack.pop()
        if info.cls in _KEYED:
            kids = info.children
            rows.append(
                (
                    info.path,
                    info.restarts + sum(k.restarts for k in kids),
                    info.mailbox_depth + sum(k.mailbox_depth for k in kids),
                    len(kids),
                )
            )
            continue
        rows.append((info.path, info.restarts, info.mailbox_depth, None))
        stack.extend(reversed(info.children))
    return rows


LedgerRow = tuple[str, str, str, int, int, int, float]


def _llm(rows: list[LedgerRow] | None) -> list[str]:
    if rows is None:
        return []

    def labels(scope: str, provider: str, model: str, extra: str = "") -> str:
        return (
            f'{{scope="{_escape(scope)}",provider="{_escape(provider)}",'
            f'model="{_escape(model)}"{extra}}}'
        )

    lines = _family(
        "greenroom_llm_calls_total",
        "counter",
        "LLM calls in the token ledger.",
        [(labels(s, p, m), calls) for s, p, m, calls, _, _, _ in rows],
    )
    lines += _family(
        "greenroom_llm_tokens_total",
        "counter",
        "LLM tokens in the token ledger, by direction.",
        [(labels(s, p, m, ',direction="in"'), tin) for s, p, m, _, tin, _, _ in rows]
        + [(labels(s, p, m, ',direction="out"'), tout) for s, p, m, _, _, tout, _ in rows],
    )
    lines += _family(
        "greenroom_llm_cost_usd_total",
        "counter",
        "LLM cost in USD from the per-model price table.",
        [(labels(s, p, m), cost) for s, p, m, _, _, _, cost in rows],
    )
    return lines


def render(
    counters: Counters, system: ActorSystem, waiting: int, llm: list[LedgerRow] | None = None
) -> str:
    """The whole exposition, ending in a newline. Reads the tree from outside (a
    snapshot, no mailbox), so a stuck actor cannot stall a scrape. Not a checkpoint.

    The snapshot walks every live actor: O(actors), fine at a scrape every few
    seconds for the sizes this runs at today.
    """
    rows = _actor_rows(system.snapshot("/"))
    stats = system.stats()
    lines: list[str] = []
    lines += _family(
        "greenroom_http_messages_in_total",
        "counter",
        "Messages accepted by POST /api/messages (202), redeliveries excluded.",
        [("", counters.messages_in)],
    )
    lines += _family(
        "greenroom_http_messages_out_total",
        "counter",
        "Replies delivered to the web chat (chat.Deliver handled).",
        [("", counters.deliveries)],
    )
    lines += _family(
        "greenroom_http_sessions_total",
        "counter",
        "Guest sessions created by POST /api/session.",
        [("", counters.sessions)],
    )
    lines += _family(
        "greenroom_http_sessions_rate_limited_total",
        "counter",
        "POST /api/session refused with 429.",
        [("", counters.sessions_limited)],
    )
    lines += _family(
        "greenroom_http_busy_total",
        "counter",
        "Requests refused with 503 for backpressure (full mailbox, too many waiters).",
        [("", counters.rejected_busy)],
    )
    lines += _family(
        "greenroom_http_responses_total",
        "counter",
        "HTTP responses by status code.",
        [(f'{{code="{code}"}}', n) for code, n in sorted(counters.responses.items())],
    )
    lines += _family(
        "greenroom_http_waiters",
        "gauge",
        "Long-polls and event streams waiting right now.",
        [("", waiting)],
    )
    lines += _family(
        "greenroom_actor_restarts_total",
        "counter",
        "Restarts per actor; a directory's children are summed into it.",
        [(f'{{path="{_escape(p)}"}}', r) for p, r, _, _ in rows],
    )
    lines += _family(
        "greenroom_actor_mailbox_depth",
        "gauge",
        "Messages queued per actor; a directory's children are summed into it.",
        [(f'{{path="{_escape(p)}"}}', d) for p, _, d, _ in rows],
    )
    lines += _family(
        "greenroom_directory_live_actors",
        "gauge",
        "Live keyed children per directory.",
        [(f'{{path="{_escape(p)}"}}', n) for p, _, _, n in rows if n is not None],
    )
    lines += _family(
        "greenroom_actors",
        "gauge",
        "Live actors in the tree.",
        [("", stats["actors"])],
    )
    lines += _family(
        "greenroom_messages_processed_total",
        "counter",
        "Messages handled by all live actors.",
        [("", stats["processed"])],
    )
    lines += _family(
        "greenroom_dead_letters_total",
        "counter",
        "Messages that could not be delivered, by reason.",
        [(f'{{reason="{_escape(str(r))}"}}', n) for r, n in sorted(stats["dead_letters"].items())],
    )
    lines += _llm(llm)
    return "\n".join(lines) + "\n"
