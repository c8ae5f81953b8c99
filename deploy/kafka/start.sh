#!/usr/bin/env bash
# Start the project's single-node Kafka (KRaft broker+controller) on 127.0.0.1:$KAFKA_PORT.
#
# Fetches the broker jars with Maven into .cache/kafka/libs on first use (skipped when the
# cache matches pom.xml), formats the storage once, starts the broker in the background and
# returns only when it answers requests. Idempotent: if it is already running, says so and
# exits 0. Secured as production runs (docs/security.md "Kafka principals and ACLs"):
# SASL/SCRAM-SHA-512 on the client listener with users created at format time from
# .cache/kafka/credentials.json (random passwords, generated at first start, kept after),
# the StandardAuthorizer with no access without an ACL, and the ledger's ACLs applied on
# every start (KAFKA_SCRATCH_ACLS=1 adds the scratch prefixes tests use; deploy/test.sh sets
# it). A data dir formatted without those users (from before) is reformatted. Needs the
# project venv (deploy/bootstrap.sh). Env: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT
# (19093), KAFKA_START_TIMEOUT (90 s), KAFKA_HEAP (1g), LEDGER_CACHE_DIR (<repo>/.cache).
# A replicated three-node cluster, set up the same way: start-cluster.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$KAFKA_DEPLOY_DIR/node.sh"

main() {
    local pid started=$SECONDS
    kafka_lock
    if pid=$(kafka_pid); then
        ensure_credentials
        if port_open "$KAFKA_PORT"; then
            echo "Kafka already running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
        else
            echo "Kafka (pid $pid) is starting; waiting for it to answer ..."
            pid=$(wait_ready)
            echo "Kafka running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
        fi
        apply_acls "127.0.0.1:$KAFKA_PORT"
        exit 0
    fi
    if port_open "$KAFKA_PORT"; then
        fail "port $KAFKA_PORT is in use by another process (not this repo's broker); set KAFKA_PORT"
    fi
    command -v java >/dev/null || fail "java not found (Java 17+ is needed)"
    fetch_jars
    ensure_credentials
    render_config
    format_storage
    launch
    pid=$(wait_ready)
    apply_acls "127.0.0.1:$KAFKA_PORT"
    echo "Kafka started on 127.0.0.1:$KAFKA_PORT (pid $pid) in $((SECONDS - started))s; log: $KAFKA_LOG"
}

main "$@"
