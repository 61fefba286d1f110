"""greenroom's kernel: a supervised actor runtime on trio.

Actors (:class:`Actor` on the trio loop, :class:`BlockingActor` on a pykka
thread) handle one message at a time from a bounded mailbox; supervisors
restart them by OTP's rules with Akka's backoff; a :class:`Directory` holds
keyed, passivating children; introspection reads the tree from outside
(``ActorSystem.snapshot``, ``inspect``, ``subscribe`` ...). The testing kit is
:mod:`supervision.testing`. The debug-socket server and ``greenroom ctl`` are
their own package, :mod:`supervision.debug`, built on this public API only.
"""

from __future__ import annotations

from ._actor import Actor, AnyActor, BlockingActor, Dispatcher
from ._backoff import NO_BACKOFF, Backoff
from ._deadletters import DeadLetter, DeadLetterReason, DeadLetters
from ._default import DEFAULT, Default
from ._directory import Directory, EntityRef
from ._errors import (
    ActorFailed,
    ActorStopped,
    AskTimeout,
    KernelError,
    Killed,
    MailboxFull,
    SupervisorGaveUp,
    UnknownPath,
)
from ._introspect import ActorInfo, ErrorInfo, TreeEvent
from ._logging import RedactSecrets, configure_logging, correlated
from ._ref import ActorRef
from ._spec import ChildSpec, RestartType, Strategy, should_restart
from ._state import ActorState
from ._supervisor import Supervisor
from ._system import ActorSystem, kill, open_system
from ._tasks import TaskHandle
from ._threaded import BlockingWorker

__all__ = [
    "DEFAULT",
    "NO_BACKOFF",
    "Actor",
    "ActorFailed",
    "ActorInfo",
    "ActorRef",
    "ActorState",
    "ActorStopped",
    "ActorSystem",
    "AnyActor",
    "AskTimeout",
    "Backoff",
    "BlockingActor",
    "BlockingWorker",
    "ChildSpec",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetters",
    "Default",
    "Directory",
    "Dispatcher",
    "EntityRef",
    "ErrorInfo",
    "KernelError",
    "Killed",
    "MailboxFull",
    "RedactSecrets",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "TaskHandle",
    "TreeEvent",
    "UnknownPath",
    "configure_logging",
    "correlated",
    "kill",
    "open_system",
    "should_restart",
]
