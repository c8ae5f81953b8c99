#!/usr/bin/env bash
# Stop the Kafka cluster started by deploy/kafka/start-cluster.sh: SIGTERM to every node
# at once (one by one, the last ones would wait for a controller quorum that is already
# gone), then SIGKILL to any still alive after KAFKA_STOP_TIMEOUT seconds (30). Nodes not
# running are skipped; none running: says so and exits 0. Data is kept (start again with
# start-cluster.sh; delete .cache/kafka-cluster for a fresh cluster).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$KAFKA_DEPLOY_DIR/node.sh"

main() {
    local n pid pids=() stopping=()
    kafka_lock "$KAFKA_CLUSTER_CACHE"
    for ((n = 1; n <= KAFKA_CLUSTER_SIZE; n++)); do
        kafka_cluster_node "$n"
        if pid=$(kafka_pid); then
            kill -TERM "$pid" 2>/dev/null || true
            stopping+=("$n")
            pids+=("$pid")
        else
            rm -f "$KAFKA_PIDFILE"
        fi
    done
    if ((${#stopping[@]} == 0)); then
        echo "Kafka cluster is not running"
        exit 0
    fi
    for n in "${stopping[@]}"; do
        kafka_cluster_node "$n"
        pid=$(kafka_pid) || continue
        if ! wait_gone "${KAFKA_STOP_TIMEOUT:-30}"; then
            echo "Kafka node $n (pid $pid) did not stop after SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone 10 || { echo "error: Kafka node $n (pid $pid) is still alive" >&2; exit 1; }
        fi
    done
    for n in "${stopping[@]}"; do
        kafka_cluster_node "$n"
        rm -f "$KAFKA_PIDFILE"
    done
    # Dead already; give init a moment to reap them so no <defunct> java lingers.
    local deadline=$((SECONDS + 10))
    for pid in "${pids[@]}"; do
        while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    done
    echo "Kafka cluster stopped (nodes ${stopping[*]}; pids ${pids[*]})"
}

main "$@"
