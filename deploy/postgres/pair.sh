#!/usr/bin/env bash
# A PostgreSQL primary with a streaming standby on one machine, for failover drills and the
# failover test (docs/operations.md, "A standby, and failing over to it"). The single
# server of start.sh stays the default; this pair is separate (its own ports and data).
#
#   pair.sh start         the primary on 127.0.0.1:$PG_PRIMARY_PORT (56540), made by start.sh
#                         (roles, database ledger, migrated), a physical replication slot,
#                         a base backup of it (pg_basebackup) and the standby streaming from
#                         the slot on 127.0.0.1:$PG_STANDBY_PORT (56541); returns once the
#                         standby streams. Writes <pair>/postgres.env: the URLs name both
#                         servers with target_session_attrs=primary, so clients connect to
#                         whichever is the primary. Idempotent.
#   pair.sh promote       the standby becomes a primary (pg_ctl promote, waited for).
#   pair.sh kill-primary  SIGKILL the primary's postmaster and every process of it at once:
#                         a crash, for drills (nothing flushed, no shutdown checkpoint).
#   pair.sh status        each server: down, primary or standby, and the replication state.
#   pair.sh stop          stop both (fast: sessions rolled back); nothing is left running.
#   pair.sh destroy       stop, then delete both servers' data (the next start is fresh).
#
# After a promotion the old primary is never started again by `start` (two primaries would
# diverge): `start` says so; `destroy` then `start` begins a new pair.
#
# Env: PG_PRIMARY_PORT (56540), PG_STANDBY_PORT (56541), PG_PAIR_DIR (<cache>/postgres-pair),
# PG_PAIR_SYNC (off; on: synchronous replication, commits wait for the standby's flush),
# PG_PAIR_SHARED_BUFFERS (256MB), and start.sh's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/start.sh"   # its functions; it runs nothing sourced

PRIMARY_PORT=${PG_PRIMARY_PORT:-56540}
STANDBY_PORT=${PG_STANDBY_PORT:-56541}
PAIR_DIR=${PG_PAIR_DIR:-$CACHE_DIR/postgres-pair}
PAIR_ENV_FILE=$PAIR_DIR/postgres.env
SLOT=ledger_standby            # the standby's replication slot and application_name
# Two servers of a drill share the machine: smaller than the single server's defaults.
PG_SHARED_BUFFERS=${PG_PAIR_SHARED_BUFFERS:-256MB}
PG_EFFECTIVE_CACHE_SIZE=${PG_PAIR_EFFECTIVE_CACHE_SIZE:-1GB}
PG_MAX_WAL_SIZE=${PG_PAIR_MAX_WAL_SIZE:-1GB}

((PRIMARY_PORT != STANDBY_PORT)) || fail "PG_PRIMARY_PORT and PG_STANDBY_PORT must differ"

# Select server $1 (primary|standby): its port, cache dir and (pg_resolve_root) data dir.
node() {
    CACHE_DIR=$PAIR_DIR/$1
    case $1 in
        primary) PG_PORT=$PRIMARY_PORT ;;
        standby) PG_PORT=$STANDBY_PORT ;;
    esac
    mkdir -p "$CACHE_DIR"   # before pg_resolve_root, which checks the OS user reaches it
    pg_resolve_root
}

pair_lock() {
    mkdir -p "$PAIR_DIR"
    exec 9>"$PAIR_DIR/.pair.lock"
    flock -w 300 9 || fail "timed out waiting for $PAIR_DIR/.pair.lock"
}

# True when the selected server's data dir exists and it was a standby that got promoted.
promoted() {
    [[ -f $PG_DATA/PG_VERSION && ! -f $PG_DATA/standby.signal ]]
}

# The replication settings of the primary (PG_EXTRA_SETTINGS of its start.sh).
primary_settings() {
    # a standby away for long must not fill the primary's disk with WAL kept for its slot
    echo "max_slot_wal_keep_size = 4GB"
    # synchronous replication, once the standby streams (sync_replication below)
    echo "include_if_exists = '$SYNC_CONF'"
}

# Synchronous replication is switched on only once the standby streams, and off before
# the primary (re)starts: start.sh writes to the primary (roles, migrations), and with
# synchronous_standby_names set and no standby those commits would wait forever.
SYNC_CONF=pair-sync.conf
sync_replication() {
    local want=$1
    if [[ $want == on ]]; then
        echo "synchronous_standby_names = '$SLOT'" | as_pg tee "$PG_DATA/$SYNC_CONF" >/dev/null
    else
        as_pg rm -f "$PG_DATA/$SYNC_CONF"
    fi
    if pg_pid >/dev/null; then
        psql_admin -c "SELECT pg_reload_conf()" >/dev/null || fail "could not reload the primary's settings"
    fi
}

# Poll the primary until the standby's sync_state is $1 (sync or async).
wait_sync_state() {
    local deadline=$((SECONDS + DEADLINE_S)) state
    while ((SECONDS < deadline)); do
        state=$(psql_admin -c "SELECT sync_state FROM pg_stat_replication
                               WHERE application_name = '$SLOT'" 2>/dev/null || true)
        [[ $state == "$1" ]] && return 0
        sleep 0.2
    done
    fail "the standby's replication did not become $1 within ${DEADLINE_S}s"
}

start_primary() {
    local primary_settings
    primary_settings=$(primary_settings)
    PG_PORT=$PRIMARY_PORT LEDGER_CACHE_DIR=$PAIR_DIR/primary PG_EXTRA_SETTINGS=$primary_settings \
        PG_SHARED_BUFFERS=$PG_SHARED_BUFFERS PG_EFFECTIVE_CACHE_SIZE=$PG_EFFECTIVE_CACHE_SIZE \
        PG_MAX_WAL_SIZE=$PG_MAX_WAL_SIZE bash "$PG_DEPLOY_DIR/start.sh" 9>&- \
        | sed 's/^/primary: /'
}

ensure_slot() {
    psql_admin -c "SELECT pg_create_physical_replication_slot('$SLOT')
                   WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '$SLOT')" \
        >/dev/null || fail "could not create replication slot $SLOT on the primary"
}

# The standby's data: a base backup of the primary, streamed through the slot (so the
# primary keeps every WAL segment the standby has not received yet).
base_backup() {
    local primary_sock=$1 out
    [[ -f $PG_DATA/PG_VERSION ]] && return 0
    echo "standby: base backup of the primary into $PG_DATA ..."
    if ! out=$(as_pg "$PG_BIN/pg_basebackup" -h "$primary_sock" -p "$PRIMARY_PORT" -U postgres \
            -D "$PG_DATA" -X stream -S "$SLOT" -c fast --no-password 2>&1); then
        echo "$out" >&2
        as_pg rm -rf "$PG_DATA"
        fail "pg_basebackup failed"
    fi
}

start_standby() {
    local primary_sock=$1 pid
    if pid=$(pg_pid); then
        echo "standby: already running on 127.0.0.1:$PG_PORT (pid $pid)"
        return 0
    fi
    port_open "$PG_PORT" && fail "port $PG_PORT is in use by another process; set PG_STANDBY_PORT"
    # Over the primary's unix socket as the bootstrap superuser (trust, local only; a
    # production standby uses a REPLICATION role over TLS instead).
    PG_EXTRA_SETTINGS="primary_conninfo = 'host=$primary_sock port=$PRIMARY_PORT user=postgres application_name=$SLOT'
primary_slot_name = '$SLOT'
hot_standby = on
hot_standby_feedback = on"
    write_settings
    as_pg touch "$PG_DATA/standby.signal"
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t "$DEADLINE_S" -s \
        || fail "pg_ctl start of the standby failed"
    echo "standby: started on 127.0.0.1:$PG_PORT (pid $(pg_pid)); log: $PG_LOG"
}

# Poll the primary until the standby streams from it.
wait_streaming() {
    local deadline=$((SECONDS + DEADLINE_S)) state
    while ((SECONDS < deadline)); do
        state=$(psql_admin -c "SELECT state FROM pg_stat_replication
                               WHERE application_name = '$SLOT'" 2>/dev/null || true)
        [[ $state == streaming ]] && return 0
        sleep 0.2
    done
    fail "the standby did not stream from the primary within ${DEADLINE_S}s"
}

# URL of role $1 naming both servers: libpq tries them in order and keeps the first that is
# not in recovery (`primary`, libpq 14+; `read-write` would also turn away the read-only
# sessions of the read commands, which set default_transaction_read_only).
pair_url() {
    local password
    password=$(PG_SECRETS=$PAIR_DIR/primary/postgres-secrets role_password "$1")
    printf 'postgresql+psycopg2://%s:%s@/ledger?host=127.0.0.1:%s&host=127.0.0.1:%s' \
        "$1" "$password" "$PRIMARY_PORT" "$STANDBY_PORT"
    printf '&target_session_attrs=primary&connect_timeout=%s\n' "${PG_PAIR_CONNECT_TIMEOUT:-5}"
}

write_pair_env() {
    (umask 077 && cat >"$PAIR_ENV_FILE.tmp" <<ENV && mv "$PAIR_ENV_FILE.tmp" "$PAIR_ENV_FILE") \
        || fail "could not write $PAIR_ENV_FILE"
# Written by deploy/postgres/pair.sh start (0600: it holds the passwords). Each URL names
# the primary and the standby; target_session_attrs=primary picks the current primary.
LEDGER_DB_URL=$(pair_url "$PG_SERVICE_ROLE")
LEDGER_MIGRATE_DB_URL=$(pair_url "$PG_OWNER_ROLE")
LEDGER_TEST_PG_URL=$(pair_url "$PG_TEST_ROLE")
ENV
    echo "URLs (whichever server is the primary): $PAIR_ENV_FILE (LEDGER_CONFIG=$PAIR_ENV_FILE)"
}

start_pair() {
    local primary_sock
    pair_lock
    ensure_binaries
    ensure_os_user
    node standby
    if promoted; then
        PG_LOG="" fail "the standby ($PG_DATA) was promoted: it is the primary now (port $STANDBY_PORT), and the old primary must not start again beside it. \`pair.sh destroy\` then \`pair.sh start\` begins a new pair."
    fi
    node primary
    [[ -d $PG_DATA ]] && sync_replication off
    start_primary
    primary_sock=$PG_SOCK
    ensure_slot
    node standby
    prepare_dirs
    base_backup "$primary_sock"
    start_standby "$primary_sock"
    node primary
    wait_streaming
    if [[ ${PG_PAIR_SYNC:-off} == on ]]; then
        sync_replication on
        wait_sync_state sync
    fi
    write_pair_env
    echo "pair: primary 127.0.0.1:$PRIMARY_PORT streams to standby 127.0.0.1:$STANDBY_PORT" \
        "($([[ ${PG_PAIR_SYNC:-off} == on ]] && echo synchronous || echo asynchronous))"
}

# Promote the standby; prints the seconds pg_ctl took.
promote() {
    local started=$EPOCHREALTIME
    pair_lock
    pg_find_bin || fail "no PostgreSQL server binaries"
    ((EUID == 0)) || PG_OS_USER=$(id -un)
    node standby
    pg_pid >/dev/null || fail "the standby is not running"
    if promoted; then
        echo "standby on 127.0.0.1:$PG_PORT is already a primary"
        return 0
    fi
    as_pg "$PG_BIN/pg_ctl" promote -D "$PG_DATA" -w -t "$DEADLINE_S" -s || fail "pg_ctl promote failed"
    echo "standby on 127.0.0.1:$PG_PORT promoted to primary in" \
        "$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')s"
}

kill_primary() {
    local pid children
    pair_lock
    node primary
    if ! pid=$(pg_pid); then
        echo "primary is not running"
        return 0
    fi
    # the postmaster and its children in one signal: no child outlives it to finish work
    children=$(ps -o pid= --ppid "$pid" | tr -s ' \n' ' ')
    # shellcheck disable=SC2086
    kill -KILL "$pid" $children
    local deadline=$((SECONDS + 10))
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.05; done
    echo "primary killed (SIGKILL to postmaster $pid and ${children:-no children})"
}

status() {
    local which pid role
    pg_find_bin || fail "no PostgreSQL server binaries"
    ((EUID == 0)) || PG_OS_USER=$(id -un)
    for which in primary standby; do
        node "$which"
        if ! pid=$(pg_pid); then
            echo "$which: down (127.0.0.1:$PG_PORT)"
            continue
        fi
        role=$(psql_admin -c "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby' ELSE 'primary' END")
        echo "$which: up, $role (127.0.0.1:$PG_PORT, pid $pid)"
        if [[ $role == primary ]]; then
            psql_admin -F ' ' -c "SELECT 'replication:', application_name, state, sync_state,
                    'replay lag bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
                FROM pg_stat_replication" || true
        fi
    done
}

stop_pair() {
    local which
    pair_lock
    pg_find_bin || return 0
    ((EUID == 0)) || PG_OS_USER=$(id -un)
    for which in standby primary; do
        node "$which"
        if ! PG_STOP_TIMEOUT=${PG_STOP_TIMEOUT:-30} LEDGER_CACHE_DIR=$CACHE_DIR PG_PORT=$PG_PORT \
                bash "$PG_DEPLOY_DIR/stop.sh" 9>&- | sed "s/^/$which: /"; then
            # a fast stop waits for every session and WAL sender; a drill must not leave
            # a server running because one of them hangs
            echo "$which: fast stop failed; stopping immediately"
            as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 -s || true
        fi
    done
}

destroy() {
    local which
    stop_pair
    for which in standby primary; do
        node "$which"
        rm -rf "$PG_ROOT" "$PAIR_DIR/$which"
    done
    rm -f "$PAIR_ENV_FILE"
    echo "pair destroyed ($PAIR_DIR)"
}

case ${1:-} in
    start) start_pair ;;
    promote) promote ;;
    kill-primary) kill_primary ;;
    status) status ;;
    stop) stop_pair ;;
    destroy) destroy ;;
    *)
        echo "usage: $0 start|promote|kill-primary|status|stop|destroy" >&2
        exit 2
        ;;
esac
