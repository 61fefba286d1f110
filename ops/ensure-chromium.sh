#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the web-chat browser
# test (tests/test_webchat.py drives it with Playwright's executable_path).
# Never `playwright install`: it downloads its own browser builds, which is
# neither wanted nor possible here. Installing needs root (or passwordless
# sudo); without either, this warns and the browser test is skipped, except
# under CI=true, where a missing browser is an error.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure-chromium: $CHROMIUM is missing and this user cannot apt-get install it" >&2
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    echo "ensure-chromium: the browser test will be skipped" >&2
    exit 0
fi

echo "ensure-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: $CHROMIUM still missing after install" >&2; exit 1; }
