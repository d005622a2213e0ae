#!/usr/bin/env bash
# Installs what the report's browser test needs: Debian's chromium (only when no chromium is on PATH) and the
# playwright Python package into a venv. Idempotent. Playwright drives the system Chromium through its executable
# path; its own browser download (`playwright install`) is not used and not needed.
#
#   scripts/install-browser.sh [VENV]      # VENV defaults to .venv
set -euo pipefail

venv="${1:-.venv}"

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium: already installed ($(command -v chromium || command -v chromium-browser))"
elif [ "$(id -u)" -eq 0 ]; then
    echo "chromium: installing Debian's package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    echo "chromium: installed ($(command -v chromium))"
else
    echo "chromium: not found and this is not root. Run as root:" >&2
    echo "    apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core" >&2
    echo "or point SDFB_CHROMIUM at a Chromium binary." >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "no Python at $venv/bin/python: create the venv first (make install) or pass its path" >&2
    exit 1
fi
if "$venv/bin/python" -c "import playwright.sync_api" >/dev/null 2>&1; then
    echo "playwright: already installed in $venv"
else
    echo "playwright: installing into $venv"
    "$venv/bin/python" -m pip install -q playwright
fi
"$venv/bin/python" -c "from importlib.metadata import version; print('playwright', version('playwright'))"
