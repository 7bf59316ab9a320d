#!/usr/bin/env bash
# kafka.sh - run a real Apache Kafka 4.x broker (KRaft, no ZooKeeper) on
# loopback for vigil's tests and benchmarks, using jars fetched from Maven
# Central with Maven (no Kafka tarball needed).
#
# Usage:
#   scripts/kafka.sh fetch
#       Download the broker, the Kafka command-line tools and a logging
#       backend (slf4j-simple) into $CACHE/<version>/libs. Idempotent: a
#       marker file is written only after a complete download.
#   scripts/kafka.sh start [--dir DIR] [--port 9092] [--controller-port P]
#       Start one combined broker+controller node (node.id=1) in the
#       background, PLAINTEXT on 127.0.0.1:PORT, controller on P
#       (default PORT+1000). Formats DIR/data on first use (random cluster
#       id); a later start on the same DIR keeps the data. Writes
#       DIR/kafka.pid and DIR/kafka.log, waits until the broker is ready and
#       prints the bootstrap address as the last line of stdout.
#       Topics are NOT auto-created (auto.create.topics.enable=false).
#       --sasl-ssl-port S adds a SASL_SSL listener on 127.0.0.1:S: TLS with a
#       test CA made for this DIR (DIR/tls/ca.pem, the broker's certificate
#       for 127.0.0.1 and localhost) and SCRAM-SHA-512 for user `vigil`, whose
#       password is read from VIGIL_KAFKA_SCRAM_PASSWORD (at the first start:
#       the credential is written when DIR is formatted). PLAINTEXT stays on
#       PORT. The SASL_SSL address is printed on the line before the last.
#   scripts/kafka.sh stop [--dir DIR] [--clean]
#       SIGTERM, bounded wait, then SIGKILL. --clean also removes DIR.
#   scripts/kafka.sh status [--dir DIR]
#   scripts/kafka.sh topic --brokers HOST:PORT create NAME PARTITIONS [RF] [ARGS]
#   scripts/kafka.sh topic --brokers HOST:PORT delete|describe NAME
#   scripts/kafka.sh topic --brokers HOST:PORT list
#       Manage topics with Kafka's own TopicCommand; extra ARGS (e.g.
#       --if-not-exists, --config retention.ms=60000) are passed through.
#   scripts/kafka.sh class CLASS [ARGS...]
#       Run any main class on the Kafka classpath (JVM flags: KAFKA_TOOL_OPTS,
#       default -Xmx512m), e.g. org.apache.kafka.tools.ConsoleProducer,
#       org.apache.kafka.tools.consumer.ConsoleConsumer,
#       org.apache.kafka.tools.ProducerPerformance.
#   scripts/kafka.sh cluster start [--dir DIR] [--clean]
#   scripts/kafka.sh cluster stop [--dir DIR] [--clean]
#   scripts/kafka.sh cluster stop-node N [--dir DIR] [--kill]
#   scripts/kafka.sh cluster start-node N [--dir DIR]
#       Three combined KRaft nodes (ids 1-3) on brokers 9192-9194 and
#       controllers 9292-9294, replication factor 3, min.insync.replicas=2,
#       for fault tests. Node N lives in DIR/nodeN; stop-node/start-node
#       take a single node down and bring it back.
#
# Environment:
#   VIGIL_KAFKA_VERSION  Kafka version (default 4.4.0)
#   VIGIL_KAFKA_CACHE    cache root (default $HOME/.cache/vigil-kafka)
#   VIGIL_KAFKA_DIR      default --dir (default ${TMPDIR:-/tmp}/vigil-kafka,
#                        or .../vigil-kafka-cluster for `cluster`)
#   VIGIL_KAFKA_HEAP     broker heap flags (default "-Xms256m -Xmx512m")
#   VIGIL_KAFKA_TIMEOUT  seconds to wait for readiness (default 60)
#   VIGIL_KAFKA_LOG_LEVEL broker log level: trace|debug|info|warn (default warn)
#   VIGIL_KAFKA_EXTRA_PROPS extra server.properties lines (newline separated)
#   VIGIL_KAFKA_CLUSTER_BROKER_PORTS, VIGIL_KAFKA_CLUSTER_CONTROLLER_PORTS
#                        the three nodes' ports for `cluster` (space separated;
#                        default "9192 9193 9194" and "9292 9293 9294"); every
#                        `cluster` command on a DIR needs the same ones
#
# Requires java 17+ and mvn (only for `fetch`; the other commands call fetch
# implicitly when the cache is empty).

set -euo pipefail

KAFKA_VERSION="${VIGIL_KAFKA_VERSION:-4.4.0}"
SCALA_BINARY="2.13"
SLF4J_VERSION="1.7.36"         # the slf4j-api line Kafka 4.x is built against
DEPENDENCY_PLUGIN_VERSION="3.8.1"
CACHE_DIR="${VIGIL_KAFKA_CACHE:-$HOME/.cache/vigil-kafka}/$KAFKA_VERSION"
LIBS="$CACHE_DIR/libs"
MARKER="$CACHE_DIR/.fetched"
HEAP_OPTS="${VIGIL_KAFKA_HEAP:--Xms256m -Xmx512m}"
READY_TIMEOUT="${VIGIL_KAFKA_TIMEOUT:-60}"
BROKER_LOG_LEVEL="${VIGIL_KAFKA_LOG_LEVEL:-warn}"
STOP_TIMEOUT=20
TMP_ROOT="${TMPDIR:-/tmp}"
# JVM flags for short-lived admin tools: small heap, C1 only -> faster start.
QUICK_TOOL_OPTS="-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"

read -r -a CLUSTER_BROKER_PORTS <<<"${VIGIL_KAFKA_CLUSTER_BROKER_PORTS:-9192 9193 9194}"
read -r -a CLUSTER_CONTROLLER_PORTS <<<"${VIGIL_KAFKA_CLUSTER_CONTROLLER_PORTS:-9292 9293 9294}"
((${#CLUSTER_BROKER_PORTS[@]} == 3 && ${#CLUSTER_CONTROLLER_PORTS[@]} == 3)) ||
    { echo "kafka.sh: VIGIL_KAFKA_CLUSTER_BROKER_PORTS and VIGIL_KAFKA_CLUSTER_CONTROLLER_PORTS need three ports each" >&2; exit 2; }

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

require_java() {
    command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka $KAFKA_VERSION needs Java 17+)"
    local line major minor
    line="$(java -version 2>&1 | head -n1)"
    # `openjdk version "17.0.15" ...` or `java version "1.8.0_..."`
    major="$(sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/' <<<"$line")"
    read -r major minor <<<"$major"
    if [[ "$major" == 1 ]]; then major="${minor:-0}"; fi
    [[ "$major" =~ ^[0-9]+$ ]] || die "cannot parse java version from: $line"
    ((major >= 17)) || die "java $major found, Kafka $KAFKA_VERSION needs Java 17+ ($line)"
}

require_mvn() {
    command -v mvn >/dev/null 2>&1 || die "mvn (Apache Maven) not found on PATH; it is needed to fetch Kafka jars from Maven Central"
}

# ---------------------------------------------------------------------- fetch

write_pom() {
    cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by vigil scripts/kafka.sh: only used to resolve Kafka jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.vigil</groupId>
  <artifactId>vigil-kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <!-- broker (kafka.Kafka) and storage tool -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_BINARY</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- TopicCommand, ConsoleProducer, ConsoleConsumer, perf tools -->
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <!-- only Connect tools need it; it pulls in Jetty, Jersey, ... -->
        <exclusion>
          <groupId>org.apache.kafka</groupId>
          <artifactId>connect-runtime</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <!-- logging backend: Kafka only ships the slf4j API -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>$SLF4J_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>$DEPENDENCY_PLUGIN_VERSION</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

fetch() {
    if [[ -f "$MARKER" ]]; then
        log "Kafka $KAFKA_VERSION already fetched in $LIBS"
        return 0
    fi
    require_java
    require_mvn
    mkdir -p "$CACHE_DIR"
    # Serialize concurrent fetches (e.g. parallel tests), then re-check.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE_DIR/.fetch.lock"
        flock 9
        if [[ -f "$MARKER" ]]; then
            exec 9>&-
            return 0
        fi
    fi
    local staging="$CACHE_DIR/libs.partial"
    rm -rf "$staging"
    write_pom "$CACHE_DIR/pom.xml"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS ..."
    # (Debian's mvn 3.8 prints ANSI resets even in batch mode: strip them.)
    if ! mvn -B -q -Dstyle.color=never -f "$CACHE_DIR/pom.xml" \
        "org.apache.maven.plugins:maven-dependency-plugin:$DEPENDENCY_PLUGIN_VERSION:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$staging" 2>&1 |
        sed $'s/\x1b\\[[0-9;]*m//g' >&2; then
        rm -rf "$staging"
        die "mvn failed to download Kafka $KAFKA_VERSION (is Maven Central reachable? see output above)"
    fi
    [[ -f "$staging/kafka_$SCALA_BINARY-$KAFKA_VERSION.jar" && -f "$staging/kafka-tools-$KAFKA_VERSION.jar" ]] ||
        die "download incomplete: Kafka jars missing from $staging"
    rm -rf "$LIBS"
    mv "$staging" "$LIBS"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$MARKER"
    exec 9>&- # release the lock (and keep the broker JVM from inheriting it)
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sm "$LIBS" | cut -f1) MB)"
}

ensure_fetched() {
    [[ -f "$MARKER" ]] || fetch
    require_java
}

# ------------------------------------------------------------------- java glue

# Run a Kafka main class in the foreground, logging only warnings (to stderr).
# JVM flags come from KAFKA_TOOL_OPTS (default: 512 MB heap, full JIT, so
# perf tools such as org.apache.kafka.tools.ProducerPerformance run at speed).
run_class() {
    ensure_fetched
    local class="$1"
    shift
    # shellcheck disable=SC2086 # KAFKA_TOOL_OPTS is a list of flags
    exec java ${KAFKA_TOOL_OPTS:--Xmx512m} -Djava.awt.headless=true \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -Dorg.slf4j.simpleLogger.logFile=System.err \
        -cp "$LIBS/*" "$class" "$@"
}

# Like run_class (with QUICK_TOOL_OPTS) but returns instead of replacing the shell.
java_tool() {
    (KAFKA_TOOL_OPTS="$QUICK_TOOL_OPTS" run_class "$@")
}

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what
# `kafka-storage random-uuid` prints), without paying for a JVM start. Ids
# that start with '-' are rejected like Kafka's Uuid.randomUuid() does.
random_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" == -* ]] || break
    done
    echo "$id"
}

# true when something accepts TCP connections on 127.0.0.1:$1
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# pid of the broker recorded in $1/kafka.pid, if that process still runs Kafka
running_pid() {
    local pidfile="$1/kafka.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # guard against a recycled pid
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

# write_props DIR NODE_ID BROKER_PORT CONTROLLER_PORT VOTERS REPLICATION
write_props() {
    local dir="$1" id="$2" port="$3" cport="$4" voters="$5" rf="$6" sport="${7:-}"
    local min_isr=$((rf > 1 ? 2 : 1))
    local internal_partitions=$((rf > 1 ? 3 : 1))
    cat >"$dir/server.properties" <<EOF
# Generated by vigil scripts/kafka.sh
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$dir/data

# Tests create their topics explicitly.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr

# Internal topics sized for a tiny loopback cluster (fast first group join).
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=$internal_partitions
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=$internal_partitions
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0

num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
    if [[ -n "$sport" ]]; then
        local pass
        pass="$(<"$dir/tls/store.pass")"
        chmod 600 "$dir/server.properties" # it will hold the keystore's password
        sed -i "s|^listeners=PLAINTEXT://127.0.0.1:$port,|listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport,|;
s|^advertised.listeners=PLAINTEXT://127.0.0.1:$port\$|advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport|;
s|^listener.security.protocol.map=PLAINTEXT:PLAINTEXT,|listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,|" "$dir/server.properties"
        cat >>"$dir/server.properties" <<EOF

# SASL_SSL: SCRAM-SHA-512 over TLS (test CA in $dir/tls)
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$dir/tls/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$pass
listener.name.sasl_ssl.ssl.key.password=$pass
EOF
    fi
    if [[ -n "${VIGIL_KAFKA_EXTRA_PROPS:-}" ]]; then
        printf '\n# VIGIL_KAFKA_EXTRA_PROPS\n%s\n' "$VIGIL_KAFKA_EXTRA_PROPS" >>"$dir/server.properties"
    fi
}

# true when DIR/data already holds a formatted node
is_formatted() {
    [[ -f "$1/data/meta.properties" ]]
}

# make_tls DIR: a test CA and a broker certificate for 127.0.0.1/localhost in
# DIR/tls (ca.pem for clients, broker.p12 for the broker), once per DIR
make_tls() {
    local t="$1/tls"
    [[ -f "$t/broker.p12" ]] && return 0
    command -v openssl >/dev/null 2>&1 || die "openssl is needed for --sasl-ssl-port"
    mkdir -p "$t"
    chmod 700 "$t"
    (umask 077 && openssl rand -hex 16 >"$t/store.pass")
    (
        umask 077
        cd "$t"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=vigil test CA" \
            -keyout ca.key -out ca.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile san.ext -out broker.pem
        openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
            -passout "file:store.pass" -out broker.p12
    ) >"$t/openssl.log" 2>&1 || { cat "$t/openssl.log" >&2; die "making the test certificates failed"; }
}

# format_storage DIR CLUSTER_ID [SCRAM]: format DIR/data for DIR/server.properties
# (with SCRAM: add the SCRAM-SHA-512 credential of user vigil)
format_storage() {
    local dir="$1" cluster_id="$2" scram="${3:-}" extra=()
    log "formatting $dir/data (cluster id $cluster_id)"
    if [[ -n "$scram" ]]; then
        [[ -n "${VIGIL_KAFKA_SCRAM_PASSWORD:-}" ]] || die "--sasl-ssl-port needs VIGIL_KAFKA_SCRAM_PASSWORD (the password of user vigil)"
        [[ "$VIGIL_KAFKA_SCRAM_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]] ||
            die "VIGIL_KAFKA_SCRAM_PASSWORD may hold letters, digits and . _ ~ - only (kafka-storage parses it)"
        extra=(--add-scram "SCRAM-SHA-512=[name=vigil,password=$VIGIL_KAFKA_SCRAM_PASSWORD]")
        touch "$dir/scram.formatted"
    fi
    java_tool kafka.tools.StorageTool format --ignore-formatted \
        -t "$cluster_id" -c "$dir/server.properties" ${extra[@]+"${extra[@]}"} >"$dir/format.log" 2>&1 ||
        { cat "$dir/format.log" >&2; die "kafka-storage format failed for $dir"; }
}

# launch DIR: start the JVM for DIR/server.properties in the background
launch() {
    local dir="$1" pid
    if pid="$(running_pid "$dir")"; then
        die "a broker is already running from $dir (pid $pid); stop it first"
    fi
    # Rotate the previous log so readiness checks see only this run.
    if [[ -f "$dir/kafka.log" ]]; then mv -f "$dir/kafka.log" "$dir/kafka.log.1"; fi
    # Own session (setsid, when available) so that signals aimed at the
    # caller's process group (Ctrl-C in a test run) don't hit the broker.
    local detach=()
    if command -v setsid >/dev/null 2>&1; then detach=(setsid); fi
    # shellcheck disable=SC2086 # HEAP_OPTS is a list of flags
    ${detach[@]+"${detach[@]}"} java $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dorg.slf4j.simpleLogger.defaultLogLevel="$BROKER_LOG_LEVEL" \
        -Dorg.slf4j.simpleLogger.log.kafka.server.KafkaRaftServer=info \
        -Dorg.slf4j.simpleLogger.showDateTime=true \
        -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd'T'HH:mm:ss.SSS" \
        -Dorg.slf4j.simpleLogger.logFile=System.out \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >"$dir/kafka.log" 2>&1 &
    echo $! >"$dir/kafka.pid"
    disown
}

# wait_ready DIR PORT: bounded wait for "Kafka Server started" + open port
wait_ready() {
    local dir="$1" port="$2" deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        # plain kill -0: right after the fork the cmdline may not be java yet
        if ! kill -0 "$(<"$dir/kafka.pid")" 2>/dev/null; then
            log "broker in $dir exited during startup; last log lines:"
            tail -n 40 "$dir/kafka.log" >&2 || true
            return 1
        fi
        if grep -q 'Kafka Server started' "$dir/kafka.log" 2>/dev/null && port_open "$port"; then
            return 0
        fi
        sleep 0.5
    done
    log "broker in $dir not ready after ${READY_TIMEOUT}s; last log lines:"
    tail -n 40 "$dir/kafka.log" >&2 || true
    return 1
}

# stop_node DIR [SIGNAL]: SIGTERM (or SIGNAL), bounded wait, then SIGKILL
stop_node() {
    local dir="$1" sig="${2:-TERM}" pid
    if ! pid="$(running_pid "$dir")"; then
        if [[ -f "$dir/kafka.pid" ]]; then log "broker from $dir already stopped"; else log "no broker running from $dir"; fi
        rm -f "$dir/kafka.pid"
        return 0
    fi
    log "stopping broker pid $pid ($dir)"
    kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$dir/kafka.pid"
}

# ------------------------------------------------------------------- commands

cmd_start() {
    local dir="${VIGIL_KAFKA_DIR:-$TMP_ROOT/vigil-kafka}" port=9092 cport="" sport=""
    while (($#)); do
        case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --sasl-ssl-port) sport="${2:?--sasl-ssl-port needs a value}"; shift 2 ;;
        --controller-port) cport="${2:?--controller-port needs a value}"; shift 2 ;;
        *) die "start: unknown argument '$1'" ;;
        esac
    done
    [[ "$port" =~ ^[0-9]+$ ]] || die "bad --port '$port'"
    cport="${cport:-$((port + 1000))}"
    ensure_fetched
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if running_pid "$dir" >/dev/null; then die "a broker is already running from $dir; stop it first"; fi
    port_open "$port" && die "port $port is already in use"
    port_open "$cport" && die "controller port $cport is already in use"
    if [[ -n "$sport" ]]; then
        [[ "$sport" =~ ^[0-9]+$ ]] || die "bad --sasl-ssl-port '$sport'"
        [[ "$sport" != "$port" && "$sport" != "$cport" ]] || die "--sasl-ssl-port must differ from --port and --controller-port"
        port_open "$sport" && die "port $sport is already in use"
        if is_formatted "$dir" && [[ ! -f "$dir/scram.formatted" ]]; then
            die "$dir was formatted without --sasl-ssl-port: it has no SCRAM user (use a new --dir)"
        fi
        make_tls "$dir"
    fi
    write_props "$dir" 1 "$port" "$cport" "1@127.0.0.1:$cport" 1 "$sport"
    if ! is_formatted "$dir"; then format_storage "$dir" "$(random_cluster_id)" "$sport"; fi
    launch "$dir"
    if ! wait_ready "$dir" "$port"; then
        stop_node "$dir" KILL
        die "broker failed to start (log: $dir/kafka.log)"
    fi
    log "broker ready in ${SECONDS}s (pid $(<"$dir/kafka.pid"), dir $dir)"
    if [[ -n "$sport" ]]; then echo "127.0.0.1:$sport"; fi
    echo "127.0.0.1:$port"
}

cmd_stop() {
    local dir="${VIGIL_KAFKA_DIR:-$TMP_ROOT/vigil-kafka}" clean=0
    while (($#)); do
        case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --clean) clean=1; shift ;;
        *) die "stop: unknown argument '$1'" ;;
        esac
    done
    [[ -d "$dir" ]] || { log "no such dir $dir; nothing to stop"; return 0; }
    stop_node "$dir"
    if ((clean)); then
        log "removing $dir"
        rm -rf "$dir"
    fi
}

cmd_status() {
    local dir="${VIGIL_KAFKA_DIR:-$TMP_ROOT/vigil-kafka}" pid
    [[ "${1:-}" == --dir ]] && dir="${2:?--dir needs a value}"
    if pid="$(running_pid "$dir")"; then
        echo "running pid $pid"
    else
        echo "stopped"
        return 1
    fi
}

cmd_topic() {
    local brokers=""
    [[ "${1:-}" == --brokers ]] || die "usage: topic --brokers HOST:PORT create|delete|describe|list ..."
    brokers="${2:?--brokers needs a value}"
    shift 2
    local action="${1:-}"
    shift || true
    local tc=org.apache.kafka.tools.TopicCommand
    export KAFKA_TOOL_OPTS="${KAFKA_TOOL_OPTS:-$QUICK_TOOL_OPTS}"
    case "$action" in
    create)
        (($# >= 2)) || die "usage: topic --brokers HOST:PORT create NAME PARTITIONS [REPLICATION] [TopicCommand args...]"
        local args=(--bootstrap-server "$brokers" --create --topic "$1" --partitions "$2")
        shift 2
        if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
            args+=(--replication-factor "$1")
            shift
        fi
        # anything else goes to TopicCommand, e.g. --if-not-exists, --config k=v
        run_class "$tc" "${args[@]}" "$@"
        ;;
    delete | describe)
        (($# >= 1)) || die "usage: topic --brokers HOST:PORT $action NAME"
        local name="$1"
        shift
        run_class "$tc" --bootstrap-server "$brokers" "--$action" --topic "$name" "$@"
        ;;
    list)
        run_class "$tc" --bootstrap-server "$brokers" --list "$@"
        ;;
    *) die "topic: unknown action '$action' (create|delete|describe|list)" ;;
    esac
}

cmd_cluster() {
    local action="${1:-}" dir="${VIGIL_KAFKA_DIR:-$TMP_ROOT/vigil-kafka-cluster}"
    local clean=0 kill_node=0 node="" pid
    shift || true
    if [[ "$action" == stop-node || "$action" == start-node ]]; then
        node="${1:-}"
        [[ "$node" =~ ^[1-3]$ ]] || die "cluster $action: node must be 1, 2 or 3"
        shift
    fi
    while (($#)); do
        case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --clean) clean=1; shift ;;
        --kill) kill_node=1; shift ;;
        *) die "cluster: unknown argument '$1'" ;;
        esac
    done
    local i bootstrap="" voters=""
    for i in 0 1 2; do
        voters+="${voters:+,}$((i + 1))@127.0.0.1:${CLUSTER_CONTROLLER_PORTS[i]}"
        bootstrap+="${bootstrap:+,}127.0.0.1:${CLUSTER_BROKER_PORTS[i]}"
    done
    case "$action" in
    start)
        ensure_fetched
        if ((clean)); then rm -rf "$dir"; fi
        mkdir -p "$dir"
        dir="$(cd "$dir" && pwd)"
        local cluster_id="" nd
        for i in 0 1 2; do
            nd="$dir/node$((i + 1))"
            if running_pid "$nd" >/dev/null; then die "node $((i + 1)) already running from $nd"; fi
            port_open "${CLUSTER_BROKER_PORTS[i]}" && die "port ${CLUSTER_BROKER_PORTS[i]} is already in use"
            port_open "${CLUSTER_CONTROLLER_PORTS[i]}" && die "port ${CLUSTER_CONTROLLER_PORTS[i]} is already in use"
        done
        for i in 0 1 2; do
            nd="$dir/node$((i + 1))"
            mkdir -p "$nd"
            write_props "$nd" "$((i + 1))" "${CLUSTER_BROKER_PORTS[i]}" "${CLUSTER_CONTROLLER_PORTS[i]}" "$voters" 3
            if ! is_formatted "$nd"; then
                # all nodes of one cluster share one cluster id
                [[ -n "$cluster_id" ]] || cluster_id="$(random_cluster_id)"
                format_storage "$nd" "$cluster_id"
            fi
        done
        for i in 0 1 2; do launch "$dir/node$((i + 1))"; done
        for i in 0 1 2; do
            if ! wait_ready "$dir/node$((i + 1))" "${CLUSTER_BROKER_PORTS[i]}"; then
                for nd in "$dir"/node[123]; do stop_node "$nd" KILL; done
                die "cluster failed to start (logs: $dir/node*/kafka.log)"
            fi
        done
        log "cluster ready in ${SECONDS}s (dir $dir)"
        echo "$bootstrap"
        ;;
    stop)
        [[ -d "$dir" ]] || { log "no such dir $dir; nothing to stop"; return 0; }
        local nd
        for nd in "$dir"/node[123]; do
            [[ -d "$nd" ]] || continue
            # signal all first so the quorum shuts down together
            if pid="$(running_pid "$nd")"; then kill -TERM "$pid" 2>/dev/null || true; fi
        done
        for nd in "$dir"/node[123]; do [[ -d "$nd" ]] && stop_node "$nd"; done
        if ((clean)); then
            log "removing $dir"
            rm -rf "$dir"
        fi
        ;;
    stop-node)
        if ((kill_node)); then stop_node "$dir/node$node" KILL; else stop_node "$dir/node$node"; fi
        ;;
    start-node)
        ensure_fetched
        [[ -f "$dir/node$node/server.properties" ]] || die "node $node was never started in $dir (run cluster start)"
        launch "$dir/node$node"
        if ! wait_ready "$dir/node$node" "${CLUSTER_BROKER_PORTS[node - 1]}"; then
            stop_node "$dir/node$node" KILL
            die "node $node failed to start (log: $dir/node$node/kafka.log)"
        fi
        echo "$bootstrap"
        ;;
    *) die "usage: cluster start|stop|stop-node N|start-node N [--dir DIR] [--clean] [--kill]" ;;
    esac
}

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" >&2
    exit "${1:-2}"
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
    fetch) fetch ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    topic) cmd_topic "$@" ;;
    class)
        [[ -n "${1:-}" ]] || die "usage: class MAIN_CLASS [ARGS...]"
        run_class "$@"
        ;;
    cluster) cmd_cluster "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
    esac
}

main "$@"
