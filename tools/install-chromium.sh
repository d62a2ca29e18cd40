#!/usr/bin/env bash
# Chromium from Debian for the browser tests (never `playwright install`, which downloads its own).
# Idempotent: does nothing when the binary is already there.
set -euo pipefail
CHROMIUM="${1:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
  || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
test -x "$CHROMIUM" || { echo "Chromium was not installed at $CHROMIUM; set CHROMIUM=<path> for make" >&2; exit 1; }
