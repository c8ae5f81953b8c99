#!/usr/bin/env bash
# Optional: compile the pure domain (ledger/domain) with mypyc into the venv, so the rules
# run compiled (ledger/compiled.py). Without it, or after the domain's sources change, the
# ledger runs the plain Python. `ledger --version` says which. Needs a C compiler and the
# Python headers. Usage: deploy/build-compiled.sh [DIR]   (default: .venv/ledger-compiled)
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO_DIR/deploy/bootstrap.sh"
# LEDGER_COMPILED=off: the build must not load a previous build while it replaces it
LEDGER_COMPILED=off "$REPO_DIR/.venv/bin/python" -c \
    'import sys; from ledger.compiled import main; sys.exit(main(["build", *sys.argv[1:]]))' "$@"
LEDGER_COMPILED= "$REPO_DIR/.venv/bin/ledger" --version
