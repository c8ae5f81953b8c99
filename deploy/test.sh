#!/usr/bin/env bash
# Run the test suite against the real servers: `deploy/test.sh [pytest args]`.
#
# Bootstraps .venv, starts Kafka and PostgreSQL when they are not already running, exports
# LEDGER_TEST_KAFKA_BOOTSTRAP, LEDGER_KAFKA_CREDENTIALS (the secured broker's principals,
# .cache/kafka/credentials.json; its ACLs get the scratch prefixes tests use),
# LEDGER_TEST_PG_URL (the test admin: scratch databases), LEDGER_TEST_PG_OWNER_URL,
# LEDGER_TEST_PG_SERVICE_URL and LEDGER_TEST_PG_ENV_FILE, runs `python -m pytest "$@"` and exits
# with pytest's code (5, no tests collected, counts as a failure like any non-zero code).
#
# Stopping, in an EXIT trap (also on failure or Ctrl-C): a server is stopped only if a
# test.sh run started it; one that was already running (say, from deploy/kafka/start.sh)
# is left alone. Test runs in parallel share the servers: each holds a lease
# (<cache>/test-runs/<pid>) and the last run to finish stops what test runs started.
# A run of unit tests only (every path given under tests/unit) starts no server.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/kafka/common.sh"
source "$HERE/postgres/common.sh"
RUNS=$CACHE_DIR/test-runs

bash "$HERE/bootstrap.sh"

runs_lock() {
    mkdir -p "$RUNS"
    exec 7>"$CACHE_DIR/.test-runs.lock"
    flock -w 600 7 || { echo "error: timed out waiting for $CACHE_DIR/.test-runs.lock" >&2; exit 1; }
}
runs_unlock() { exec 7>&-; }

# Leases of runs whose process is gone (killed with SIGKILL, say) are dropped.
prune_leases() {
    local lease
    for lease in "$RUNS"/run-*; do
        [[ -e $lease ]] || continue
        kill -0 "${lease##*/run-}" 2>/dev/null || rm -f "$lease"
    done
}

server_pid() {
    case $1 in
        kafka) kafka_pid ;;
        postgres) pg_resolve_root; pg_pid ;;
    esac
}

# Start $1 unless running; remember the pid of a server this run started.
start_server() {
    local pid
    if ! server_pid "$1" >/dev/null; then
        bash "$HERE/$1/start.sh" 7>&-
        pid=$(server_pid "$1") || { echo "error: $1 is not running after start" >&2; exit 1; }
        echo "$pid" >"$RUNS/$1.started"
    else
        bash "$HERE/$1/start.sh" 7>&-   # prints "already running" and checks it answers
    fi
}

# Stop $1 if a test run started it and it is still that same process.
stop_server() {
    local marker=$RUNS/$1.started pid
    [[ -f $marker ]] || return 0
    if pid=$(server_pid "$1") && [[ $pid == "$(<"$marker")" ]]; then
        bash "$HERE/$1/stop.sh" 7>&- || true
    fi
    rm -f "$marker"
}

cleanup() {
    local rc=$? lease
    trap - EXIT INT TERM
    stop_own_servers
    runs_lock
    rm -f "$RUNS/run-$$"
    prune_leases
    if ! compgen -G "$RUNS/run-*" >/dev/null; then
        stop_server kafka
        stop_server postgres
    else
        echo "Servers left running for other test runs: $(ls "$RUNS" | grep '^run-' | tr '\n' ' ')"
    fi
    runs_unlock
    exit "$rc"
}


# The cluster and standby-pair tests start servers of their own (deploy/kafka/start-cluster.sh,
# deploy/postgres/pair.sh). Each run gets its own directories and ports for them, so two runs
# at once never start, adopt or stop each other's; settings given in the environment win.
OWN=$RUNS/own-$$
own_servers() {
    local base
    base=$("$REPO_DIR/.venv/bin/python" - <<'PY'
import random, socket
def free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
# below the kernel's ephemeral range, where a client's connection could take a port first
for base in random.sample(range(20000, 30000, 20), 500):
    if all(free(base + n) for n in (0, 1, 2, 5, 6, 10, 11, 12)):
        print(base)
        break
PY
    ) && [[ -n $base ]] || { echo "error: no free ports for the cluster and pair tests" >&2; exit 1; }
    # printenv: what the caller exported (deploy/kafka/common.sh sets defaults unexported)
    export KAFKA_CLUSTER_PORT=$(printenv KAFKA_CLUSTER_PORT || echo "$base")
    export KAFKA_CLUSTER_CONTROLLER_PORT=$(printenv KAFKA_CLUSTER_CONTROLLER_PORT || echo $((base + 10)))
    export PG_PRIMARY_PORT=$(printenv PG_PRIMARY_PORT || echo $((base + 5)))
    export PG_STANDBY_PORT=$(printenv PG_STANDBY_PORT || echo $((base + 6)))
    export KAFKA_CLUSTER_DIR=$(printenv KAFKA_CLUSTER_DIR || echo "$OWN/kafka-cluster")
    export PG_PAIR_DIR=$(printenv PG_PAIR_DIR || echo "$OWN/postgres-pair")
}

# What a test left of them (it died before its teardown): stopped, and their directories gone.
stop_own_servers() {
    [[ -d $OWN ]] || return 0
    [[ ${KAFKA_CLUSTER_DIR:-} == "$OWN"/* ]] && bash "$HERE/kafka/stop-cluster.sh" 7>&- >/dev/null 2>&1
    [[ ${PG_PAIR_DIR:-} == "$OWN"/* ]] && bash "$HERE/postgres/pair.sh" destroy 7>&- >/dev/null 2>&1
    rm -rf "$OWN"
    return 0
}

# Unit tests need no server: a run whose every path is under tests/unit starts none.
needs_servers() {
    local arg path paths=0
    for arg in "$@"; do
        path=${arg%%::*}
        [[ $arg != -* && -e $REPO_DIR/$path ]] || continue
        paths=$((paths + 1))
        [[ $(realpath "$REPO_DIR/$path") == "$REPO_DIR"/tests/unit* ]] || return 0
    done
    ((paths == 0))
}

cd "$REPO_DIR"
if needs_servers "$@"; then
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    runs_lock
    prune_leases
    touch "$RUNS/run-$$"
    own_servers
    KAFKA_SCRATCH_ACLS=1 start_server kafka
    start_server postgres
    runs_unlock
    export LEDGER_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
    # The roles' URLs (deploy/postgres/start.sh wrote them): the test admin creates scratch
    # databases; the service runs in them as the service role after the owner migrates.
    LEDGER_TEST_PG_URL=$(pg_setting LEDGER_TEST_PG_URL) \
        && LEDGER_TEST_PG_OWNER_URL=$(pg_setting LEDGER_MIGRATE_DB_URL) \
        && LEDGER_TEST_PG_SERVICE_URL=$(pg_setting LEDGER_DB_URL) \
        || { echo "error: no role URLs in $PG_ENV_FILE (deploy/postgres/start.sh writes them)" >&2; exit 1; }
    export LEDGER_TEST_PG_URL LEDGER_TEST_PG_OWNER_URL LEDGER_TEST_PG_SERVICE_URL
    export LEDGER_TEST_PG_ENV_FILE=$PG_ENV_FILE
    export LEDGER_KAFKA_CREDENTIALS=$KAFKA_CREDENTIALS
else
    echo "Only unit tests selected: Kafka and PostgreSQL are not started."
fi

set +e
"$REPO_DIR/.venv/bin/python" -m pytest "$@"
rc=$?
set -e
if ((rc == 5)); then
    echo "error: pytest collected no tests (exit 5): counted as a failure" >&2
fi
exit "$rc"
