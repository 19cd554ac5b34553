#!/usr/bin/env bash
# Prometheus (Debian package) on 127.0.0.1, scraping every service, sending alerts to the local
# Alertmanager, serving the console pages (docs/consoles.md). Usage: prometheus.sh start|stop|reload
source "$(dirname "$0")/common.sh"
home="$STACK/prometheus"

install() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  log "installing Prometheus from Debian (first run only)"
  "$ROOT/deploy/local/install-apt.sh" prometheus
}

# The project's configuration, rules and console pages, with the local stack's targets. Debian
# ships no console library: the pages' own (deploy/prometheus/console_libraries) names its assets.
write_config() {
  mkdir -p "$home"
  local folder
  for folder in rules consoles console_libraries; do
    rm -rf "${home:?}/$folder"; cp -r "$ROOT/deploy/prometheus/$folder" "$home/$folder"
  done
  ensure_secrets  # the scrape token of /metrics/dossiers, where this stack keeps it
  sed "s|/secrets/dossier_metrics_scrape_token|$SECRETS/dossier_metrics_scrape_token|" \
    "$ROOT/deploy/prometheus/prometheus.yml" >"$home/prometheus.yml"
  printf -- '- targets: ["127.0.0.1:%s"]\n' "$ALERTMANAGER_PORT" >"$home/alertmanagers.yml"
  : >"$home/targets.yml"
  local service
  for service in "${SERVICES[@]}"; do
    service_exists "$service" || continue
    printf -- '- targets: ["127.0.0.1:%s"]\n  labels: {service: %s}\n' "$(service_port "$service")" "$service" \
      >>"$home/targets.yml"
  done
  printf -- '- targets: ["127.0.0.1:%s"]\n  labels: {service: metrics}\n' "$(service_port metrics)" \
    >"$home/urgent-targets.yml"
  promtool check config "$home/prometheus.yml" >/dev/null
}


case "${1:-start}" in
  start)
    install
    write_config
    if is_running prometheus; then
      http_post "http://127.0.0.1:$PROMETHEUS_PORT/-/reload"
      log "already running: configuration reloaded"
      exit 0
    fi
    log "starting Prometheus on 127.0.0.1:$PROMETHEUS_PORT"
    start_bg prometheus "$PROMETHEUS_PORT" prometheus --config.file="$home/prometheus.yml" \
      --storage.tsdb.path="$DATA/prometheus" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
      --web.console.templates="$home/consoles" --web.console.libraries="$home/console_libraries" \
      --web.enable-lifecycle --log.level=warn
    wait_for "Prometheus" 60 http_ok "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
    ;;
  reload)
    write_config
    http_post "http://127.0.0.1:$PROMETHEUS_PORT/-/reload"
    ;;
  stop) stop_bg prometheus ;;
  *) echo "usage: $0 start|stop|reload" >&2; exit 2 ;;
esac
