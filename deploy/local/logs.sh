#!/usr/bin/env bash
# The last lines of every component's log; `logs.sh -f` follows them.
source "$(dirname "$0")/common.sh"
if [[ "${1:-}" == "-f" ]]; then exec tail -n 20 -F "$LOGS"/*.log; fi
for f in "$LOGS"/*.log; do echo "==> $(basename "$f" .log)"; tail -n "${LINES:-20}" "$f"; done
