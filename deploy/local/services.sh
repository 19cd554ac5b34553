#!/usr/bin/env bash
# The project's services as background processes. Usage: services.sh start|stop [NAME...]
source "$(dirname "$0")/common.sh"
action=${1:-start}; shift || true
names=("$@"); ((${#names[@]})) || names=("${SERVICES[@]}")

# The local stack's intake key: created once, kept in .local/intake-api-key (docs/contract.md §1).
ensure_local_key() {
  local hashes="$STACK/intake-api-keys.json"
  (cd "$ROOT" && "$PY" -m services.intake.keys "$STACK/intake-api-key" "$hashes")
  export DOSSIER_INTAKE_API_KEYS_FILE="${DOSSIER_INTAKE_API_KEYS_FILE:-$hashes}"
  # The message lookup is authenticated like intake, with the same keys.
  export DOSSIER_NOTIFICATIONS_API_KEYS_FILE="${DOSSIER_NOTIFICATIONS_API_KEYS_FILE:-$hashes}"
  export DOSSIER_SIGNATURE_API_KEYS_FILE="${DOSSIER_SIGNATURE_API_KEYS_FILE:-$hashes}"
  # Operators look dossiers up, read the reports and sign in to the operators' page with the same keys.
  export DOSSIER_PROCESSING_OPERATOR_KEYS_FILE="${DOSSIER_PROCESSING_OPERATOR_KEYS_FILE:-$hashes}"
  export DOSSIER_METRICS_OPERATOR_KEYS_FILE="${DOSSIER_METRICS_OPERATOR_KEYS_FILE:-$hashes}"
}

# The national portal's format (docs/dvcqg.md): the demo's Phú Thọ system syncs through a portal account, made
# once (its password in .local/dvcqg-password, readable by its owner only; its hash in the accounts file).
ensure_local_portal_account() {
  local accounts="$STACK/dvcqg-accounts.json"
  (cd "$ROOT" && "$PY" -m bench.portal "$STACK/dvcqg-password" "$accounts")
  export DOSSIER_INTAKE_DVCQG_ACCOUNTS_FILE="${DOSSIER_INTAKE_DVCQG_ACCOUNTS_FILE:-$accounts}"
}

# The CAs a signed result must chain to: the deployment's PEM files (deploy/signature/trust-roots,
# none shipped) and, on this local stack only, a demo root made once with an official's key for
# `make demo` (.local/signature/).
ensure_local_pki() {
  (cd "$ROOT" && "$PY" -m tests.fixtures.pki "$STACK/signature" "$ROOT/deploy/signature/trust-roots")
  export DOSSIER_SIGNATURE_TRUST_ROOTS="${DOSSIER_SIGNATURE_TRUST_ROOTS:-$STACK/signature/trust-roots}"
  # The demo serves its signed result on loopback, which a deployment never fetches (docs/security.md).
  export DOSSIER_SIGNATURE_FETCH_ALLOWED_HOSTS="${DOSSIER_SIGNATURE_FETCH_ALLOWED_HOSTS:-[\"127.0.0.1\"]}"
}

# Notifications send through the local Kannel, which reports deliveries back to it.
export DOSSIER_NOTIFICATIONS_PROVIDER="${DOSSIER_NOTIFICATIONS_PROVIDER:-kannel}"
export DOSSIER_NOTIFICATIONS_KANNEL_URL="${DOSSIER_NOTIFICATIONS_KANNEL_URL:-http://127.0.0.1:$KANNEL_SENDSMS_PORT/cgi-bin/sendsms}"
export DOSSIER_NOTIFICATIONS_DLR_BASE_URL="${DOSSIER_NOTIFICATIONS_DLR_BASE_URL:-http://127.0.0.1:$(service_port notifications)}"

# Alertmanager's overdue and due-soon alerts for Xã Bá Thước (the demo's commune) go to a made-up
# officer's number, which the fake SMSC logs (.local/logs/kannel-fakesmsc.log; docs/alerts.md).
export DOSSIER_NOTIFICATIONS_OFFICERS_FILE="${DOSSIER_NOTIFICATIONS_OFFICERS_FILE:-$ROOT/deploy/local/officers.json}"

# Every service reads and writes the local FerretDB (intake too: the dossiers' keys, shared/personal.py).
export DOSSIER_MONGO_URL="${DOSSIER_MONGO_URL:-mongodb://127.0.0.1:$MONGO_PORT}"

# The local stack: its own secrets (made once under .local/secrets/), none left empty.
export DOSSIER_ENVIRONMENT="${DOSSIER_ENVIRONMENT:-local}"
export DOSSIER_SECRETS_DIR="${DOSSIER_SECRETS_DIR:-$SECRETS}"

case "$action" in
  start)
    ensure_secrets
    ensure_local_key
    ensure_local_portal_account
    ensure_local_pki
    for name in "${names[@]}"; do
      service_exists "$name" || continue
      if is_running "$name"; then log "$name already running"; continue; fi
      port=$(service_port "$name")
      log "starting $name on 127.0.0.1:$port"
      # Each service is its own Kafka user, allowed only its own topics (docs/security.md, finding 12).
      (cd "$ROOT" && as_kafka_user "$name" && start_bg "$name" "$port" "$PY" -m "services.$name")
    done
    for name in "${names[@]}"; do
      service_exists "$name" || continue
      wait_for "$name" 60 http_ok "http://127.0.0.1:$(service_port "$name")/healthz" \
        || { tail -20 "$LOGS/$name.log" >&2; exit 1; }
    done
    ;;
  stop)
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do stop_bg "${names[i]}"; done
    ;;
  *) echo "usage: $0 start|stop [NAME...]" >&2; exit 2 ;;
esac
