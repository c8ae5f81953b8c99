# Setting up, starting and checking one KRaft node: the helpers deploy/kafka/start.sh
# (the single broker) and start-cluster.sh (each node of the cluster) share. Sourced after
# common.sh; each helper works on the node kafka_node/kafka_cluster_node selected.

TOOL_LOG4J=(-Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/tools-log4j2.properties")
LAUNCHED_PIDFILES=()  # nodes this run launched: killed if the start fails

fail() {
    local pidfile pid
    echo "error: $*" >&2
    # A node this run launched but that never became ready is not left behind.
    for pidfile in "${LAUNCHED_PIDFILES[@]}"; do
        if pid=$(live_pid "$pidfile" 'kafka\.Kafka'); then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
    if [[ -f $KAFKA_LOG ]]; then
        echo "--- last lines of $KAFKA_LOG ---" >&2
        tail -n 40 "$KAFKA_LOG" >&2
    fi
    if [[ -s $KAFKA_OUT ]]; then
        echo "--- last lines of $KAFKA_OUT ---" >&2
        tail -n 20 "$KAFKA_OUT" >&2
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
    mkdir -p "$KAFKA_CACHE"
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

# credentials.json: created once (random passwords, 0600) and then only read. Sets
# PRINCIPALS ("role user password" lines), ADMIN_USER and ADMIN_PASSWORD, and writes the
# admin's client config for Kafka's CLI tools.
ensure_credentials() {
    local line role user password
    [[ -x $KAFKA_PY ]] || fail "$KAFKA_PY not found: run deploy/bootstrap.sh first"
    mkdir -p "$KAFKA_CACHE"
    if [[ ! -s $KAFKA_CREDENTIALS ]]; then
        rm -f "$KAFKA_CREDENTIALS.tmp"
        (umask 077 && "$KAFKA_PY" - "$KAFKA_CREDENTIALS.tmp" <<'PY'
import json, secrets, sys
roles = ("admin", "publisher", "finance", "consumer")
principals = {r: {"username": f"ledger-{r}", "password": secrets.token_urlsafe(24)} for r in roles}
with open(sys.argv[1], "x") as fh:
    json.dump({"mechanism": "SCRAM-SHA-512", "principals": principals}, fh, indent=2)
PY
        ) || fail "could not write $KAFKA_CREDENTIALS"
        mv "$KAFKA_CREDENTIALS.tmp" "$KAFKA_CREDENTIALS"
        echo "Generated Kafka credentials (SASL/SCRAM, one principal per role): $KAFKA_CREDENTIALS"
    fi
    chmod 600 "$KAFKA_CREDENTIALS"
    mapfile -t PRINCIPALS < <("$KAFKA_PY" - "$KAFKA_CREDENTIALS" <<'PY'
import json, re, sys
data = json.load(open(sys.argv[1]))
for role, p in data["principals"].items():
    # they go into a JAAS line and a sed expression: a safe alphabet only
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", v) for v in (p["username"], p["password"])), role
    print(role, p["username"], p["password"])
PY
    )
    ADMIN_USER="" ADMIN_PASSWORD=""
    for line in "${PRINCIPALS[@]}"; do
        read -r role user password <<<"$line"
        [[ $role == admin ]] && ADMIN_USER=$user ADMIN_PASSWORD=$password
    done
    [[ -n $ADMIN_USER ]] || fail "$KAFKA_CREDENTIALS is unreadable or has no admin principal" \
        "(delete it to generate new credentials; the data dir is then reformatted)"
    (umask 077 && cat >"$KAFKA_ADMIN_CONFIG" <<CONF
# Kafka CLI tools as the admin (super user), e.g. with kafka-tools on the class path:
#   ... org.apache.kafka.tools.AclCommand --bootstrap-server 127.0.0.1:<port> \\
#       --command-config $KAFKA_ADMIN_CONFIG --list
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$ADMIN_USER" password="$ADMIN_PASSWORD";
CONF
    )
}

render_config() {
    mkdir -p "$KAFKA_NODE_DIR"
    (umask 077 && sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@KAFKA_DATA_DIR@|$KAFKA_DATA|g" \
        -e "s|@NODE_ID@|$KAFKA_NODE_ID|g" \
        -e "s|@QUORUM_VOTERS@|$KAFKA_VOTERS|g" \
        -e "s|@REPLICATION_FACTOR@|$KAFKA_REPLICATION|g" \
        -e "s|@MIN_INSYNC_REPLICAS@|$KAFKA_MIN_ISR|g" \
        -e "s|@ADMIN_USER@|$ADMIN_USER|g" \
        -e "s|@ADMIN_PASSWORD@|$ADMIN_PASSWORD|g" \
        "$KAFKA_DEPLOY_DIR/server.properties" >"$KAFKA_PROPS")
}

# True when the selected node's data dir is formatted with the SCRAM users of the
# credentials file (the stamp is that file's hash).
storage_formatted() {
    [[ -f $KAFKA_DATA/meta.properties ]] \
        && [[ $(cat "$KAFKA_SECURED_STAMP" 2>/dev/null) == "$(sha256sum "$KAFKA_CREDENTIALS" | cut -d' ' -f1)" ]]
}

new_cluster_id() {
    local id
    id=$(java "${TOOL_LOG4J[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid) \
        || fail "kafka.tools.StorageTool random-uuid failed"
    # An INFO log line on stdout would be accepted by `format -t` as a (garbage) id.
    [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || fail "unexpected cluster id from random-uuid: '$id'"
    echo "$id"
}

# Format the selected node's KRaft storage once, with every principal's SCRAM credentials
# (KRaft stores them), under cluster id $1 (default: a new one). A data dir without the
# stamp (an unsecured one from before, or one formatted for other credentials) holds test
# data only: it is formatted again, with a message.
format_storage() {
    local id=${1:-} out line role user password want args
    want=$(sha256sum "$KAFKA_CREDENTIALS" | cut -d' ' -f1)
    if [[ -f $KAFKA_DATA/meta.properties ]]; then
        storage_formatted && return 0
        echo "Kafka data dir $KAFKA_DATA was formatted without the SCRAM users of" \
            "$KAFKA_CREDENTIALS (an unsecured broker from before, or other credentials):" \
            "reformatting it; its topics and records are dropped." >&2
        rm -rf "$KAFKA_DATA"
    fi
    # The passwords go to the tool in a 0600 argument file (the tool's argument parser
    # reads @FILE, one argument per line), never on a command line `ps` shows to everyone.
    args=$KAFKA_NODE_DIR/format.args
    (umask 077 && : >"$args")
    for line in "${PRINCIPALS[@]}"; do
        read -r role user password <<<"$line"
        printf '%s\n' --add-scram "SCRAM-SHA-512=[name=$user,password=$password]" >>"$args"
    done
    [[ -n $id ]] || id=$(new_cluster_id)
    mkdir -p "$KAFKA_DATA"
    if ! out=$(java "${TOOL_LOG4J[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
            -t "$id" -c "$KAFKA_PROPS" "@$args" 2>&1); then
        rm -f "$args"
        echo "$out" | sed -e 's/password=[^],]*/password=.../g' >&2
        fail "formatting $KAFKA_DATA failed"
    fi
    rm -f "$args"
    echo "$want" >"$KAFKA_SECURED_STAMP"
}

launch() {
    LAUNCHED_PIDFILES+=("$KAFKA_PIDFILE")
    [[ -f $KAFKA_LOG ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
    rm -f "$KAFKA_PIDFILE"
    # setsid: the broker outlives this script and is not hit by the caller's Ctrl-C; the
    # child writes its own pid, then becomes java via exec. 9>&-: it must not inherit the
    # start/stop lock, or it would hold it for its whole life.
    # shellcheck disable=SC2016
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PIDFILE" \
        java -Xms256m -Xmx"${KAFKA_HEAP:-1g}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true \
        -Dkafka.logs.dir="$KAFKA_NODE_DIR" \
        -Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
        >"$KAFKA_OUT" 2>&1 </dev/null 9>&- &
}

# A real request through SASL as the admin: proves the node authenticates and serves
# metadata.
broker_answers() {
    LEDGER_KAFKA_CREDENTIALS=$KAFKA_CREDENTIALS "$KAFKA_PY" - "127.0.0.1:$KAFKA_PORT" \
        >/dev/null 2>&1 <<'PY'
import sys
from kafka import KafkaAdminClient
from ledger.config import load_settings
from ledger.kafka.auth import client_options
options = client_options(load_settings(), "admin")
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=5000, **options)
try:
    admin.list_topics()
finally:
    admin.close()
PY
}

# The ledger's ACLs (ledger/kafka/acls.py) through bootstrap servers $1; creating an
# existing one is a no-op.
apply_acls() {
    local scratch=()
    [[ ${KAFKA_SCRATCH_ACLS:-0} == 1 ]] && scratch=(--scratch)
    LEDGER_KAFKA_CREDENTIALS=$KAFKA_CREDENTIALS "$KAFKA_PY" -m ledger.kafka.acls \
        --bootstrap "$1" "${scratch[@]}" || fail "could not apply the ACLs"
    echo "Kafka credentials: LEDGER_KAFKA_CREDENTIALS=$KAFKA_CREDENTIALS" \
        "(Kafka CLI tools as admin: $KAFKA_ADMIN_CONFIG)"
}

# Wait until the selected node answers as the admin; prints its pid.
wait_ready() {
    local deadline=$((SECONDS + ${KAFKA_START_TIMEOUT:-90})) seen_pid=""
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
    fail "Kafka did not become ready on 127.0.0.1:$KAFKA_PORT within ${KAFKA_START_TIMEOUT:-90}s"
}

# Poll until the selected node's process is gone or $1 seconds pass.
wait_gone() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        kafka_pid >/dev/null || return 0
        sleep 0.2
    done
    ! kafka_pid >/dev/null
}
