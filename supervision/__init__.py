"""greenroom's kernel: a supervised actor runtime on trio.

Actors (:class:`Actor` on the trio loop, :class:`BlockingActor` on a pykka
thread) handle one message at a time from a bounded mailbox; supervisors
restart them by OTP's rules with Akka's backoff; a :class:`Directory` holds
keyed, passivating children; introspection reads the tree from outside, and
:class:`DebugServer` serves it over the debug socket to ``greenroom ctl``
(:func:`ctl`). The testing kit is :mod:`supervision.testing`.
"""

from __future__ import annotations

from ._actor import Actor, AnyActor, BlockingActor, Dispatcher
from ._backoff import NO_BACKOFF, Backoff
from ._ctl import ctl, render_tree
from ._deadletters import DeadLetter, DeadLetterReason, DeadLetters
from ._debug_client import CtlError, DebugClient, RemoteError
from ._debug_listen import Peer
from ._debug_ops import AuditHook
from ._debug_server import DEBUG_SOCKET_NAME, DebugServer
from ._debug_wire import DebugError, DebugSocketError, ErrorKind
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
from ._ref import DEFAULT, ActorRef
from ._spec import ChildSpec, RestartType, Strategy, should_restart
from ._state import ActorState
from ._supervisor import Supervisor
from ._system import ActorSystem, kill, open_system
from ._tasks import TaskHandle
from ._threaded import BlockingThread

__all__ = [
    "DEBUG_SOCKET_NAME",
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
    "AuditHook",
    "Backoff",
    "BlockingActor",
    "BlockingThread",
    "ChildSpec",
    "CtlError",
    "DeadLetter",
    "DeadLetterReason",
    "DeadLetters",
    "DebugClient",
    "DebugError",
    "DebugServer",
    "DebugSocketError",
    "Directory",
    "Dispatcher",
    "EntityRef",
    "ErrorInfo",
    "ErrorKind",
    "KernelError",
    "Killed",
    "MailboxFull",
    "Peer",
    "RedactSecrets",
    "RemoteError",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorGaveUp",
    "TaskHandle",
    "TreeEvent",
    "UnknownPath",
    "configure_logging",
    "correlated",
    "ctl",
    "kill",
    "open_system",
    "render_tree",
    "should_restart",
]
