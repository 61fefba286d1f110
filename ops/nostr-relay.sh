#!/usr/bin/env bash
# Build the virtual environment of the real Nostr relay the tests talk to
# (PyPI nostr-relay, pinned), apart from greenroom's own: it pulls gunicorn,
# uvicorn, falcon and SQLAlchemy 2, none of which greenroom needs.
#
#   ops/nostr-relay.sh [VENV]    default: $NOSTR_RELAY_VENV or <repo>/.venv-nostr-relay
#
# Idempotent: a venv whose stamp names the pinned version is left alone. On
# success prints the path of the `nostr-relay` executable (the last line).
set -euo pipefail
version="1.14"
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-${NOSTR_RELAY_VENV:-$repo/.venv-nostr-relay}}
python=${PYTHON:-python3}
stamp="$venv/.nostr-relay-$version"

if [ ! -f "$stamp" ] || [ ! -x "$venv/bin/nostr-relay" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
      # Debian's python3 without ensurepip: the project's bootstrap installs it.
      "$repo/ops/bootstrap-python.sh" "$python" "$venv" >/dev/null
    fi
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nostr-relay==$version" >&2
  touch "$stamp"
fi
echo "$venv/bin/nostr-relay"
