# Shared settings for the local stack scripts. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"                          # installs: venv, binaries, jars (git-ignored)
BIN="$LOCAL/bin"
STACK="${DOSSIER_STACK_DIR:-$LOCAL}"          # one running stack: pids, logs, data, configs
RUN="$STACK/run"
LOGS="$STACK/logs"
DATA="$STACK/data"
mkdir -p "$BIN" "$RUN" "$LOGS" "$DATA"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.2}"
# The chart's validation (install-kubernetes-tools.sh): the tools, the Kubernetes release whose
# built-in kinds the chart must fit, and the operators whose custom resources it uses.
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.35.4}"
STRIMZI_VERSION="${STRIMZI_VERSION:-1.2.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
MONGODB_OPERATOR_VERSION="${MONGODB_OPERATOR_VERSION:-v0.13.0}"
KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
KAFKA_PORT="${DOSSIER_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${DOSSIER_KAFKA_CONTROLLER_PORT:-9095}"  # 9093 is Alertmanager's
MONGO_PORT="${DOSSIER_MONGO_PORT:-27017}"
PROMETHEUS_PORT="${DOSSIER_PROMETHEUS_PORT:-9090}"
ALERTMANAGER_PORT="${DOSSIER_ALERTMANAGER_PORT:-9093}"
KANNEL_ADMIN_PORT="${DOSSIER_KANNEL_ADMIN_PORT:-13000}"
KANNEL_SMSBOX_PORT="${DOSSIER_KANNEL_SMSBOX_PORT:-13001}"
KANNEL_SENDSMS_PORT="${DOSSIER_KANNEL_SENDSMS_PORT:-13013}"
KANNEL_SMSC_PORT="${DOSSIER_KANNEL_SMSC_PORT:-10000}"
PARTITIONS="${DOSSIER_PARTITIONS:-6}"
VENV="$LOCAL/venv"
PY="$VENV/bin/python"

# The services, in start order, with their HTTP ports (docs/contract.md §7).
SERVICES=(intake processing metrics notifications signature)
service_port() {
  case $1 in
    intake) echo "${DOSSIER_INTAKE_PORT:-8001}" ;;
    processing) echo "${DOSSIER_PROCESSING_PORT:-8002}" ;;
    metrics) echo "${DOSSIER_METRICS_PORT:-8003}" ;;
    notifications) echo "${DOSSIER_NOTIFICATIONS_PORT:-8004}" ;;
    signature) echo "${DOSSIER_SIGNATURE_PORT:-8005}" ;;
  esac
}
# A service exists once its package has an entrypoint; later issues add the others.
service_exists() { [[ -f "$ROOT/services/$1/__main__.py" ]]; }

# The stack's secrets, made once (shared/secrets.py), one file per secret; `secret NAME` prints one.
SECRETS="$STACK/secrets"
ensure_secrets() { (cd "$ROOT" && "$PY" -m shared.secrets "$SECRETS"); }
secret() { cat "$SECRETS/dossier_$1"; }
# as_kafka_user USER: this shell's Python clients authenticate to Kafka as USER (deploy/local/kafka.sh).
as_kafka_user() {
  export DOSSIER_KAFKA_USERNAME=$1 DOSSIER_KAFKA_PASSWORD_FILE="$SECRETS/dossier_kafka_password_$1"
  export DOSSIER_KAFKA_BOOTSTRAP_SERVERS="${DOSSIER_KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
}

http_ok() { "$PY" -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" "$1"; }
# An empty POST, e.g. to a Prometheus or Alertmanager /-/reload.
http_post() { "$PY" -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='POST'), timeout=5)" "$1"; }

log() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "$what did not become healthy in ${seconds}s"; return 1; fi
    sleep 0.5
  done
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# is_running NAME: the pid file names a live process.
is_running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# start_bg NAME PORT COMMAND...: start COMMAND detached, logging to $LOGS/NAME.log.
start_bg() {
  local name=$1 port=$2; shift 2
  # A port taken by a process we did not start would make the health wait lie.
  if port_open "$port"; then
    log "$name: port $port is already in use by another process; stop it or choose another port"
    return 1
  fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
}

stop_bg() {
  local name=$1 pid
  is_running "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  pid=$(cat "$RUN/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}
