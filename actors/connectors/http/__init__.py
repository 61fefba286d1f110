"""The HTTP door (``/connectors/http``): REST API, web chat, health and metrics."""

from __future__ import annotations

from ._actor import HttpConnector

__all__ = ["HttpConnector"]
