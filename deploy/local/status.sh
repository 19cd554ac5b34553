#!/usr/bin/env bash
# One line per component: running or not, and where.
source "$(dirname "$0")/common.sh"
line() { printf '%-14s %-8s %s\n' "$1" "$2" "$3"; }
state() { if is_running "$1"; then echo up; else echo down; fi; }
line kafka "$(state kafka)" "127.0.0.1:$KAFKA_PORT"
line ferretdb "$(state ferretdb)" "mongodb://127.0.0.1:$MONGO_PORT"
line prometheus "$(state prometheus)" "http://127.0.0.1:$PROMETHEUS_PORT (consoles: /consoles/index.html)"
line alertmanager "$(state alertmanager)" "http://127.0.0.1:$ALERTMANAGER_PORT"
line kannel "$(state kannel-smsbox)" "sendsms http://127.0.0.1:$KANNEL_SENDSMS_PORT (SMS log: $LOGS/kannel-fakesmsc.log)"
for name in "${SERVICES[@]}"; do
  service_exists "$name" || { line "$name" "-" "(not built yet)"; continue; }
  line "$name" "$(state "$name")" "http://127.0.0.1:$(service_port "$name")"
done
[[ -f "$STACK/intake-api-key" ]] && echo "intake key: $STACK/intake-api-key"
exit 0
