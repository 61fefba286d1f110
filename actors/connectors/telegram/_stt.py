"""Speech to text through an OpenAI-compatible ``POST {base_url}/audio/transcriptions``.

The request is ``multipart/form-data`` with ``file`` and ``model``; the answer
``{"text": "..."}`` (https://platform.openai.com/docs/api-reference/audio/createTranscription).
Local servers (whisper.cpp's server, faster-whisper servers, vLLM) speak the
same shape. httpx errors are translated into :class:`TranscriptionFailed`.
"""

from __future__ import annotations

import httpx

__all__ = ["Transcriber", "TranscriptionFailed"]


class TranscriptionFailed(Exception):
    """The speech-to-text endpoint gave no transcript; ``str()`` says why in one line."""


class Transcriber:
    """One endpoint and model. ``api_key`` goes in ``Authorization: Bearer`` when set."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._url = base_url.rstrip("/") + "/audio/transcriptions"
        self._model = model
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout_s, headers=headers)

    async def aclose(self) -> None:
        """Close the HTTP client. Idempotent."""
        await self._client.aclose()

    async def transcribe(self, audio: bytes, filename: str, mime_type: str) -> str:
        """The transcript of ``audio`` (stripped; may be empty for silence).

        Raises TranscriptionFailed. A checkpoint; cancellation abandons the request.
        """
        files = {"file": (filename, audio, mime_type)}
        try:
            response = await self._client.post(self._url, files=files, data={"model": self._model})
        except httpx.HTTPError as exc:
            raise TranscriptionFailed(f"{type(exc).__name__} calling the endpoint") from None
        if response.status_code != 200:
            raise TranscriptionFailed(f"HTTP {response.status_code}")
        try:
            text = response.json().get("text")
        except (ValueError, AttributeError):
            text = None
        if not isinstance(text, str):
            raise TranscriptionFailed("the answer has no text")
        return text.strip()
