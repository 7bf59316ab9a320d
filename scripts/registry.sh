#!/usr/bin/env bash
# registry.sh - run a Confluent-compatible Schema Registry (Apicurio Registry
# with its in-memory H2 storage, no Kafka needed) on loopback for vigil's
# tests, built from jars on Maven Central with Maven (no tarball, no docker).
#
# Usage:
#   scripts/registry.sh fetch
#       Resolve Apicurio Registry and run the Quarkus build (augmentation)
#       that turns the published library jar into a runnable app, in
#       $CACHE/<version>/app. Idempotent: a marker file is written only
#       after a complete build.
#   scripts/registry.sh start [--dir DIR] [--port 8081]
#       Start the registry in the background on 127.0.0.1:PORT. Storage is
#       in memory: every start begins empty. Writes DIR/registry.pid and
#       DIR/registry.log, waits until the Confluent-compatible API answers
#       and prints its base URL as the last line of stdout, e.g.
#       http://127.0.0.1:8081/apis/ccompat/v6
#   scripts/registry.sh stop [--dir DIR] [--clean]
#       SIGTERM, bounded wait, then SIGKILL. --clean also removes DIR.
#   scripts/registry.sh status [--dir DIR]
#       Prints "running pid N URL" (exit 0) or "stopped" (exit 1).
#   scripts/registry.sh url [--dir DIR]
#       Prints the base URL of the registry running from DIR.
#
# What the API does (Apicurio 2.1.5, default settings):
#   - base path /apis/ccompat/v6 (Confluent API v6 paths; there is no /v7
#     in this version); the native API is at /apis/registry/v2.
#   - POST /subjects/S/versions {"schema": "..."} -> {"id": N}. Ids are
#     content ids: global, starting at 1, and the same schema text gets the
#     same id again, in any subject; registering a schema that a subject
#     already has (any version) returns its id without a new version. The
#     text is not normalized: the same schema with other whitespace gets a
#     new id.
#   - Global compatibility defaults to NONE (Confluent: BACKWARD).
#     PUT /config/S {"compatibility":"BACKWARD"} echoes the body; an
#     incompatible registration then fails with HTTP 409 (error_code 0, not
#     Confluent's 409, in the JSON body). An unparsable schema: HTTP 422,
#     error_code 42201; unknown id: 404, 40403; unknown subject: 404, 40401.
#
# Why 2.1.5.Final: the Maven repository these machines reach serves only part
# of Apicurio. 3.x and 2.2-2.6 each miss a module (schema-util-provider, or
# the config-index Quarkus deployment module); 2.1.5.Final resolves once its
# JSON-schema library (com.github.everit-org.json-schema, never on Maven
# Central) is swapped for the same code published as com.github.erosb.
#
# Environment:
#   VIGIL_REGISTRY_CACHE     cache root (default $HOME/.cache/vigil-registry)
#   VIGIL_REGISTRY_DIR       default --dir (default ${TMPDIR:-/tmp}/vigil-registry)
#   VIGIL_REGISTRY_HEAP      JVM heap flags (default "-Xms64m -Xmx512m")
#   VIGIL_REGISTRY_JVM_OPTS  JIT/GC flags (default "-XX:TieredStopAtLevel=1
#                            -XX:+UseSerialGC": C1 only, serial GC; starts
#                            ~35% faster on 2 cores, ~140 MB RSS instead of
#                            ~200 MB; set to "" for the JVM's defaults)
#   VIGIL_REGISTRY_TIMEOUT   seconds to wait for readiness (default 60)
#   VIGIL_REGISTRY_LOG_LEVEL root log level: DEBUG|INFO|WARN (default INFO)
#   VIGIL_REGISTRY_JAVA_OPTS extra JVM flags / -D properties, e.g.
#                            -Dregistry.ccompat.legacy-id-mode.enabled=true
#                            (ids become global ids, one per version)
#
# Requires java 11+ (runs on 17 and 25; built with 17) and mvn (only for `fetch`; the
# other commands call fetch implicitly when the cache is empty).

set -euo pipefail

REGISTRY_VERSION="2.1.5.Final"
QUARKUS_VERSION="2.2.3.Final"   # the Quarkus version Apicurio 2.1.5 is built on
EVERIT_VERSION="1.14.0"         # the org.everit.json.schema version it expects
CACHE_DIR="${VIGIL_REGISTRY_CACHE:-$HOME/.cache/vigil-registry}/$REGISTRY_VERSION"
APP_DIR="$CACHE_DIR/app"
RUNNER="$APP_DIR/vigil-registry-runner.jar"
MARKER="$CACHE_DIR/.fetched"
HEAP_OPTS="${VIGIL_REGISTRY_HEAP:--Xms64m -Xmx512m}"
JVM_OPTS="${VIGIL_REGISTRY_JVM_OPTS--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
READY_TIMEOUT="${VIGIL_REGISTRY_TIMEOUT:-60}"
LOG_LEVEL="${VIGIL_REGISTRY_LOG_LEVEL:-INFO}"
STOP_TIMEOUT=20
API_PATH="/apis/ccompat/v6"
DEFAULT_DIR="${VIGIL_REGISTRY_DIR:-${TMPDIR:-/tmp}/vigil-registry}"

log() { printf 'registry.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites

require_java() {
    command -v java >/dev/null 2>&1 || die "java not found on PATH (Apicurio Registry $REGISTRY_VERSION needs Java 11+)"
    local line major minor
    line="$(java -version 2>&1 | head -n1)"
    major="$(sed -E 's/.*version "([0-9]+)(\.([0-9]+))?.*/\1 \3/' <<<"$line")"
    read -r major minor <<<"$major"
    if [[ "$major" == 1 ]]; then major="${minor:-0}"; fi
    [[ "$major" =~ ^[0-9]+$ ]] || die "cannot parse java version from: $line"
    ((major >= 11)) || die "java $major found, Apicurio Registry $REGISTRY_VERSION needs Java 11+ ($line)"
}

require_mvn() {
    command -v mvn >/dev/null 2>&1 || die "mvn (Apache Maven) not found on PATH; it is needed to fetch and build Apicurio Registry from Maven Central"
}

# ---------------------------------------------------------------------- fetch

write_pom() {
    cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by vigil scripts/registry.sh: builds a runnable Apicurio
     Registry from its published (not yet augmented) Quarkus app jar. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.vigil</groupId>
  <artifactId>vigil-registry</artifactId>
  <version>$REGISTRY_VERSION</version>
  <properties>
    <maven.compiler.release>11</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencyManagement>
    <dependencies>
      <!-- the versions Apicurio itself was built and tested with -->
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-registry</artifactId>
        <version>$REGISTRY_VERSION</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.apicurio</groupId>
      <artifactId>apicurio-registry-app</artifactId>
      <version>$REGISTRY_VERSION</version>
      <exclusions>
        <!-- only published outside Maven Central (jitpack) -->
        <exclusion>
          <groupId>com.github.everit-org.json-schema</groupId>
          <artifactId>org.everit.json.schema</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <!-- the same library (package org.everit.json.schema), on Maven Central -->
    <dependency>
      <groupId>com.github.erosb</groupId>
      <artifactId>everit-json-schema</artifactId>
      <version>$EVERIT_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <finalName>vigil-registry</finalName>
    <plugins>
      <plugin>
        <groupId>io.quarkus</groupId>
        <artifactId>quarkus-maven-plugin</artifactId>
        <version>$QUARKUS_VERSION</version>
        <executions>
          <execution>
            <goals>
              <goal>build</goal>
            </goals>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
EOF
}

fetch() {
    if [[ -f "$MARKER" ]]; then
        log "Apicurio Registry $REGISTRY_VERSION already built in $APP_DIR"
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
    local build="$CACHE_DIR/build.partial"
    rm -rf "$build"
    mkdir -p "$build"
    write_pom "$build/pom.xml"
    log "fetching Apicurio Registry $REGISTRY_VERSION from Maven Central and building it (Quarkus $QUARKUS_VERSION) ..."
    # The app jar has no Jandex index: index it explicitly, or Quarkus finds
    # none of its REST resources. (Debian's mvn 3.8 prints ANSI resets even
    # in batch mode: strip them.)
    if ! mvn -B -q -Dstyle.color=never -f "$build/pom.xml" package \
        -Dquarkus.index-dependency.registry.group-id=io.apicurio \
        -Dquarkus.index-dependency.registry.artifact-id=apicurio-registry-app 2>&1 |
        sed $'s/\x1b\\[[0-9;]*m//g' >&2; then
        rm -rf "$build"
        die "mvn failed to fetch or build Apicurio Registry $REGISTRY_VERSION (is Maven Central reachable? see output above)"
    fi
    [[ -f "$build/target/vigil-registry-runner.jar" && -f "$build/target/lib/io.apicurio.apicurio-registry-app-$REGISTRY_VERSION.jar" ]] ||
        { rm -rf "$build"; die "build incomplete: runner jar or libs missing from $build/target"; }
    local staging="$CACHE_DIR/app.partial"
    rm -rf "$staging"
    mkdir -p "$staging"
    mv "$build/target/vigil-registry-runner.jar" "$build/target/lib" "$staging/"
    cp "$build/pom.xml" "$CACHE_DIR/pom.xml"
    rm -rf "$build" "$APP_DIR"
    mv "$staging" "$APP_DIR"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$MARKER"
    exec 9>&- # release the lock (and keep the registry JVM from inheriting it)
    log "built $(find "$APP_DIR/lib" -name '*.jar' | wc -l) jars ($(du -sm "$APP_DIR" | cut -f1) MB)"
}

ensure_fetched() {
    [[ -f "$MARKER" ]] || fetch
    require_java
}

# ------------------------------------------------------------------- helpers

# true when something accepts TCP connections on 127.0.0.1:$1
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# http_status PORT PATH: HTTP status code of GET PATH on 127.0.0.1:PORT
# (bash /dev/tcp, so curl is not required); prints 000 when nothing answers.
http_status() {
    local code
    code="$(timeout 5 bash -c '
        exec 3<>/dev/tcp/127.0.0.1/'"$1"' || exit 1
        printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n" "'"$2"'" >&3
        IFS=" " read -r _ code _ <&3 && printf "%s" "$code"' 2>/dev/null)" || true
    echo "${code:-000}"
}

# pid of the registry recorded in $1/registry.pid, if that process still runs it
running_pid() {
    local pidfile="$1/registry.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(<"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # guard against a recycled pid
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'vigil-registry-runner\.jar' || return 1
    echo "$pid"
}

base_url() {
    echo "http://127.0.0.1:$1$API_PATH"
}

# launch DIR PORT: start the JVM in the background
launch() {
    local dir="$1" port="$2"
    # Rotate the previous log so readiness checks see only this run.
    if [[ -f "$dir/registry.log" ]]; then mv -f "$dir/registry.log" "$dir/registry.log.1"; fi
    # Own session (setsid, when available) so that signals aimed at the
    # caller's process group (Ctrl-C in a test run) don't hit the registry.
    local detach=()
    if command -v setsid >/dev/null 2>&1; then detach=(setsid); fi
    # The app's defaults: profile prod, in-memory H2 storage, no auth.
    # Run from DIR: the transaction manager keeps its ObjectStore in the
    # working directory. (The JVM also listens on one random loopback port,
    # most likely the transaction manager's recovery listener.)
    # shellcheck disable=SC2086 # HEAP_OPTS, JVM_OPTS, VIGIL_REGISTRY_JAVA_OPTS are lists of flags
    (cd "$dir" && exec ${detach[@]+"${detach[@]}"} java $HEAP_OPTS $JVM_OPTS -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true -Djava.io.tmpdir="$dir/tmp" \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
        -Dquarkus.log.level="$LOG_LEVEL" \
        ${VIGIL_REGISTRY_JAVA_OPTS:-} \
        -jar "$RUNNER") \
        </dev/null >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/registry.pid"
    echo "$port" >"$dir/registry.port"
    disown
}

# wait_ready DIR PORT: bounded wait until GET <api>/subjects answers 200
wait_ready() {
    local dir="$1" port="$2" deadline=$((SECONDS + READY_TIMEOUT)) code=000
    while ((SECONDS < deadline)); do
        # plain kill -0: right after the fork the cmdline may not be java yet
        if ! kill -0 "$(<"$dir/registry.pid")" 2>/dev/null; then
            log "registry in $dir exited during startup; last log lines:"
            tail -n 40 "$dir/registry.log" >&2 || true
            return 1
        fi
        code="$(http_status "$port" "$API_PATH/subjects")"
        [[ "$code" == 200 ]] && return 0
        sleep 0.5
    done
    log "registry in $dir not ready after ${READY_TIMEOUT}s (GET $API_PATH/subjects -> $code); last log lines:"
    tail -n 40 "$dir/registry.log" >&2 || true
    return 1
}

# stop_registry DIR [SIGNAL]: SIGTERM (or SIGNAL), bounded wait, then SIGKILL
stop_registry() {
    local dir="$1" sig="${2:-TERM}" pid
    if ! pid="$(running_pid "$dir")"; then
        if [[ -f "$dir/registry.pid" ]]; then log "registry from $dir already stopped"; else log "no registry running from $dir"; fi
        rm -f "$dir/registry.pid"
        return 0
    fi
    log "stopping registry pid $pid ($dir)"
    kill "-$sig" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$dir/registry.pid"
}

# ------------------------------------------------------------------- commands

cmd_start() {
    local dir="$DEFAULT_DIR" port=8081
    while (($#)); do
        case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        *) die "start: unknown argument '$1'" ;;
        esac
    done
    [[ "$port" =~ ^[0-9]+$ ]] || die "bad --port '$port'"
    ensure_fetched
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    local pid
    if pid="$(running_pid "$dir")"; then die "a registry is already running from $dir (pid $pid); stop it first"; fi
    port_open "$port" && die "port $port is already in use"
    mkdir -p "$dir/tmp"
    local t0=$SECONDS
    launch "$dir" "$port"
    if ! wait_ready "$dir" "$port"; then
        stop_registry "$dir" KILL
        die "registry failed to start (log: $dir/registry.log)"
    fi
    log "registry ready in $((SECONDS - t0))s (pid $(<"$dir/registry.pid"), dir $dir)"
    base_url "$port"
}

cmd_stop() {
    local dir="$DEFAULT_DIR" clean=0
    while (($#)); do
        case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --clean) clean=1; shift ;;
        *) die "stop: unknown argument '$1'" ;;
        esac
    done
    [[ -d "$dir" ]] || { log "no such dir $dir; nothing to stop"; return 0; }
    stop_registry "$dir"
    if ((clean)); then
        log "removing $dir"
        rm -rf "$dir"
    fi
}

cmd_status() {
    local dir="$DEFAULT_DIR" pid
    [[ "${1:-}" == --dir ]] && dir="${2:?--dir needs a value}"
    if pid="$(running_pid "$dir")"; then
        echo "running pid $pid $(base_url "$(<"$dir/registry.port")")"
    else
        echo "stopped"
        return 1
    fi
}

cmd_url() {
    local dir="$DEFAULT_DIR"
    [[ "${1:-}" == --dir ]] && dir="${2:?--dir needs a value}"
    running_pid "$dir" >/dev/null || die "no registry running from $dir"
    base_url "$(<"$dir/registry.port")"
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
    url) cmd_url "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
    esac
}

main "$@"
