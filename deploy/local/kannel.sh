#!/usr/bin/env bash
# Kannel (Debian kannel + kannel-extras) as the SMS gateway: bearerbox, smsbox, and the fake SMSC
# from kannel-extras, whose log is the local stack's SMS log. Usage: kannel.sh start|stop
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
  sed -e "s|@ADMIN_PORT@|$KANNEL_ADMIN_PORT|; s|@SMSBOX_PORT@|$KANNEL_SMSBOX_PORT|" \
      -e "s|@SMSC_PORT@|$KANNEL_SMSC_PORT|; s|@SENDSMS_PORT@|$KANNEL_SENDSMS_PORT|" \
      -e "s|@LOGS@|$LOGS|g; s|@HOST@|127.0.0.1|g; s|@SENDSMS_HOST@|127.0.0.1|" \
      "$ROOT/deploy/kannel/kannel.conf.in" >"$home/kannel.conf"
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
    is_running kannel-bearerbox || start_bg kannel-bearerbox "$KANNEL_ADMIN_PORT" bearerbox -v 1 "$home/kannel.conf"
    wait_for "bearerbox" 30 port_open "$KANNEL_SMSC_PORT"
    # -m 0: sends no message of its own; it prints every message it receives ("Got message").
    is_running kannel-fakesmsc || start_bg kannel-fakesmsc "$KANNEL_SENDSMS_PORT" \
      "$FAKESMSC" -H 127.0.0.1 -r "$KANNEL_SMSC_PORT" -i 86400 -m 0 "0 0 text none"
    is_running kannel-smsbox || start_bg kannel-smsbox "$KANNEL_SENDSMS_PORT" smsbox -v 1 "$home/kannel.conf"
    wait_for "smsbox" 30 sendsms_ok
    ;;
  stop)
    stop_bg kannel-smsbox
    stop_bg kannel-fakesmsc
    stop_bg kannel-bearerbox
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
