# Shared settings and helpers for the deploy/kafka scripts (sourced, not run).
# Everything a broker writes lives under $KAFKA_CACHE (the single broker) or
# $KAFKA_CLUSTER_CACHE (the three-node cluster), both git-ignored.

KAFKA_DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$KAFKA_DEPLOY_DIR/../lib.sh"
REPO_DIR=$(cd "$KAFKA_DEPLOY_DIR/../.." && pwd)
KAFKA_CACHE=${LEDGER_CACHE_DIR:-$REPO_DIR/.cache}/kafka
KAFKA_LIBS=$KAFKA_CACHE/libs
# SASL/SCRAM principals, one per role (0600; ledger/kafka/auth.py reads it through
# LEDGER_KAFKA_CREDENTIALS), and a client config for Kafka's own CLI tools as the admin
# (0600). Generated at the single broker's or the cluster's first start, kept after; the
# cluster uses the same file, so clients authenticate to either the same way.
KAFKA_CREDENTIALS=$KAFKA_CACHE/credentials.json
KAFKA_ADMIN_CONFIG=$KAFKA_CACHE/admin.properties
KAFKA_PY=$REPO_DIR/.venv/bin/python

# Select one KRaft node (broker and controller in one process): sets the variables the
# helpers of node.sh work on. Arguments: its directory, client port, controller port,
# node id, the quorum's voters, the replication factor and min.insync.replicas.
kafka_node() {
    KAFKA_NODE_DIR=$1 KAFKA_PORT=$2 KAFKA_CONTROLLER_PORT=$3 KAFKA_NODE_ID=$4
    KAFKA_VOTERS=$5 KAFKA_REPLICATION=$6 KAFKA_MIN_ISR=$7
    KAFKA_DATA=$KAFKA_NODE_DIR/data
    KAFKA_PIDFILE=$KAFKA_NODE_DIR/kafka.pid
    KAFKA_LOG=$KAFKA_NODE_DIR/broker.log
    KAFKA_OUT=$KAFKA_NODE_DIR/broker.out
    KAFKA_PROPS=$KAFKA_NODE_DIR/server.properties
    # The data dir was formatted with the SCRAM users of the credentials file.
    KAFKA_SECURED_STAMP=$KAFKA_DATA/ledger-scram.sha256
}

# The single broker (the default for tests and quick runs): node 1 of a quorum of one,
# every topic with one replica.
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
kafka_node "$KAFKA_CACHE" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" 1 \
    "1@127.0.0.1:$KAFKA_CONTROLLER_PORT" 1 1

# The cluster (deploy/kafka/start-cluster.sh): three nodes, node n on client port
# KAFKA_CLUSTER_PORT+n-1 and controller port KAFKA_CLUSTER_CONTROLLER_PORT+n-1; every
# topic with three replicas, an acks=all write needs two of them in sync.
# KAFKA_CLUSTER_DIR moves it (deploy/test.sh gives each test run a cluster of its own).
KAFKA_CLUSTER_CACHE=${KAFKA_CLUSTER_DIR:-${LEDGER_CACHE_DIR:-$REPO_DIR/.cache}/kafka-cluster}
KAFKA_CLUSTER_SIZE=3
KAFKA_CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-19101}
KAFKA_CLUSTER_CONTROLLER_PORT=${KAFKA_CLUSTER_CONTROLLER_PORT:-19111}
KAFKA_CLUSTER_REPLICATION=3
KAFKA_CLUSTER_MIN_ISR=2

kafka_cluster_voters() {
    local n voters=()
    for ((n = 1; n <= KAFKA_CLUSTER_SIZE; n++)); do
        voters+=("$n@127.0.0.1:$((KAFKA_CLUSTER_CONTROLLER_PORT + n - 1))")
    done
    (IFS=, && echo "${voters[*]}")
}

# Select node $1 (1..3) of the cluster.
kafka_cluster_node() {
    kafka_node "$KAFKA_CLUSTER_CACHE/node-$1" "$((KAFKA_CLUSTER_PORT + $1 - 1))" \
        "$((KAFKA_CLUSTER_CONTROLLER_PORT + $1 - 1))" "$1" "$(kafka_cluster_voters)" \
        "$KAFKA_CLUSTER_REPLICATION" "$KAFKA_CLUSTER_MIN_ISR"
}

# The cluster's bootstrap servers, every node: 127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3
kafka_cluster_bootstrap() {
    local n servers=()
    for ((n = 1; n <= KAFKA_CLUSTER_SIZE; n++)); do
        servers+=("127.0.0.1:$((KAFKA_CLUSTER_PORT + n - 1))")
    done
    (IFS=, && echo "${servers[*]}")
}

# Print the selected node's pid if its pid file names a live kafka.Kafka process (a
# zombie or a recycled pid has another command line and does not count).
kafka_pid() {
    live_pid "$KAFKA_PIDFILE" 'kafka\.Kafka'
}

# Serialise start/stop of a broker or of the cluster (parallel test runs share them):
# the lock of directory $1 (default the single broker's).
kafka_lock() {
    local dir=${1:-$KAFKA_CACHE}
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -w 300 9 || { echo "error: timed out waiting for $dir/.lock" >&2; exit 1; }
}
