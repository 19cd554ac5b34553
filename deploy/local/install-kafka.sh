#!/usr/bin/env bash
# Resolve Apache Kafka's jars from Maven Central into .local/kafka/libs, once.
source "$(dirname "$0")/common.sh"
libs="$LOCAL/kafka/libs"
marker="$libs/.kafka-$KAFKA_VERSION"
if [[ -f "$marker" ]]; then exit 0; fi
log "resolving Kafka $KAFKA_VERSION jars with mvn (first run only)"
rm -rf "$libs"; mkdir -p "$libs"
mvn -q -B -f "$ROOT/deploy/local/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs"
touch "$marker"
