#!/usr/bin/env bash
# Start the project's private PostgreSQL cluster on 127.0.0.1:$PG_PORT (55432).
#
# Installs Debian's `postgresql` package when no server binaries exist under
# /usr/lib/postgresql, creates the OS user `ledgerpg`, runs initdb once, starts the
# cluster, ensures role `ledger` (password `ledger`, SUPERUSER: tests disable triggers to
# simulate tampering), the least-privilege roles `ledger_owner` and `ledger_service`, and
# database `ledger`, and returns only when a real query answers.
# Idempotent: already running → says so, exits 0. Prints the SQLAlchemy URL.
# Env: PG_PORT (55432), PG_START_TIMEOUT (60 s), LEDGER_PG_OS_USER (ledgerpg),
# LEDGER_CACHE_DIR (<repo>/.cache).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEADLINE_S=${PG_START_TIMEOUT:-60}

fail() {
    echo "error: $*" >&2
    if [[ -n ${PG_LOG:-} && -f $PG_LOG ]]; then
        echo "--- last lines of $PG_LOG ---" >&2
        tail -n 30 "$PG_LOG" >&2
    fi
    exit 1
}

ensure_binaries() {
    pg_find_bin && return 0
    ((EUID == 0)) || fail "PostgreSQL server binaries are missing; install Debian's postgresql package"
    echo "Installing PostgreSQL (apt-get install postgresql) ..."
    local out
    if ! out=$( (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql) 2>&1); then
        echo "$out" | tail -n 30 >&2
        fail "apt-get could not install postgresql"
    fi
    pg_find_bin || fail "postgresql installed but no /usr/lib/postgresql/*/bin/postgres found"
}

ensure_os_user() {
    ((EUID == 0)) || { PG_OS_USER=$(id -un); return 0; }
    id -u "$PG_OS_USER" >/dev/null 2>&1 && return 0
    useradd --system --user-group --home-dir "/var/lib/$PG_OS_USER" --create-home \
        --shell /usr/sbin/nologin "$PG_OS_USER" || fail "could not create OS user $PG_OS_USER"
}

prepare_dirs() {
    pg_resolve_root
    mkdir -p "$PG_ROOT" "$PG_SOCK"
    if ((EUID == 0)); then
        chown "$PG_OS_USER:" "$PG_ROOT" "$PG_SOCK"
        [[ -d $PG_DATA ]] && chown -R "$PG_OS_USER:" "$PG_DATA"
        touch "$PG_LOG" && chown "$PG_OS_USER:" "$PG_LOG"
    fi
    chmod 700 "$PG_SOCK"
    as_pg test -w "$PG_ROOT" || fail "$PG_OS_USER cannot write $PG_ROOT"
}

init_cluster() {
    local out
    [[ -f $PG_DATA/PG_VERSION ]] && return 0
    echo "Creating a PostgreSQL cluster in $PG_DATA ..."
    if ! out=$(as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 --no-instructions 2>&1); then
        echo "$out" >&2
        fail "initdb failed"
    fi
    # Our settings live in ledger.conf, rewritten at every start (the port may change).
    echo "include_if_exists = 'ledger.conf'" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

write_settings() {
    as_pg tee "$PG_DATA/ledger.conf" >/dev/null <<CONF
# Written by deploy/postgres/start.sh at every start; edit that script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 128MB
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
# Durable like production: tests measure real commits.
fsync = on
synchronous_commit = on
CONF
}

psql_admin() {
    as_pg "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -qAtX "$@"
}

ensure_role_and_db() {
    psql_admin >/dev/null <<'SQL' || fail "could not create role/database ledger"
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger') THEN
        CREATE ROLE ledger LOGIN SUPERUSER PASSWORD 'ledger';
    ELSE
        ALTER ROLE ledger LOGIN SUPERUSER PASSWORD 'ledger';
    END IF;
END
$$;
SQL
    ensure_least_privilege_roles
    if [[ -z $(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'ledger'") ]]; then
        psql_admin -c "CREATE DATABASE ledger OWNER ledger" >/dev/null \
            || fail "could not create database ledger"
    fi
}

# Least privilege (docs/operations.md, "Database roles"): ledger_owner owns the schema
# and runs the migrations (`ledger migrate --db OWNER_URL --grant ledger_service`);
# ledger_service is what the service connects as: neither owner nor superuser, it gets
# only the grants `ledger migrate --grant` gives. Passwords equal the names (a private
# cluster listening on 127.0.0.1 only).
ensure_least_privilege_roles() {
    psql_admin >/dev/null <<'SQL' || fail "could not create roles ledger_owner/ledger_service"
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['ledger_owner', 'ledger_service'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', name, name);
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS PASSWORD %L', name, name);
    END LOOP;
    ALTER ROLE ledger_service NOINHERIT;
END
$$;
SQL
}

# Poll until the server accepts a password login over TCP and answers a query.
wait_ready() {
    local deadline=$((SECONDS + DEADLINE_S))
    while ((SECONDS < deadline)); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" \
                && PGPASSWORD=ledger "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U ledger \
                    -d ledger -qAtX -c 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    fail "PostgreSQL did not answer on 127.0.0.1:$PG_PORT within ${DEADLINE_S}s"
}

main() {
    local pid started=$SECONDS
    pg_lock
    ensure_binaries
    ensure_os_user
    prepare_dirs
    if pid=$(pg_pid); then
        wait_ready
        ensure_role_and_db
        echo "PostgreSQL already running on 127.0.0.1:$PG_PORT (pid $pid)"
        echo "URL: $PG_URL"
        exit 0
    fi
    if port_open "$PG_PORT"; then
        fail "port $PG_PORT is in use by another process (not this repo's cluster); set PG_PORT"
    fi
    init_cluster
    write_settings
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$DEADLINE_S" -s; then
        fail "pg_ctl start failed"
    fi
    ensure_role_and_db
    wait_ready
    pid=$(pg_pid) || fail "PostgreSQL exited right after starting"
    echo "PostgreSQL started on 127.0.0.1:$PG_PORT (pid $pid) in $((SECONDS - started))s; log: $PG_LOG"
    echo "URL: $PG_URL"
}

main "$@"
