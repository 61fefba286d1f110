"""The brain: LLM providers, cascades with circuit breakers, the classifier, tools, cost.

:class:`Brain` is what user actors and proactive actors call (``classify``,
``answer``, ``summarize``, ``extract_memories``), each with a
:class:`CallContext` naming the user, their tier and the ledger scope.
Anthropic models go through the official SDK, any OpenAI-compatible endpoint
through httpx; each purpose has an ordered cascade of models from
``[brain]`` in the config, and every call that reached a provider (answered,
timed out, broken off or cancelled) is written to the token ledger with its
cost, estimated where the provider did not say. Plans, memories and summaries
reach the model as quoted data in the user turn, never as system instructions.
:class:`BrainActor` is ``/brain`` in the tree. Errors are :class:`BrainError`
and its subclasses.
"""

from __future__ import annotations

from ._actor import BrainActor
from ._brain import Brain, CallContext
from ._errors import AllModelsFailed, BrainError, InvalidIntent, NoModelConfigured

__all__ = [
    "AllModelsFailed",
    "Brain",
    "BrainActor",
    "BrainError",
    "CallContext",
    "InvalidIntent",
    "NoModelConfigured",
]
