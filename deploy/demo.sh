#!/usr/bin/env bash
# Run the demo on the embedded default (SQLite and in-process events: no servers needed).
# Arguments go to `ledger demo`.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO_DIR/deploy/bootstrap.sh"
# The demo's default database, .cache/demo/ledger.sqlite, is relative: keep it in the repo.
cd "$REPO_DIR"
exec "$REPO_DIR/.venv/bin/ledger" demo "$@"
