#!/usr/bin/env bash
# Make .venv ready: create it with python3.11 (or $PYTHON) when missing, and run
# `pip install -e '.[test,bench]'` only when pyproject.toml changed since the last install
# (its sha256 is stamped in .venv). Quiet unless it fails; then shows pip's output.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$REPO_DIR/.venv
STAMP=$VENV/.pyproject.sha256
LOG=${LEDGER_CACHE_DIR:-$REPO_DIR/.cache}/bootstrap.log
PYTHON=${PYTHON:-python3.11}

mkdir -p "$(dirname "$LOG")"
# Parallel runs must not install into the same venv at once.
exec 8>"$(dirname "$LOG")/.bootstrap.lock"
flock -w 600 8 || { echo "error: timed out waiting for the bootstrap lock" >&2; exit 1; }

fail() {
    echo "error: $*" >&2
    [[ -s $LOG ]] && { echo "--- last lines of $LOG ---" >&2; tail -n 40 "$LOG" >&2; }
    exit 1
}

if [[ ! -x $VENV/bin/python ]]; then
    command -v "$PYTHON" >/dev/null || fail "$PYTHON not found (Python 3.11+ is needed)"
    "$PYTHON" -m venv "$VENV" >"$LOG" 2>&1 || fail "could not create $VENV"
fi

EXTRAS=test,bench
want="$(sha256sum "$REPO_DIR/pyproject.toml" | cut -d' ' -f1) $EXTRAS"
have=$(cat "$STAMP" 2>/dev/null || true)
if [[ $want != "$have" || ! -x $VENV/bin/ledger ]]; then
    # the first run takes a minute or two: say so rather than sit silent
    echo "Installing the project and its dependencies into $VENV (first run: 1-2 minutes)..." >&2
    (cd "$REPO_DIR" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -e ".[$EXTRAS]") >"$LOG" 2>&1 || fail "pip install -e '.[$EXTRAS]' failed"
    echo "$want" >"$STAMP"
fi
