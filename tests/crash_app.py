"""``greenroom run`` for the kill -9 tests, with optional chosen kill points.

``python tests/crash_app.py SETTINGS_JSON`` runs the application exactly as
``greenroom run`` does (JSON log lines on stderr), on the settings in the file
(``tests.appkit.settings_data``). With ``CRASH_AT=<Store method>:<n>[,...]``
in the environment, the process SIGKILLs itself right after the ``n``-th call of
that Store method returned (that is, right after its transaction committed and
before the caller's next step): a crash at a chosen window, not a lucky one. A
method the Store does not have ends the process with a message (a renamed method
must not silently turn its window off).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import run
from config import Settings
from storage import Store
from supervision import configure_logging


def arm(points: str) -> None:
    """Patch each named Store method to SIGKILL the process after its n-th return."""
    for point in filter(None, points.split(",")):
        name, _, nth = point.partition(":")
        original = getattr(Store, name, None)
        if original is None:  # a renamed method must not quietly turn a window off
            raise SystemExit(f"crash_app: Store has no method {name!r} to crash after")
        calls = {"n": 0}
        target = int(nth or 1)

        @functools.wraps(original)
        async def patched(
            self: Store, *args: Any, _f: Any = original, _c: Any = calls, _t: int = target,
            **kw: Any,
        ) -> Any:  # fmt: skip
            result = await _f(self, *args, **kw)
            _c["n"] += 1
            if _c["n"] == _t:
                print(json.dumps({"event": "crash_at", "point": _f.__name__}), file=sys.stderr,
                      flush=True)  # fmt: skip
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(Store, name, patched)


def main() -> int:
    settings = Settings.model_validate(json.loads(Path(sys.argv[1]).read_text()))
    configure_logging("info", "json")
    arm(os.environ.get("CRASH_AT", ""))
    return trio.run(run, settings)


if __name__ == "__main__":
    sys.exit(main())
