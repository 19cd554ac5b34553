#!/usr/bin/env bash
# Apache Kafka, KRaft single node on 127.0.0.1. Usage: kafka.sh start|stop
source "$(dirname "$0")/common.sh"
libs="$LOCAL/kafka/libs"
logdir="$DATA/kafka"
config="$STACK/kafka-server.properties"

classpath() { printf '%s:' "$libs"/*.jar; }

java_cmd() {
  echo java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/deploy/local/kafka/log4j2.properties" -cp "$(classpath)"
}

write_config() {
  cat >"$config" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
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
}

case "${1:-start}" in
  start)
    "$ROOT/deploy/local/install-kafka.sh"
    if is_running kafka; then log "already running"; exit 0; fi
    write_config
    if [[ ! -f "$logdir/meta.properties" ]]; then
      mkdir -p "$logdir"
      cluster_id=$($(java_cmd) kafka.tools.StorageTool random-uuid)
      $(java_cmd) kafka.tools.StorageTool format -t "$cluster_id" -c "$config" >/dev/null
    fi
    log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
    start_bg kafka "$KAFKA_PORT" $(java_cmd) kafka.Kafka "$config"
    wait_for "Kafka" 90 port_open "$KAFKA_PORT"
    ;;
  stop) stop_bg kafka ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
