#!/usr/bin/env bash
# Stop the Kafka broker started by deploy/kafka/start.sh (found through its pid file).
# SIGTERM (a clean shutdown), then SIGKILL if it is still alive after KAFKA_STOP_TIMEOUT
# seconds (30). Not running: says so and exits 0.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$KAFKA_DEPLOY_DIR/node.sh"

main() {
    local pid
    kafka_lock
    if ! pid=$(kafka_pid); then
        rm -f "$KAFKA_PIDFILE"
        echo "Kafka is not running"
        exit 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "${KAFKA_STOP_TIMEOUT:-30}"; then
        echo "Kafka (pid $pid) did not stop after SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone 10 || { echo "error: Kafka (pid $pid) is still alive" >&2; exit 1; }
    fi
    rm -f "$KAFKA_PIDFILE"
    # Dead already; give init a moment to reap it so no <defunct> java lingers.
    local deadline=$((SECONDS + 10))
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
    echo "Kafka stopped (pid $pid)"
}

main "$@"
