#!/usr/bin/env bash
# Apache Kafka, KRaft single node on 127.0.0.1. Usage: kafka.sh start|stop
# Clients authenticate with SASL/SCRAM-SHA-512 and may do only what their ACLs grant (docs/security.md,
# finding 12): the admin (a super user) and one user per service, made when the storage is formatted,
# their passwords in the stack's secrets (shared/secrets.py); `python -m shared.kafka` grants the ACLs.
source "$(dirname "$0")/common.sh"
source "$ROOT/deploy/kafka/security.sh"
libs="$LOCAL/kafka/libs"
logdir="$DATA/kafka"
config="$STACK/kafka-server.properties"

classpath() { printf '%s:' "$libs"/*.jar; }

java_cmd() {
  echo java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/local/kafka/log4j2.properties" -cp "$(classpath)"
}

# The users whose SCRAM credentials the storage is formatted with: the admin and the services.
read -ra USERS <<<"$(cd "$ROOT" && "$PY" -c 'from shared.kafka_acls import ADMIN, SERVICES; print(ADMIN, *SERVICES)')"

write_config() {
  local admin controller
  admin=$(secret kafka_password_admin)
  controller=$(secret kafka_password_controller)
  (umask 077 && cat >"$config" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=CLIENTS://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=CLIENTS://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CLIENTS:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=CLIENTS
$(security_properties "$admin" "$controller" clients)
log.dirs=$logdir
num.partitions=$PARTITIONS
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
# The largest record batch (shared/kafka.py MAX_MESSAGE_BYTES): intake's largest event, 1 MiB, and more.
message.max.bytes=2097152
CONF
  )
}

user_password() { secret "kafka_password_$1"; }

# format: the storage, with the users' SCRAM credentials; a storage formatted before users existed is
# moved aside (its topics are lost: `make up` makes them again), as SCRAM users can only be added to
# a running cluster by a user who can already log in.
format_storage() {
  if [[ -f "$logdir/meta.properties" && ! -f "$logdir/.scram-users" ]]; then
    log "Kafka's data predates its SASL users: moving it to $logdir.before-sasl"
    rm -rf "$logdir.before-sasl"; mv "$logdir" "$logdir.before-sasl"
  fi
  [[ -f "$logdir/meta.properties" ]] && return 0
  mkdir -p "$logdir"
  local cluster_id scram
  cluster_id=$($(java_cmd) kafka.tools.StorageTool random-uuid)
  mapfile -t scram < <(scram_users user_password "${USERS[@]}")
  $(java_cmd) kafka.tools.StorageTool format -t "$cluster_id" -c "$config" "${scram[@]}" >/dev/null
  printf '%s\n' "${USERS[@]}" >"$logdir/.scram-users"
}

case "${1:-start}" in
  start)
    "$ROOT/deploy/local/install-kafka.sh"
    if is_running kafka; then log "already running"; exit 0; fi
    ensure_secrets
    write_config
    format_storage
    log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
    start_bg kafka "$KAFKA_PORT" $(java_cmd) kafka.Kafka "$config"
    wait_for "Kafka" 90 port_open "$KAFKA_PORT"
    ;;
  stop) stop_bg kafka ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
