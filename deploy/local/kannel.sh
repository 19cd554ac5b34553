#!/usr/bin/env bash
# Kannel (Debian kannel + kannel-extras) as the SMS gateway: bearerbox, smsbox, and the fake SMSC
# from kannel-extras, whose log is the local stack's SMS log. Usage: kannel.sh start|stop|mo FROM TO TEXT
source "$(dirname "$0")/common.sh"
home="$STACK/kannel"
FAKESMSC=/usr/lib/kannel/test/fakesmsc

install() {
  command -v bearerbox >/dev/null && command -v smsbox >/dev/null && [[ -x $FAKESMSC ]] && return 0
  log "installing Kannel from Debian (first run only)"
  "$ROOT/deploy/local/install-apt.sh" kannel kannel-extras
}

write_config() {
  mkdir -p "$home"
  ensure_secrets
  local mo_url="http://127.0.0.1:$(service_port notifications)/v1/mo"
  sed -e "s|@ADMIN_PORT@|$KANNEL_ADMIN_PORT|; s|@SMSBOX_PORT@|$KANNEL_SMSBOX_PORT|" \
      -e "s|@SMSC_PORT@|$KANNEL_SMSC_PORT|; s|@SENDSMS_PORT@|$KANNEL_SENDSMS_PORT|" \
      -e "s|@LOGS@|$LOGS|g; s|@HOST@|127.0.0.1|g; s|@SENDSMS_HOST@|127.0.0.1|" \
      -e "s|@PASSWORD@|$(secret notifications_kannel_password)|g; s|@MO_SECRET@|$(secret notifications_mo_secret)|" \
      -e "s|@MO_URL@|$mo_url|" "$ROOT/deploy/kannel/kannel.conf.in" >"$home/kannel.conf"
  chmod 600 "$home/kannel.conf"
}

sendsms_ok() { port_open "$KANNEL_SENDSMS_PORT"; }

case "${1:-start}" in
  start)
    install
    write_config
    if is_running kannel-bearerbox && is_running kannel-smsbox && is_running kannel-fakesmsc; then
      log "already running"; exit 0
    fi
    log "starting Kannel (sendsms on 127.0.0.1:$KANNEL_SENDSMS_PORT, fake SMSC on $KANNEL_SMSC_PORT)"
    is_running kannel-bearerbox || start_bg kannel-bearerbox "$KANNEL_ADMIN_PORT" bearerbox -v 2 "$home/kannel.conf"
    wait_for "bearerbox" 30 port_open "$KANNEL_SMSC_PORT"
    # Interactive: it prints every message it receives ("Got message") and sends, as SMS from
    # phones (MO), the lines written to its FIFO (`kannel.sh mo ...`); opened read-write, the FIFO
    # never ends.
    if ! is_running kannel-fakesmsc; then
      rm -f "$RUN/kannel-mo.fifo"; mkfifo "$RUN/kannel-mo.fifo"
      start_bg kannel-fakesmsc "$KANNEL_SENDSMS_PORT" sh -c 'exec "$0" -H 127.0.0.1 -r "$1" 0<>"$2"' \
        "$FAKESMSC" "$KANNEL_SMSC_PORT" "$RUN/kannel-mo.fifo"
    fi
    is_running kannel-smsbox || start_bg kannel-smsbox "$KANNEL_SENDSMS_PORT" smsbox -v 2 "$home/kannel.conf"
    wait_for "smsbox" 30 sendsms_ok
    ;;
  mo)  # kannel.sh mo FROM TO TEXT...: a phone sends an SMS to the brandname number
    shift
    [[ -p "$RUN/kannel-mo.fifo" ]] || { log "Kannel is not running"; exit 1; }
    printf '%s %s text %s\n' "$1" "$2" "${*:3}" >"$RUN/kannel-mo.fifo"
    ;;
  stop)
    stop_bg kannel-smsbox
    stop_bg kannel-fakesmsc
    stop_bg kannel-bearerbox
    ;;
  *) echo "usage: $0 start|stop|mo FROM TO TEXT" >&2; exit 2 ;;
esac
