#!/usr/bin/env bash
# Install Debian's chromium for the playground's browser tests (tests/test_playground_browser.py),
# unless /usr/bin/chromium is already there. Idempotent; never downloads a browser any other way.
# Playwright for Python drives it through executable_path (pip install playwright; no
# `playwright install` is needed).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
