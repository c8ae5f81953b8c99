#!/usr/bin/env bash
# Start a replicated Kafka cluster on 127.0.0.1: three KRaft nodes (each broker and
# controller; all three are the controller quorum), every topic with replication factor 3
# and min.insync.replicas=2 (docs/operations.md "The replicated Kafka cluster").
#
# Set up as deploy/kafka/start.sh sets up the single broker, with the same helpers
# (node.sh): the jars cached in .cache/kafka/libs, the same credentials file
# (.cache/kafka/credentials.json: SASL/SCRAM users added at format time), the same
# authorizer and ACLs (KAFKA_SCRATCH_ACLS=1 adds the tests' scratch prefixes). Node n
# keeps its data, log and pid under .cache/kafka-cluster/node-<n>.
#
# Idempotent: nodes already running are left alone and any node that is not running (say,
# killed) is started again, so this is also how a lost broker is brought back. Nodes are
# launched together (a node finishes starting only once a majority of the quorum is up),
# then each is waited for. Prints the bootstrap servers last.
# Env: KAFKA_CLUSTER_PORT (19101: node n listens on +n-1), KAFKA_CLUSTER_CONTROLLER_PORT
# (19111, likewise), KAFKA_START_TIMEOUT (90 s), KAFKA_HEAP (1g per node),
# LEDGER_CACHE_DIR (<repo>/.cache).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$KAFKA_DEPLOY_DIR/node.sh"

# The cluster id of the nodes already formatted for these credentials (they must agree),
# or a new one when there are none.
cluster_id() {
    local n id="" found
    for ((n = 1; n <= KAFKA_CLUSTER_SIZE; n++)); do
        kafka_cluster_node "$n"
        storage_formatted || continue
        found=$(sed -n 's/^cluster.id=//p' "$KAFKA_DATA/meta.properties")
        [[ -z $id || $id == "$found" ]] || fail "the nodes under $KAFKA_CLUSTER_CACHE" \
            "were formatted for different clusters ($id, $found): stop the cluster and" \
            "delete that directory"
        id=$found
    done
    [[ -n $id ]] || id=$(new_cluster_id)
    echo "$id"
}

main() {
    local n pid id started=$SECONDS waiting=() bootstrap
    bootstrap=$(kafka_cluster_bootstrap)
    kafka_lock "$KAFKA_CLUSTER_CACHE"
    command -v java >/dev/null || fail "java not found (Java 17+ is needed)"
    fetch_jars
    ensure_credentials
    id=$(cluster_id)
    for ((n = 1; n <= KAFKA_CLUSTER_SIZE; n++)); do
        kafka_cluster_node "$n"
        if pid=$(kafka_pid); then
            waiting+=("$n")
            continue
        fi
        port_open "$KAFKA_PORT" && fail "port $KAFKA_PORT (node $n) is in use by another" \
            "process (not this cluster's); set KAFKA_CLUSTER_PORT"
        port_open "$KAFKA_CONTROLLER_PORT" && fail "port $KAFKA_CONTROLLER_PORT (node $n's" \
            "controller) is in use by another process; set KAFKA_CLUSTER_CONTROLLER_PORT"
        render_config
        format_storage "$id"
        launch
        echo "Kafka node $n launched on 127.0.0.1:$KAFKA_PORT"
        waiting+=("$n")
    done
    for n in "${waiting[@]}"; do
        kafka_cluster_node "$n"
        pid=$(wait_ready)
        echo "Kafka node $n running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
    done
    apply_acls "$bootstrap"
    echo "Kafka cluster ready in $((SECONDS - started))s (replication factor" \
        "$KAFKA_CLUSTER_REPLICATION, min.insync.replicas $KAFKA_CLUSTER_MIN_ISR);" \
        "logs: $KAFKA_CLUSTER_CACHE/node-*/broker.log"
    echo "bootstrap servers: $bootstrap"
}

main "$@"
