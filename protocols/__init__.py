"""greenroom's messages and their wire format.

Every message that crosses an actor or process boundary is a frozen pydantic
model (:class:`Message`) registered under a stable type name
(``@message("kernel.Ping")``). ``wire`` holds the one msgpack codec, the
registry that maps names to models, and the length-prefix framing the debug
socket uses. Untrusted input fails with a :class:`ProtocolError`, never a
crash. This package imports nothing else of greenroom's.
"""

from __future__ import annotations

from ._clock import Clock, system_clock
from ._errors import DecodeError, DuplicateType, InvalidBody, ProtocolError, UnknownType
from ._message import Message
from ._redact import mask_url
from ._storable import storable_problem, storable_text_problem
from .brain import ChatTurn, Intent
from .chat import (
    INBOUND_KEY_PREFIX,
    ApprovalResult,
    Approve,
    Deliver,
    Inbound,
    Received,
    Reconcile,
    Reconciled,
    ReplyKind,
    user_key,
)
from .kernel import Ping, Pong
from .wire import (
    FRAME_HEADER,
    REGISTRY,
    Registry,
    decode,
    decode_message,
    encode,
    encode_message,
    frame,
    message,
)

__all__ = [
    "FRAME_HEADER",
    "INBOUND_KEY_PREFIX",
    "REGISTRY",
    "ApprovalResult",
    "Approve",
    "ChatTurn",
    "Clock",
    "DecodeError",
    "Deliver",
    "DuplicateType",
    "Inbound",
    "Intent",
    "InvalidBody",
    "Message",
    "Ping",
    "Pong",
    "ProtocolError",
    "Received",
    "Reconcile",
    "Reconciled",
    "Registry",
    "ReplyKind",
    "UnknownType",
    "decode",
    "decode_message",
    "encode",
    "encode_message",
    "frame",
    "mask_url",
    "message",
    "storable_problem",
    "storable_text_problem",
    "system_clock",
    "user_key",
]
