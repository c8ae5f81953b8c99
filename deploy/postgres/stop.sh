#!/usr/bin/env bash
# Stop the cluster started by deploy/postgres/start.sh (`pg_ctl stop -m fast`: open
# sessions are rolled back, nothing committed is lost). Not running: says so, exits 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

main() {
    local pid
    pg_lock
    pg_resolve_root
    if ! pid=$(pg_pid) || ! pg_find_bin; then
        echo "PostgreSQL is not running"
        exit 0
    fi
    ((EUID == 0)) || PG_OS_USER=$(id -un)
    if ! as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "${PG_STOP_TIMEOUT:-60}" -s; then
        echo "error: pg_ctl stop failed; see $PG_LOG" >&2
        exit 1
    fi
    # pg_ctl returns once postmaster.pid is gone; wait for the process itself (and for
    # init to reap it, so no <defunct> postgres lingers in the process table).
    local deadline=$((SECONDS + 10))
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    echo "PostgreSQL stopped (pid $pid; port $PG_PORT)"
}

main "$@"
