#!/usr/bin/env bash
# Alertmanager (Debian package) on 127.0.0.1: routes Prometheus' alerts, a commune's overdue and due-soon
# dossiers to the notifications service's officers' webhook (docs/alerts.md). A single instance: its
# cluster listener is off. Usage: alertmanager.sh start|stop|reload
source "$(dirname "$0")/common.sh"
home="$STACK/alertmanager"

install() {
  command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null && return 0
  log "installing Alertmanager from Debian (first run only)"
  "$ROOT/deploy/local/install-apt.sh" prometheus-alertmanager
}

# The project's configuration, with the local webhook and the stack's secrets folder in place of compose's.
write_config() {
  mkdir -p "$home"
  ensure_secrets
  sed -e "s|http://notifications:8004/|http://127.0.0.1:$(service_port notifications)/|" \
      -e "s|credentials_file: /secrets/|credentials_file: $SECRETS/|" \
      "$ROOT/deploy/alertmanager/alertmanager.yml" >"$home/alertmanager.yml"
  amtool check-config "$home/alertmanager.yml" >/dev/null
}

case "${1:-start}" in
  start)
    install
    write_config
    if is_running alertmanager; then
      http_post "http://127.0.0.1:$ALERTMANAGER_PORT/-/reload"
      log "already running: configuration reloaded"
      exit 0
    fi
    log "starting Alertmanager on 127.0.0.1:$ALERTMANAGER_PORT"
    start_bg alertmanager "$ALERTMANAGER_PORT" prometheus-alertmanager --config.file="$home/alertmanager.yml" \
      --storage.path="$DATA/alertmanager" --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" \
      --web.external-url="http://127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address= --log.level=warn
    wait_for "Alertmanager" 60 http_ok "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready"
    ;;
  reload)
    write_config
    http_post "http://127.0.0.1:$ALERTMANAGER_PORT/-/reload"
    ;;
  stop) stop_bg alertmanager ;;
  *) echo "usage: $0 start|stop|reload" >&2; exit 2 ;;
esac
