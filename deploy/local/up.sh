#!/usr/bin/env bash
# The whole local stack: infrastructure, topics, then every service. Idempotent.
source "$(dirname "$0")/common.sh"
here="$ROOT/deploy/local"
"$here/install-python.sh"
"$here/install-js.sh"  # the operators' page's charting library
"$here/kafka.sh" start
"$here/ferretdb.sh" start
(cd "$ROOT" && as_kafka_user admin && "$PY" -m shared.kafka)  # the topics, and the services' ACLs
"$here/prometheus.sh" start
"$here/alertmanager.sh" start
"$here/kannel.sh" start
"$here/services.sh" start
"$here/status.sh"
