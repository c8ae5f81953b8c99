#!/usr/bin/env bash
# Start the project's single-node Kafka (KRaft broker+controller) on 127.0.0.1:$KAFKA_PORT.
#
# Fetches the broker jars with Maven into .cache/kafka/libs on first use (skipped when the
# cache matches pom.xml), formats the storage once, starts the broker in the background and
# returns only when it answers requests. Idempotent: if it is already running, says so and
# exits 0. Env: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), KAFKA_START_TIMEOUT (90 s),
# KAFKA_HEAP (1g), LEDGER_CACHE_DIR (<repo>/.cache).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEADLINE_S=${KAFKA_START_TIMEOUT:-90}
TOOL_LOG4J=(-Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/tools-log4j2.properties")

fail() {
    local pid
    echo "error: $*" >&2
    # A broker this run launched but that never became ready is not left behind.
    if [[ -n ${LAUNCHED:-} ]] && pid=$(kafka_pid); then
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$KAFKA_PIDFILE"
    fi
    if [[ -f $KAFKA_LOG ]]; then
        echo "--- last lines of $KAFKA_LOG ---" >&2
        tail -n 40 "$KAFKA_LOG" >&2
    fi
    if [[ -s $KAFKA_CACHE/broker.out ]]; then
        echo "--- last lines of $KAFKA_CACHE/broker.out ---" >&2
        tail -n 20 "$KAFKA_CACHE/broker.out" >&2
    fi
    exit 1
}

# Jars: refetch only when pom.xml changed since the last successful copy.
fetch_jars() {
    local want have="" tmp out
    want=$(sha256sum "$KAFKA_DEPLOY_DIR/pom.xml" | cut -d' ' -f1)
    [[ -f $KAFKA_LIBS/.pom.sha256 ]] && have=$(<"$KAFKA_LIBS/.pom.sha256")
    if [[ $want == "$have" ]] && compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null || fail "mvn not found: Maven is needed once to fetch the Kafka jars"
    echo "Fetching Kafka jars with Maven into $KAFKA_LIBS ..."
    tmp=$(mktemp -d "$KAFKA_CACHE/libs.tmp.XXXXXX")
    if ! out=$(mvn -q -B -f "$KAFKA_DEPLOY_DIR/pom.xml" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1); then
        rm -rf "$tmp"
        echo "$out" >&2
        fail "Maven could not resolve the Kafka jars (see above)"
    fi
    echo "$want" >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS"
    mv "$tmp" "$KAFKA_LIBS"
}

render_config() {
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@KAFKA_DATA_DIR@|$KAFKA_DATA|g" \
        "$KAFKA_DEPLOY_DIR/server.properties" >"$KAFKA_PROPS"
}

# Format the KRaft storage once; meta.properties marks a formatted data dir.
format_storage() {
    local id out
    [[ -f $KAFKA_DATA/meta.properties ]] && return 0
    id=$(java "${TOOL_LOG4J[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid) \
        || fail "kafka.tools.StorageTool random-uuid failed"
    # An INFO log line on stdout would be accepted by `format -t` as a (garbage) id.
    [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || fail "unexpected cluster id from random-uuid: '$id'"
    mkdir -p "$KAFKA_DATA"
    if ! out=$(java "${TOOL_LOG4J[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
            -t "$id" -c "$KAFKA_PROPS" 2>&1); then
        echo "$out" >&2
        fail "formatting $KAFKA_DATA failed"
    fi
}

launch() {
    LAUNCHED=1
    [[ -f $KAFKA_LOG ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
    rm -f "$KAFKA_PIDFILE"
    # setsid: the broker outlives this script and is not hit by the caller's Ctrl-C; the
    # child writes its own pid, then becomes java via exec. 9>&-: it must not inherit the
    # start/stop lock, or it would hold it for its whole life.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PIDFILE" \
        java -Xms256m -Xmx"${KAFKA_HEAP:-1g}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true \
        -Dkafka.logs.dir="$KAFKA_CACHE" \
        -Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
        >"$KAFKA_CACHE/broker.out" 2>&1 </dev/null 9>&- &
}

# A real request, when the project venv exists: proves the broker serves metadata.
broker_answers() {
    local py=$REPO_DIR/.venv/bin/python
    [[ -x $py ]] && "$py" -c 'import kafka' 2>/dev/null || return 0
    "$py" - "127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1 <<'PY'
import sys
from kafka import KafkaAdminClient
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000)
try:
    admin.list_topics()
finally:
    admin.close()
PY
}

wait_ready() {
    local deadline=$((SECONDS + DEADLINE_S)) seen_pid=""
    while ((SECONDS < deadline)); do
        if [[ -f $KAFKA_PIDFILE ]]; then
            seen_pid=$(kafka_pid) || fail "the Kafka broker exited during startup"
            if port_open "$KAFKA_PORT" && grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null \
                    && broker_answers; then
                echo "$seen_pid"
                return 0
            fi
        fi
        sleep 0.2
    done
    fail "Kafka did not become ready on 127.0.0.1:$KAFKA_PORT within ${DEADLINE_S}s"
}

main() {
    local pid started=$SECONDS
    kafka_lock
    if pid=$(kafka_pid); then
        if port_open "$KAFKA_PORT"; then
            echo "Kafka already running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
            exit 0
        fi
        echo "Kafka (pid $pid) is starting; waiting for it to answer ..."
        pid=$(wait_ready)
        echo "Kafka running on 127.0.0.1:$KAFKA_PORT (pid $pid)"
        exit 0
    fi
    if port_open "$KAFKA_PORT"; then
        fail "port $KAFKA_PORT is in use by another process (not this repo's broker); set KAFKA_PORT"
    fi
    command -v java >/dev/null || fail "java not found (Java 17+ is needed)"
    fetch_jars
    render_config
    format_storage
    launch
    pid=$(wait_ready)
    echo "Kafka started on 127.0.0.1:$KAFKA_PORT (pid $pid) in $((SECONDS - started))s; log: $KAFKA_LOG"
}

main "$@"
