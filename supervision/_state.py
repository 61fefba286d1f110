"""The lifecycle of one actor, as seen from outside (introspection)."""

from __future__ import annotations

import enum


class ActorState(enum.Enum):
    """Where an actor is in its life. Transitions are driven by the kernel only."""

    #: created; ``on_start`` (or ``on_restart``) has not finished yet. Messages queue.
    STARTING = "starting"
    #: handling messages.
    RUNNING = "running"
    #: failed; its supervisor waits out the restart backoff. Messages queue.
    BACKOFF = "backoff"
    #: failed; waiting for its supervisor's decision. Messages queue.
    FAILED = "failed"
    #: shutting down (``on_stop`` running); new messages are dead-lettered.
    STOPPING = "stopping"
    #: gone for good; new messages are dead-lettered with reason ``stopped``.
    STOPPED = "stopped"

    def __str__(self) -> str:
        return self.value


# The states by their bare names, for the kernel's own modules (one attribute
# lookup less on the per-message path than ``ActorState.RUNNING``).
STARTING = ActorState.STARTING
RUNNING = ActorState.RUNNING
BACKOFF = ActorState.BACKOFF
FAILED = ActorState.FAILED
STOPPING = ActorState.STOPPING
STOPPED = ActorState.STOPPED
#: States in which a message told to the actor is queued, not dead-lettered.
ACCEPTING = frozenset({STARTING, RUNNING, BACKOFF, FAILED})
