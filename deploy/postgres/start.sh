#!/usr/bin/env bash
# Start the project's private PostgreSQL cluster on 127.0.0.1:$PG_PORT (55432).
#
# Installs Debian's `postgresql` package when no server binaries exist under
# /usr/lib/postgresql, creates the OS user `ledgerpg`, runs initdb once, starts the
# cluster, ensures the roles `ledger_owner` (owns database `ledger`, runs `ledger migrate`),
# `ledger_service` (least privilege: what consume/ingest/serve connect as) and
# `ledger_test_admin` (tests only: scratch databases), none a superuser, with generated
# passwords (<cache>/postgres-secrets/, 0600); migrates an older cluster whose `ledger`
# role was a superuser; returns only when the service role's query answers. Writes the
# URLs to <cache>/postgres.env (0600, a LEDGER_CONFIG file), prints them masked, and runs
# `ledger migrate` on database `ledger` when .venv exists.
# Idempotent: already running → says so, exits 0.
# Env: PG_PORT (55432), PG_START_TIMEOUT (60 s), LEDGER_PG_OS_USER (ledgerpg),
# LEDGER_CACHE_DIR (<repo>/.cache), PG_EXTRA_SETTINGS (lines appended to ledger.conf;
# deploy/postgres/pair.sh sets replication settings with it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEADLINE_S=${PG_START_TIMEOUT:-60}
# Sized for a dedicated 24 GiB machine's test cluster (docs/operations.md); a server
# restart applies a change (stop.sh, then start.sh).
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-2GB}
PG_EFFECTIVE_CACHE_SIZE=${PG_EFFECTIVE_CACHE_SIZE:-8GB}
PG_MAX_WAL_SIZE=${PG_MAX_WAL_SIZE:-8GB}
PG_CHECKPOINT_TIMEOUT=${PG_CHECKPOINT_TIMEOUT:-15min}

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
# Memory and checkpoints (docs/operations.md, "PostgreSQL settings"): the ledger's indexes
# must stay in shared_buffers as the ledger grows, and a checkpoint every few minutes
# rewrites each touched index page whole into the WAL (full-page writes) once per cycle.
shared_buffers = $PG_SHARED_BUFFERS
effective_cache_size = $PG_EFFECTIVE_CACHE_SIZE
maintenance_work_mem = 256MB
max_wal_size = $PG_MAX_WAL_SIZE
checkpoint_timeout = $PG_CHECKPOINT_TIMEOUT
checkpoint_completion_target = 0.9
# per-statement cost (bench/pg_cost.py); the view lives in database postgres
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
# Durable like production: tests measure real commits.
fsync = on
synchronous_commit = on
${PG_EXTRA_SETTINGS:-}
CONF
}

psql_admin() {
    as_pg "$PG_BIN/psql" -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -qAtX "$@"
}

# The password of role $1: generated once (48 hex digits) into a 0600 file, then reused.
role_password() {
    local file=$PG_SECRETS/$1
    if [[ ! -s $file ]]; then
        (umask 077 && mkdir -p "$PG_SECRETS" && od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$file.tmp" \
            && mv "$file.tmp" "$file") || fail "could not write $file"
    fi
    chmod 600 "$file"
    [[ $(<"$file") =~ ^[0-9a-f]{48}$ ]] || fail "$file does not hold a generated password; delete it"
    cat "$file"
}

role_url() {
    echo "postgresql+psycopg2://$1:$(role_password "$1")@127.0.0.1:$PG_PORT/ledger"
}

# Roles, database `ledger` and its ownership, idempotently (SQL as the bootstrap superuser
# over the unix socket). A cluster made by an older start.sh had `ledger` as a SUPERUSER
# with password `ledger` owning database `ledger`: that role is demoted (NOSUPERUSER
# NOLOGIN, no password) and what it owned goes to the owner role.
ensure_role_and_db() {
    local out owner_pw service_pw tester_pw
    owner_pw=$(role_password "$PG_OWNER_ROLE")
    service_pw=$(role_password "$PG_SERVICE_ROLE")
    tester_pw=$(role_password "$PG_TEST_ROLE")
    # The passwords go in on stdin (hex digits only), never on a command line `ps` shows.
    out=$( {
        printf "SELECT set_config('ledger.%s_pw', '%s', false) \\g /dev/null\n" \
            owner "$owner_pw" service "$service_pw" tester "$tester_pw"
        cat <<'SQL'
SELECT set_config('ledger.owner', :'owner', false), set_config('ledger.service', :'service', false),
       set_config('ledger.tester', :'tester', false) \g /dev/null
DO $$
DECLARE
    owner text := current_setting('ledger.owner');
    service text := current_setting('ledger.service');
    tester text := current_setting('ledger.tester');
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY[owner, service, tester] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I', name);
        END IF;
    END LOOP;
    -- None may be a superuser, create roles, replicate or bypass row security.
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                   'NOBYPASSRLS INHERIT PASSWORD %L', owner, current_setting('ledger.owner_pw'));
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
                   'NOBYPASSRLS NOINHERIT PASSWORD %L', service,
                   current_setting('ledger.service_pw'));
    -- Tests only: creates scratch databases owned by the owner role (so is a member of it),
    -- drops them with their sessions, and lifts the append-only triggers to tamper.
    EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION '
                   'NOBYPASSRLS INHERIT PASSWORD %L', tester, current_setting('ledger.tester_pw'));
    IF NOT pg_has_role(tester, owner, 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', owner, tester);
    END IF;
    IF NOT pg_has_role(tester, 'pg_signal_backend', 'MEMBER') THEN
        EXECUTE format('GRANT pg_signal_backend TO %I', tester);
    END IF;
    IF current_setting('server_version_num')::int >= 150000 THEN
        EXECUTE format('GRANT SET ON PARAMETER session_replication_role TO %I', tester);
        -- the benchmarks start each measured step after a checkpoint (bench/pg_cost.py)
        EXECUTE format('GRANT pg_checkpoint TO %I', tester);
    END IF;
    -- The service role is a member of nothing: it holds only what `ledger migrate` grants.
    FOR name IN SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
                 WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = service) LOOP
        EXECUTE format('REVOKE %I FROM %I', name, service);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger'
               AND (rolsuper OR rolcanlogin OR rolcreatedb OR rolcreaterole)) THEN
        ALTER ROLE ledger NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
            NOLOGIN PASSWORD NULL;
        RAISE NOTICE 'migrated: role ledger (SUPERUSER, password ledger, made by an older start.sh) is now NOSUPERUSER NOLOGIN';
    END IF;
END
$$;
SELECT format('CREATE DATABASE ledger OWNER %I', :'owner')
    WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ledger') \gexec
SQL
    } | psql_admin -v owner="$PG_OWNER_ROLE" -v service="$PG_SERVICE_ROLE" \
        -v tester="$PG_TEST_ROLE" 2>&1) || { echo "$out" >&2; fail "could not set up the roles and database ledger"; }
    [[ -z $out ]] || sed 's/^NOTICE: */start.sh: /' <<<"$out"
    ensure_ownership
    ensure_statement_stats
}

# pg_stat_statements in database postgres (the statistics cover every database), readable
# and resettable by the test role, for the benchmarks (bench/pg_cost.py).
ensure_statement_stats() {
    local out
    out=$(psql_admin -v tester="$PG_TEST_ROLE" 2>&1 <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SELECT format('GRANT pg_read_all_stats TO %I', :'tester')
    WHERE NOT pg_has_role(:'tester', 'pg_read_all_stats', 'MEMBER') \gexec
GRANT EXECUTE ON FUNCTION pg_stat_statements_reset(oid, oid, bigint) TO :"tester";
SQL
    ) || { echo "$out" >&2; fail "could not set up pg_stat_statements"; }
}

# Database `ledger` belongs to the owner role, with everything in it (an older cluster's
# tables belonged to the superuser `ledger`). PUBLIC may neither create objects in schema
# public (PostgreSQL < 15 allowed it) nor make temporary tables in the database.
ensure_ownership() {
    local out stale
    stale=$(psql_admin -d ledger -v owner="$PG_OWNER_ROLE" <<'SQL'
SELECT 1 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
    WHERE d.datname = 'ledger' AND r.rolname <> :'owner'
UNION ALL
SELECT 1 FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
    WHERE r.rolname = 'ledger' LIMIT 1
SQL
    ) || fail "could not read the owner of database ledger"
    out=$(psql_admin -d ledger -v owner="$PG_OWNER_ROLE" 2>&1 <<'SQL'
SELECT format('ALTER DATABASE ledger OWNER TO %I', :'owner')
    FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba
    WHERE d.datname = 'ledger' AND r.rolname <> :'owner' \gexec
SELECT format('REASSIGN OWNED BY ledger TO %I', :'owner')
    WHERE EXISTS (SELECT 1 FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE r.rolname = 'ledger' AND n.nspname = 'public') \gexec
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner')
    FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
    WHERE n.nspname = 'public' AND r.rolname NOT IN (:'owner', 'pg_database_owner') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE ledger FROM PUBLIC;
SQL
    ) || { echo "$out" >&2; fail "could not give database ledger to $PG_OWNER_ROLE"; }
    if [[ -n $stale ]]; then
        echo "start.sh: migrated: database ledger and its objects now belong to $PG_OWNER_ROLE"
    fi
}

# Grant the service role its privileges on database `ledger` (`ledger migrate`, as the
# owner; it also brings the schema to the latest revision). Skipped, with the command to
# run, when the virtualenv is not there yet.
migrate_ledger() {
    local ledger_bin=$REPO_DIR/.venv/bin/ledger out
    if [[ ! -x $ledger_bin ]]; then
        echo "next: LEDGER_CONFIG=$PG_ENV_FILE .venv/bin/ledger migrate (no .venv yet)"
        return 0
    fi
    if ! out=$(LEDGER_CONFIG=$PG_ENV_FILE "$ledger_bin" migrate 2>&1); then
        echo "warning: \`ledger migrate\` on database ledger failed: $out" >&2
        return 0
    fi
    echo "database ledger: $out"
}

# Write the LEDGER_* settings file (0600: it holds passwords) and print the URLs, masked.
write_urls() {
    local service owner tester
    service=$(role_url "$PG_SERVICE_ROLE")
    owner=$(role_url "$PG_OWNER_ROLE")
    tester=$(role_url "$PG_TEST_ROLE")
    (umask 077 && cat >"$PG_ENV_FILE.tmp" <<ENV && mv "$PG_ENV_FILE.tmp" "$PG_ENV_FILE") \
        || fail "could not write $PG_ENV_FILE"
# Written by deploy/postgres/start.sh at every start (0600: it holds the passwords).
# Use it as a settings file: LEDGER_CONFIG=$PG_ENV_FILE ledger consume
# service, for consume/ingest/serve and the read commands (least privilege)
LEDGER_DB_URL=$service
# owner, for ledger migrate (owns database ledger; not a superuser)
LEDGER_MIGRATE_DB_URL=$owner
# tests and benchmarks only: creates scratch databases (deploy/test.sh exports it)
LEDGER_TEST_PG_URL=$tester
ENV
    chmod 600 "$PG_ENV_FILE"
    echo "URL (service, for consume/ingest/serve): $(pg_masked "$service")"
    echo "URL (owner, for ledger migrate): $(pg_masked "$owner")"
    echo "URL (tests only, scratch databases): $(pg_masked "$tester")"
    echo "Passwords: $PG_SECRETS/; settings file: $PG_ENV_FILE (LEDGER_CONFIG=$PG_ENV_FILE)"
}

# Poll until the server accepts a password login over TCP and answers a query.
wait_ready() {
    local deadline=$((SECONDS + DEADLINE_S))
    while ((SECONDS < deadline)); do
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" \
                && PGPASSWORD=$(role_password "$PG_SERVICE_ROLE") "$PG_BIN/psql" -h 127.0.0.1 \
                    -p "$PG_PORT" -U "$PG_SERVICE_ROLE" -d ledger -qAtX -c 'SELECT 1' \
                    >/dev/null 2>&1; then
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
        ensure_role_and_db
        wait_ready
        write_urls
        migrate_ledger
        echo "PostgreSQL already running on 127.0.0.1:$PG_PORT (pid $pid)"
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
    write_urls
    migrate_ledger
    echo "PostgreSQL started on 127.0.0.1:$PG_PORT (pid $pid) in $((SECONDS - started))s; log: $PG_LOG"
}

# Sourced by deploy/postgres/pair.sh for its functions; run, it starts the cluster.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
