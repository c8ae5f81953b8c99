# Shared settings and helpers for deploy/kafka/start.sh and stop.sh (sourced, not run).
# Everything the broker writes lives under $KAFKA_CACHE (git-ignored).

KAFKA_DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$KAFKA_DEPLOY_DIR/../lib.sh"
REPO_DIR=$(cd "$KAFKA_DEPLOY_DIR/../.." && pwd)
KAFKA_CACHE=${LEDGER_CACHE_DIR:-$REPO_DIR/.cache}/kafka
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
KAFKA_LIBS=$KAFKA_CACHE/libs
KAFKA_DATA=$KAFKA_CACHE/data
KAFKA_PIDFILE=$KAFKA_CACHE/kafka.pid
KAFKA_LOG=$KAFKA_CACHE/broker.log
KAFKA_PROPS=$KAFKA_CACHE/server.properties
# SASL/SCRAM principals of this broker, one per role (0600; ledger/kafka/auth.py reads it
# through LEDGER_KAFKA_CREDENTIALS), and a client config for Kafka's own CLI tools as the
# admin (0600). Generated at first start, kept across restarts.
KAFKA_CREDENTIALS=$KAFKA_CACHE/credentials.json
KAFKA_ADMIN_CONFIG=$KAFKA_CACHE/admin.properties
# The data dir was formatted with the SCRAM users of this credentials file.
KAFKA_SECURED_STAMP=$KAFKA_DATA/ledger-scram.sha256
KAFKA_PY=$REPO_DIR/.venv/bin/python

# Print the broker's pid if the pid file names a live kafka.Kafka process (a zombie or a
# recycled pid has another command line and does not count).
kafka_pid() {
    live_pid "$KAFKA_PIDFILE" 'kafka\.Kafka'
}

# Serialise start/stop of this broker (parallel test runs share it).
kafka_lock() {
    mkdir -p "$KAFKA_CACHE"
    exec 9>"$KAFKA_CACHE/.lock"
    flock -w 300 9 || { echo "error: timed out waiting for $KAFKA_CACHE/.lock" >&2; exit 1; }
}
