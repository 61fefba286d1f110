#!/usr/bin/env bash
# Create the project's virtual environment with Python >= 3.11.
# On a Debian machine whose python3 lacks the venv module, install it (as root).
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if ! command -v "$python" >/dev/null 2>&1; then
  echo "greenroom needs Python 3.11+; '$python' was not found" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "greenroom needs Python 3.11+; $("$python" --version 2>&1) found at $(command -v "$python")" >&2
  exit 1
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    ver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt-get update -qq
    apt-get install -y -qq "python${ver}-venv" || apt-get install -y -qq python3-venv
  else
    echo "greenroom: '$python -m venv' is unavailable; install your distribution's python3-venv package" >&2
    exit 1
  fi
fi
"$python" -m venv "$venv"
