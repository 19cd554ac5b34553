#!/bin/sh
# docker-compose: bearerbox, the fake SMSC and smsbox in one container, on the local stack's ports;
# sendsms listens on every interface so that the notifications container reaches it.
set -e
sed -e "s|@ADMIN_PORT@|13000|; s|@SMSBOX_PORT@|13001|; s|@SMSC_PORT@|10000|; s|@SENDSMS_PORT@|13013|" \
    -e "s|@LOGS@|/var/log/kannel|g; s|@HOST@|127.0.0.1|g; s|@SENDSMS_HOST@|0.0.0.0|" \
    -e "s|@PASSWORD@|$(cat /secrets/dossier_notifications_kannel_password)|g" \
    -e "s|@MO_SECRET@|$(cat /secrets/dossier_notifications_mo_secret)|; s|@MO_URL@|http://notifications:8004/v1/mo|" \
    /etc/dossier-kannel/kannel.conf.in > /etc/kannel/kannel.conf
mkdir -p /var/log/kannel
bearerbox -v 2 /etc/kannel/kannel.conf &
sleep 2
mkfifo /var/log/kannel/mo.fifo  # what phones send (MO): echo "84912345678 8100 text HS <code>" > it
/usr/lib/kannel/test/fakesmsc -H 127.0.0.1 -r 10000 0<>/var/log/kannel/mo.fifo > /var/log/kannel/fakesmsc.log 2>&1 &
exec smsbox -v 2 /etc/kannel/kannel.conf
