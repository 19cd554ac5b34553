#!/usr/bin/env bash
# FerretDB (MongoDB wire protocol) with its SQLite backend on 127.0.0.1. Usage: ferretdb.sh start|stop
source "$(dirname "$0")/common.sh"
case "${1:-start}" in
  start)
    "$ROOT/deploy/local/install-ferretdb.sh"
    if is_running ferretdb; then log "already running"; exit 0; fi
    mkdir -p "$DATA/ferretdb" "$DATA/ferretdb-state"
    log "starting FerretDB on 127.0.0.1:$MONGO_PORT"
    start_bg ferretdb "$MONGO_PORT" "$BIN/ferretdb" --handler=sqlite \
      --sqlite-url="file:$DATA/ferretdb/?_pragma=synchronous(normal)" \
      --state-dir="$DATA/ferretdb-state" --listen-addr="127.0.0.1:$MONGO_PORT" \
      --debug-addr="127.0.0.1:${DOSSIER_FERRETDB_DEBUG_PORT:-8088}" --telemetry=disable --log-level=WARN
    wait_for "FerretDB" 60 port_open "$MONGO_PORT"
    ;;
  stop) stop_bg ferretdb ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
