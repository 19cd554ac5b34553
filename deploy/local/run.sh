#!/usr/bin/env bash
# A Python command against the local stack, set up as its services are (deploy/local/services.sh): its
# FerretDB, DOSSIER_ENVIRONMENT=local, the stack's secrets (DOSSIER_SECRETS_DIR), and Kafka as USER (`admin`
# for the dead-letter tool, a service's name for its own commands). Usage: deploy/local/run.sh USER ARGS...
#   deploy/local/run.sh admin -m shared.dlq list dossier-status.dlq.notifications
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
user=${1:?usage: deploy/local/run.sh KAFKA-USER PYTHON-ARGS... (admin, or a service: intake, processing, metrics, ...)}
shift
[[ -f "$SECRETS/dossier_kafka_password_$user" ]] || { log "no Kafka user $user in $SECRETS: run make up first"; exit 2; }
export DOSSIER_ENVIRONMENT="${DOSSIER_ENVIRONMENT:-local}" DOSSIER_SECRETS_DIR="${DOSSIER_SECRETS_DIR:-$SECRETS}"
export DOSSIER_MONGO_URL="${DOSSIER_MONGO_URL:-mongodb://127.0.0.1:$MONGO_PORT}"
as_kafka_user "$user"
cd "$ROOT"
exec "$PY" "$@"
