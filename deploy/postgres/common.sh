# Shared settings and helpers for deploy/postgres/start.sh and stop.sh (sourced, not run).
# The project's private PostgreSQL cluster: Debian's server binaries, our own data dir,
# port and socket dir, run as an unprivileged OS user (initdb and postgres refuse root).

PG_DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$PG_DEPLOY_DIR/../lib.sh"
REPO_DIR=$(cd "$PG_DEPLOY_DIR/../.." && pwd)
CACHE_DIR=${LEDGER_CACHE_DIR:-$REPO_DIR/.cache}
PG_PORT=${PG_PORT:-55432}
PG_OS_USER=${LEDGER_PG_OS_USER:-ledgerpg}
# The roles (docs/operations.md, "Database roles"): the service connects as PG_SERVICE_ROLE,
# `ledger migrate` as PG_OWNER_ROLE (owner of database `ledger`); PG_TEST_ROLE exists for
# the tests and benchmarks only (it creates scratch databases). None is a superuser: the
# superuser `postgres` has no password and logs in over the unix socket only.
PG_OWNER_ROLE=ledger_owner
PG_SERVICE_ROLE=ledger_service
PG_TEST_ROLE=ledger_test_admin
# Generated passwords (one 0600 file per role) and the URLs of this cluster's roles, as
# LEDGER_* settings (a LEDGER_CONFIG file), rewritten at every start.
PG_SECRETS=$CACHE_DIR/postgres-secrets
PG_ENV_FILE=$CACHE_DIR/postgres.env

# Print the value of setting $1 (LEDGER_DB_URL, ...) from $PG_ENV_FILE.
pg_setting() {
    [[ -f $PG_ENV_FILE ]] || return 1
    sed -n "s/^$1=//p" "$PG_ENV_FILE" | head -n1 | grep .
}

# A URL with its password masked, for messages.
pg_masked() {
    sed -E 's#(//[^:/@]+):[^@]*@#\1:***@#' <<<"$1"
}

# Server binaries: the newest /usr/lib/postgresql/<major>/bin that has `postgres`.
pg_find_bin() {
    local dir
    PG_BIN=""
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
        [[ -x $dir/postgres && -x $dir/initdb && -x $dir/pg_ctl ]] && PG_BIN=$dir
    done
    [[ -n $PG_BIN ]]
}

# Run a command as the cluster's OS user (as ourselves when not root). fd 9, the lock,
# is closed so a daemonised postmaster never inherits it.
as_pg() {
    if ((EUID == 0)); then
        runuser -u "$PG_OS_USER" -- "$@" 9>&-
    else
        "$@" 9>&-
    fi
}

# Where the cluster lives: <cache>/postgres, unless the OS user cannot reach the cache
# (a repo under /root, say); then a directory that user owns, named after the repo path.
pg_resolve_root() {
    PG_ROOT=$CACHE_DIR/postgres
    if ((EUID == 0)) && id -u "$PG_OS_USER" >/dev/null 2>&1 \
            && ! runuser -u "$PG_OS_USER" -- test -x "$CACHE_DIR" 2>/dev/null; then
        PG_ROOT=/var/lib/$PG_OS_USER/$(printf %s "$REPO_DIR" | sha256sum | cut -c1-12)
    fi
    PG_DATA=$PG_ROOT/data
    PG_LOG=$PG_ROOT/postgres.log
    PG_SOCK=$PG_ROOT/run
    # A unix socket path must fit in 107 bytes.
    if ((${#PG_SOCK} > 80)); then
        PG_SOCK=/tmp/$PG_OS_USER-$(printf %s "$PG_ROOT" | sha256sum | cut -c1-12)
    fi
}

# Print the postmaster's pid when this cluster is running.
pg_pid() {
    live_pid "$PG_DATA/postmaster.pid" 'postgres'
}

# Serialise start/stop of this cluster (parallel test runs share it).
pg_lock() {
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/.postgres.lock"
    flock -w 300 9 || { echo "error: timed out waiting for $CACHE_DIR/.postgres.lock" >&2; exit 1; }
}
