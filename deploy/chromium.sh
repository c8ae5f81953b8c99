#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available for the dashboard's browser test
# (tests/integration/test_dashboard_browser.py drives it with Playwright). Installs the
# `chromium` package when it is missing and we are root, with a small CJK font (the
# dashboard in zh_CN, and its screenshots, need one); prints the browser's path.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
fc-list :lang=zh 2>/dev/null | grep -q . || missing+=(fonts-wqy-microhei)
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: missing ${missing[*]} (apt-get install ${missing[*]}, as root)" >&2
        [[ ${missing[*]} == fonts-wqy-microhei ]] || exit 1
    else
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
command -v chromium
