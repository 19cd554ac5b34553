#!/bin/bash
# docker-compose.yml's Kafka: the image's KAFKA_* variables as its configuration, plus what
# deploy/local/kafka.sh gives the local stack (docs/security.md, finding 12): clients log in with
# SASL/SCRAM-SHA-512 as the admin or their service's user (made when the storage is formatted, their
# passwords from the secrets compose's `secrets` made), the controller's listener with PLAIN, and
# nothing allowed that no ACL grants (`setup` grants them: python -m shared.kafka).
set -euo pipefail
source /deploy/security.sh  # deploy/kafka/security.sh: the logins and authorizer, as the local stack's
users=(admin intake processing metrics notifications signature)  # shared/kafka_acls.py ADMIN, SERVICES
password() { cat "/secrets/dossier_kafka_password_$1"; }
config=/tmp/server.properties
umask 077
env | sed -n 's/^KAFKA_\([A-Z_]*\)=\(.*\)$/\1=\2/p' | grep -v '^\(HOME\|VERSION\)=' |
  while IFS='=' read -r name value; do echo "$(tr 'A-Z_' 'a-z.' <<<"$name")=$value"; done >"$config"
cat >>"$config" <<CONF
log.dirs=/var/lib/kafka/data
$(security_properties "$(password admin)" "$(password controller)" internal external)
CONF
# The healthcheck's login.
cat >/tmp/admin.properties <<CONF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(password admin)";
CONF
mapfile -t scram < <(scram_users password "${users[@]}")
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" \
  -c "$config" "${scram[@]}" >/dev/null
exec /opt/kafka/bin/kafka-server-start.sh "$config"
