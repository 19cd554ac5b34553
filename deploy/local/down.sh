#!/usr/bin/env bash
# Stop everything `up.sh` started. Data stays under .local/data.
source "$(dirname "$0")/common.sh"
here="$ROOT/deploy/local"
"$here/services.sh" stop
"$here/kannel.sh" stop
"$here/alertmanager.sh" stop
"$here/prometheus.sh" stop
"$here/ferretdb.sh" stop
"$here/kafka.sh" stop
log "stopped"
