"""What the benchmark scripts share: a percentile, and a user actor that does nothing.

Imported as ``_common`` (the scripts' own folder is first on ``sys.path`` when
one runs), after the script has put the greenroom checkout it measures on the
path: ``Sink`` is built on that checkout's kernel.
"""

from __future__ import annotations

from typing import Any

from supervision import Actor

__all__ = ["Sink", "pct"]


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by rank; NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Sink(Actor):
    """A user actor that takes what it is told and does nothing with it: the figure
    is then the door's alone."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def receive(self, msg: Any) -> Any:
        return None
