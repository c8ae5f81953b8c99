#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available for the dashboard's browser test
# (tests/integration/test_dashboard_browser.py drives it with Playwright). Installs the
# `chromium` package when it is missing and we are root; prints the browser's path.
set -euo pipefail
if ! command -v chromium >/dev/null; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: chromium is not installed (apt-get install chromium, as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
fi
command -v chromium
