"""``/brain``: the brain's place in the tree, for operators and readiness probes.

The Brain itself is plain object shared by the actors that call it (an LLM
call runs as a task of the calling user actor, DESIGN.md "Actors and refs"),
so this actor only reports: ``ask /brain kernel.Ping`` answers with the
configured models and their breaker states. It owns nothing: ``greenroom
run`` builds the Brain before the tree and closes it after.
"""

from __future__ import annotations

from typing import Any

from protocols import Ping, Pong
from supervision import Actor

from ._brain import Brain

__all__ = ["BrainActor"]


class BrainActor(Actor):
    """Answers ``Ping`` with e.g. ``"haiku anthropic closed; sonnet anthropic open (3 failures)"``,
    or a one-line notice when no model is configured."""

    accepts = (Ping,)

    def __init__(self, brain: Brain) -> None:
        self.brain = brain

    async def receive(self, msg: Any) -> Any:
        match msg:
            case Ping():
                return Pong(note=describe(self.brain))
            case _:
                raise TypeError(f"{self.path} does not handle {type(msg).__name__}")


def describe(brain: Brain) -> str:
    """One line: each model with its provider and breaker state; unconfigured ones marked."""
    parts = []
    for name, s in brain.status().items():
        if not s["configured"]:
            parts.append(f"{name} {s['provider']} not configured")
        elif s["consecutive_failures"]:
            failures = s["consecutive_failures"]
            parts.append(f"{name} {s['provider']} {s['breaker']} ({failures} failures)")
        else:
            parts.append(f"{name} {s['provider']} {s['breaker']}")
    head = "" if brain.configured else "no model configured: "
    return head + "; ".join(parts)
