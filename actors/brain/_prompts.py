"""What the models are told: system prompts, the forced tools, and how context is rendered."""

from __future__ import annotations

import json
from collections.abc import Sequence

from protocols import ChatTurn

from ._providers import ToolSpec, Turn

__all__ = [
    "ANSWER_SYSTEM",
    "CLASSIFY_SYSTEM",
    "DESCRIBE_SYSTEM",
    "MEMORIES_SYSTEM",
    "REPORT_IMAGE",
    "REPORT_INTENT",
    "REPORT_MEMORIES",
    "SUMMARIZE_SYSTEM",
    "render_context",
    "transcript",
]

CLASSIFY_SYSTEM = (
    "You read the user's latest message in the context of the conversation and report "
    "what they want by calling the report_intent tool, once. summary: one sentence saying "
    "what the user wants. plan: one sentence saying what the assistant will do about it. "
    "needs_confirmation: true when the plan acts on the world, spends money, changes "
    "stored data or is a guess; false for a plain question or chat. confidence: 0 to 1."
)

ANSWER_SYSTEM = (
    "You are greenroom, an assistant that talks with people on chat platforms. Answer the "
    "user's latest message helpfully and concisely, in their language. Use the tools when "
    "they help; never invent tool results."
)

SUMMARIZE_SYSTEM = (
    "Summarise the conversation below for your own later reference: who the user is, what "
    "was asked, decided and done, and anything still open. Plain prose, at most 200 words. "
    "Reply with the summary only."
)

MEMORIES_SYSTEM = (
    "Read the conversation below and report durable facts about the user (preferences, "
    "circumstances, plans, names they use) by calling report_memories once. Each fact is "
    "one short sentence about the user. Report an empty list when there is nothing new."
)

REPORT_INTENT = ToolSpec(
    "report_intent",
    "Report the intent of the user's latest message.",
    {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": ["question", "command", "other"]},
            "summary": {"type": "string", "description": "One sentence: what the user wants."},
            "plan": {"type": "string", "description": "One sentence: what you will do."},
            "needs_confirmation": {
                "type": "boolean",
                "description": "Whether the user must approve the plan first.",
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["intent", "summary", "plan", "needs_confirmation", "confidence"],
    },
)

REPORT_MEMORIES = ToolSpec(
    "report_memories",
    "Report durable facts about the user.",
    {
        "type": "object",
        "properties": {"facts": {"type": "array", "items": {"type": "string"}}},
        "required": ["facts"],
    },
)


DESCRIBE_SYSTEM = (
    "You describe an image a user sent, for an assistant that cannot see it, by calling "
    "the report_image tool once. description: two or three sentences on what it shows. "
    "text: any text visible in it, verbatim, or an empty string. objects: the main things "
    "in it."
)

REPORT_IMAGE = ToolSpec(
    "report_image",
    "Report what an image shows.",
    {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "text": {"type": "string"},
            "objects": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["description", "text", "objects"],
    },
)


def _turn_text(turn: ChatTurn) -> str:
    parts = [turn.text]
    parts.extend(f"[attachment] {json.dumps(a, default=str)[:2000]}" for a in turn.artifacts)
    return "\n".join(p for p in parts if p)


def _stamped(turn: ChatTurn) -> str:
    # Only the user's turns carry a time: the model would imitate stamps on its own.
    text = _turn_text(turn)
    return f"[{turn.at:%Y-%m-%d %H:%M %Z}] {text}" if turn.role == "user" else text


def render_context(
    context: Sequence[ChatTurn], latest: str | None = None
) -> tuple[str, tuple[Turn, ...]]:
    """Split context into (notes for the system prompt, alternating turns).

    System turns (a stored summary, notices) become notes. Consecutive turns of
    one role are merged (the wire formats want alternation), user turns carry
    their timestamp, and the first turn is always the user's. ``latest`` is
    appended as the final user text.
    """
    notes = [t.text for t in context if t.role == "system" and t.text]
    merged: list[tuple[str, str]] = []
    items = [(t.role, _stamped(t)) for t in context if t.role != "system"]
    if latest is not None:
        items.append(("user", latest))
    for role, text in items:
        if not text:
            continue
        if merged and merged[-1][0] == role:
            merged[-1] = (role, f"{merged[-1][1]}\n\n{text}")
        else:
            merged.append((role, text))
    if merged and merged[0][0] == "assistant":
        merged.insert(0, ("user", "(earlier conversation)"))
    turns = tuple(Turn("user" if role == "user" else "assistant", text) for role, text in merged)
    return "\n".join(notes), turns


def transcript(turns: Sequence[ChatTurn]) -> str:
    """The turns as one plain-text transcript, for the background purposes."""
    return "\n".join(f"[{t.at:%Y-%m-%d %H:%M}] {t.role}: {_turn_text(t)}" for t in turns)
