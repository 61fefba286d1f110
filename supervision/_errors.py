"""Errors raised by the kernel.

Hierarchy::

    KernelError                      base of everything the kernel raises
    ├── MailboxFull                  tell_nowait found the mailbox at capacity (your send rate)
    ├── AskTimeout                   ask got no reply in time (also a TimeoutError)
    ├── ActorFailed                  the actor raised while handling your ask; .cause is its error
    ├── ActorStopped                 the actor is stopped (or stopped before handling your ask)
    ├── UnknownPath                  no live actor at that path (also a LookupError)
    └── SupervisorGaveUp             a supervisor exceeded its restart intensity and failed itself

Who caused it, trio-style: ``MailboxFull`` and ``AskTimeout`` describe load or
slowness on the receiving side; ``ActorFailed`` carries a bug or a broken peer
of the receiving actor; ``ActorStopped`` and ``UnknownPath`` mean the caller
addressed something that is not (or no longer) there.
"""

from __future__ import annotations


class KernelError(Exception):
    """Base class of every error raised by ``supervision``."""


class MailboxFull(KernelError):
    """``tell_nowait`` found the mailbox at capacity; the message was dead-lettered."""

    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(f"mailbox of {path} is full (capacity {capacity})")
        self.path = path
        self.capacity = capacity


class AskTimeout(KernelError, TimeoutError):
    """``ask`` got no reply within its timeout; no reply slot is left behind."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"no reply from {path} within {timeout}s")
        self.path = path
        self.timeout = timeout


class ActorFailed(KernelError):
    """The actor raised while handling the asked message.

    The actor is failed and in its supervisor's hands; ``cause`` is the
    exception it raised (also chained as ``__cause__``).
    """

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"{path} failed: {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause
        self.__cause__ = cause


class ActorStopped(KernelError):
    """The actor is stopped, or stopped before it handled the message."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is stopped")
        self.path = path


class UnknownPath(KernelError, LookupError):
    """No live actor has this path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no actor at {path!r}")
        self.path = path


class SupervisorGaveUp(KernelError):
    """A supervisor saw more than ``max_restarts`` failures within ``within_s``.

    It stopped its children (reverse start order) and failed itself with this
    error, which its own supervisor handles like any other failure.
    """

    def __init__(self, path: str, max_restarts: int, within_s: float, last: BaseException) -> None:
        super().__init__(
            f"{path} gave up: more than {max_restarts} restarts within {within_s}s; "
            f"last: {type(last).__name__}: {last}"
        )
        self.path = path
        self.last = last
        self.__cause__ = last


class Killed(KernelError):
    """The error an actor fails with when it is killed from outside (``kill``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} killed: {reason}")
        self.path = path
        self.reason = reason
