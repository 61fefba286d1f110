"""Issue 10.1: one clock. Whatever reads "now" or "today" in the packages takes it
from the injected ``protocols.Clock`` (the Store's), never from the OS directly.

A direct read (``datetime.now()``, ``time.time()``, ``date.today()``...) made
``token_spend_today`` count a different day than the ledger, and a test pass
only on the day it was written. ``protocols/_clock.py`` is the one place that
reads the OS's wall clock; trio's clock (``trio.current_time``) is the kernel's
time for timeouts and is not wall time.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "storage", "supervision", "protocols", "config", "bin")
ALLOWED = {ROOT / "protocols" / "_clock.py"}
# localtime()/gmtime() read the clock only without an argument (with one they convert).
WALL_READS = re.compile(
    r"\b(?:(?:datetime\.(?:now|utcnow|today)|date\.today|time\.(?:time|time_ns))\s*\("
    r"|time\.(?:localtime|gmtime)\(\s*\))"
)


def _sources() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        base = ROOT / package
        files += [base / "greenroom"] if package == "bin" else sorted(base.rglob("*.py"))
    return files


def test_the_packages_read_the_wall_clock_in_one_place() -> None:
    offenders = []
    for path in _sources():
        if path in ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if WALL_READS.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_the_guard_sees_a_direct_read() -> None:
    # The pattern must catch what the packages used to do (so the guard can fail).
    assert WALL_READS.search("    today = datetime.now(UTC).date()")
    assert WALL_READS.search("self.started_wall = time.time()")
    assert WALL_READS.search("stamp = time.localtime()")
    assert not WALL_READS.search("now = trio.current_time()")
    assert not WALL_READS.search('time.strftime("%H:%M", time.localtime(at))')
