"""Enriching a held media message after the 200: download, transcript or description.

A voice, audio or photo message is stored held (``Store.ingest_held``: no job
yet) and Telegram is answered at once; :meth:`Enricher.enrich` then does the
slow and paid part and releases it (``Store.release_held``: final text and
job), and the door hands it to its author's actor, which so reads the transcript or
the description as the user's words and as an artifact.

Promises:

- Idempotent per message: every finished attempt leaves exactly one artifact
  (``voice_transcript``, ``image_json``, or ``file_meta`` saying why there is
  neither), and an attempt that finds one derives the text from it instead of
  downloading, transcribing or calling the vision model again.
- Bounded: each step (the download; the transcript or the description) is
  cut at ``enrich_timeout_s``, so an attempt takes at most two of them plus
  its storage calls; a step that times out counts as failed (the message goes
  on with a note instead). A message whose attempts a crash interrupted
  ``enrich_attempts`` times goes on unenriched, so a message that crashes
  the door cannot do it forever.
- Storage errors propagate (the door fails and restarts; the message is
  still held and is enriched again by the restarted door).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from protocols import Received, user_key
from protocols.telegram import PLATFORM, BotIdentity, Incoming, Media, parse_update
from storage import ArtifactKind, Store, StoredMessage

from ._api import BotApi
from ._errors import TelegramError
from ._stt import Transcriber, TranscriptionFailed

__all__ = ["NO_STT", "STT_FAILED", "Describer", "Enricher", "text_of"]

NO_STT = "[voice message: speech-to-text is not configured, so I could not listen to it]"
STT_FAILED = "[voice message: it could not be transcribed]"
SILENCE = "[voice message: silence]"
GAVE_UP = "[{kind} not read: reading it was interrupted too often]"

#: ``describe(user_key, image, media_type)``: what an image shows (``description``,
#: ``text``, ``objects``), or None when it could not be described. Called for the
#: largest size of every photo; the tree passes the brain's ``describe_image``.
Describer = Callable[[str, bytes, str], Awaitable[dict[str, Any] | None]]

#: The artifacts an enrichment attempt leaves; one of them means it finished.
_OUTCOMES: tuple[ArtifactKind, ...] = ("voice_transcript", "image_json", "file_meta")


def _join(caption: str, text: str) -> str:
    return f"{caption}\n\n{text}" if caption else text


def text_of(inc: Incoming, kind: ArtifactKind, content: dict[str, Any]) -> str:
    """The message text an enrichment outcome gives: the caption, then the transcript,
    the description or the note of why there is neither. Pure."""
    caption = inc.text.strip()
    if kind == "voice_transcript":
        return _join(caption, str(content.get("text") or "") or SILENCE)
    if kind == "image_json":
        return _join(caption, f"[photo: {content.get('description', '')}]")
    note = content.get("note")
    if isinstance(note, str) and note:
        return _join(caption, note)
    return caption or "[photo]"


class Enricher:
    """The enrichment of one door incarnation (see the module docstring)."""

    def __init__(
        self,
        api: BotApi,
        store: Store,
        *,
        transcriber: Transcriber | None,
        describe: Describer | None,
        max_file_bytes: int,
        step_timeout_s: float,
        max_attempts: int,
        log: Any,
    ) -> None:
        self.api = api
        self.store = store
        self.transcriber = transcriber
        self.describe = describe
        self.max_file_bytes = max_file_bytes
        self.step_timeout_s = step_timeout_s
        self.max_attempts = max_attempts
        self.log = log
        self.enriched = 0  # messages released by this incarnation
        self.reused = 0  # of which an earlier attempt's artifact gave the text
        self.gave_up = 0  # of which too many interrupted attempts came before

    async def enrich(self, message_id: int, bot: BotIdentity) -> Received | None:
        """Enrich and release held message ``message_id``; return the ``chat.Received``
        to hand its author's actor, or None when there is nobody to tell: it was not held
        (released meanwhile), or a newer message of its chat already has a job (it
        is then context for that one, as a thread's supersede would make it). A
        checkpoint.

        Cancelled before the release began, the message stays held (and its
        attempt counted): the next start enriches it again, reusing an artifact
        already written. The release itself is shielded: once it committed the
        caller learns so, and hands the message over.
        """
        begun = await self.store.begin_held(message_id)
        if begun is None:
            return None
        message, attempt = begun
        parsed = parse_update(message.raw, bot)
        if not isinstance(parsed, Incoming):
            # Cannot happen for what the door held (it parsed as a message then):
            # released as it is, its queued job waits for the periodic re-dispatch.
            self.log.error("telegram_held_unparsable", id=message_id, why=repr(parsed))
            with trio.CancelScope(shield=True):
                await self.store.release_held(message_id, message.text)
            return None
        done = [a for a in message.artifacts if a.kind in _OUTCOMES]
        if parsed.media is None:
            text = message.text
        elif done:
            # An attempt finished before a crash: its outcome stands, no second download.
            self.reused += 1
            text = text_of(parsed, done[0].kind, done[0].content)
        elif attempt > self.max_attempts:
            self.gave_up += 1
            self.log.warning(
                "telegram_enrich_gave_up", id=message_id, attempts=attempt - 1,
                outcome="handed over unenriched",
            )  # fmt: skip
            text = _join(parsed.text.strip(), GAVE_UP.format(kind=parsed.media.kind))
        else:
            text = await self._text(message, parsed)
        with trio.CancelScope(shield=True):
            result = await self.store.release_held(message_id, text)
        self.enriched += 1
        if not result.created:
            return None
        # Told even when its job was born canceled (a newer message of its author in
        # the chat came meanwhile): that newer job waited behind this held one and
        # can be claimed now, and telling the author's actor is what claims it.
        return result.received(parsed.user_id)

    async def _text(self, message: StoredMessage, inc: Incoming) -> str:
        """Download, then transcribe or describe; store the outcome as the one
        artifact of this attempt and return the message text it gives."""
        assert inc.media is not None
        if inc.media.kind == "photo":
            kind, content = await self._photo(inc, inc.media)
        else:
            kind, content = await self._voice(inc, inc.media)
        await self.store.add_artifact(message.id, kind, content)
        return text_of(inc, kind, content)

    async def _download(self, inc: Incoming, media: Media) -> tuple[bytes, str] | None:
        """The file's (bytes, file_path), or None (logged) when it could not be had in time."""
        with trio.move_on_after(self.step_timeout_s):
            try:
                return await self.api.download(media.file_id, self.max_file_bytes)
            except TelegramError as exc:
                self.log.warning(
                    "telegram_download_failed", update_id=inc.update_id, error=str(exc)
                )
                return None
        self.log.warning("telegram_download_failed", update_id=inc.update_id, error="timeout")
        return None

    async def _voice(self, inc: Incoming, media: Media) -> tuple[ArtifactKind, dict[str, Any]]:
        meta = {"kind": media.kind, "file_id": media.file_id, **media.meta}
        if self.transcriber is None:
            return "file_meta", {**meta, "note": NO_STT}
        fetched = await self._download(inc, media)
        transcript: str | None = None
        if fetched is not None:
            audio, path = fetched
            with trio.move_on_after(self.step_timeout_s) as step:
                try:
                    transcript = await self.transcriber.transcribe(
                        audio, path.rsplit("/", 1)[-1] or "voice.ogg", media.mime_type
                    )
                except TranscriptionFailed as exc:
                    self.log.warning(
                        "telegram_transcription_failed", update_id=inc.update_id, error=str(exc)
                    )
            if step.cancelled_caught:
                self.log.warning(
                    "telegram_transcription_failed", update_id=inc.update_id, error="timeout"
                )
        if transcript is None:
            return "file_meta", {**meta, "note": STT_FAILED}
        return "voice_transcript", {"text": transcript, **meta}

    async def _photo(self, inc: Incoming, media: Media) -> tuple[ArtifactKind, dict[str, Any]]:
        """The largest size, described by the vision model into ``image_json``;
        without a describer, or when it fails or times out, metadata only."""
        meta = {"file_id": media.file_id, "file_size": media.file_size, **media.meta}
        plain: tuple[ArtifactKind, dict[str, Any]] = ("file_meta", {"kind": "photo", **meta})
        if self.describe is None:
            return plain
        fetched = await self._download(inc, media)
        if fetched is None:
            return plain
        described = None
        with trio.move_on_after(self.step_timeout_s) as step:
            # Telegram re-encodes every photo as JPEG.
            described = await self.describe(
                user_key(PLATFORM, inc.user_id), fetched[0], "image/jpeg"
            )
        if step.cancelled_caught:
            self.log.warning("telegram_photo_not_described", update_id=inc.update_id,
                             error="timeout")  # fmt: skip
        if described is None:
            return plain
        return "image_json", {**described, **meta}
