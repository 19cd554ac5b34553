#!/usr/bin/env bash
# What tests/unit/test_kubernetes.py validates the Helm chart with, once: helm and kubeconform built
# with go from the Go module proxy, and kubeconform's JSON schemas (Kubernetes' built-in kinds and the
# operators' custom resources) made from the modules and Maven artifacts that carry them, so that the
# test needs no network.
source "$(dirname "$0")/common.sh"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"  # an older Go fetches the toolchain go.mod asks for
TOOLS="$ROOT/deploy/local/kubernetes"
SCHEMAS="$LOCAL/kubernetes/schemas"

# The directory of one exact module version. `go install pkg@version` would ask the proxy for the
# module's version list, which it may refuse; an exact download is always answered.
module_dir() {
  (cd /tmp && go mod download -json "$1") | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

if [[ ! -x "$BIN/helm" || ! -f "$BIN/.helm-$HELM_VERSION" ]]; then
  log "building helm $HELM_VERSION with go (first run only, two or three minutes)"
  src=$(module_dir "helm.sh/helm/v3@$HELM_VERSION")
  # As helm's Makefile does: its version, and the newest Kubernetes it assumes (its client-go's).
  k8s_minor=$(sed -n 's/^\tk8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$src/go.mod")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.metadata="
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/helm" ./cmd/helm)
  rm -f "$BIN"/.helm-*; touch "$BIN/.helm-$HELM_VERSION"
fi

if [[ ! -x "$BIN/kubeconform" || ! -f "$BIN/.kubeconform-$KUBECONFORM_VERSION" ]]; then
  log "building kubeconform $KUBECONFORM_VERSION with go (first run only)"
  src=$(module_dir "github.com/yannh/kubeconform@$KUBECONFORM_VERSION")
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
    -o "$BIN/kubeconform" ./cmd/kubeconform)
  rm -f "$BIN"/.kubeconform-*; touch "$BIN/.kubeconform-$KUBECONFORM_VERSION"
fi

# The schemas are made again when a version, the converter or this script (the kinds it makes) changes.
stamp=$(echo "$KUBERNETES_VERSION $STRIMZI_VERSION $PROMETHEUS_OPERATOR_VERSION $MONGODB_OPERATOR_VERSION $KEDA_VERSION" |
  cat - "$TOOLS/schemas.py" "$TOOLS/pom.xml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)
[[ -f "$SCHEMAS/.made-$stamp" ]] && exit 0

# Strimzi's CRD generator is compiled for Java 21; the machine's default java may be older.
java21() {
  local home version
  for home in "${JAVA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/*; do
    [[ -x "$home/bin/java" ]] || continue
    version=$("$home/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p')
    version=${version%%.*}
    if ((${version:-0} >= 21)); then echo "$home/bin/java"; return 0; fi
  done
  log "Strimzi's CRD generator needs Java 21 or later: none found (JAVA_HOME, java, /usr/lib/jvm)"
  return 1
}

"$ROOT/deploy/local/install-python.sh"  # the converter reads the CRDs' YAML with the venv's PyYAML
log "making kubeconform's schemas: Kubernetes $KUBERNETES_VERSION, Strimzi $STRIMZI_VERSION," \
  "prometheus-operator $PROMETHEUS_OPERATOR_VERSION, MongoDB operator $MONGODB_OPERATOR_VERSION, KEDA $KEDA_VERSION"
rm -rf "$SCHEMAS" "$LOCAL/kubernetes/strimzi"; mkdir -p "$SCHEMAS" "$LOCAL/kubernetes/strimzi"

kubernetes=$(module_dir "k8s.io/kubernetes@$KUBERNETES_VERSION")
"$PY" "$TOOLS/schemas.py" kubernetes "$kubernetes/api/openapi-spec/swagger.json" "$SCHEMAS/kubernetes"

# Strimzi publishes its CRDs by running its generator on its API classes: we do the same, with the
# arguments of the release build (api/pom.xml), for the kinds the chart uses.
strimzi="$LOCAL/kubernetes/strimzi"
mvn -q -B -f "$TOOLS/pom.xml" -Dstrimzi.version="$STRIMZI_VERSION" \
  dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$strimzi/libs"
"$(java21)" -cp "$strimzi/libs/*" io.strimzi.crdgenerator.CrdGenerator --yaml \
  --crd-api-version v1 --api-versions v1 --storage-version v1 --target-kube 1.16+ \
  io.strimzi.api.kafka.model.kafka.Kafka="$strimzi/kafka.yaml" \
  io.strimzi.api.kafka.model.nodepool.KafkaNodePool="$strimzi/kafkanodepool.yaml" \
  io.strimzi.api.kafka.model.topic.KafkaTopic="$strimzi/kafkatopic.yaml" \
  io.strimzi.api.kafka.model.user.KafkaUser="$strimzi/kafkauser.yaml"

prometheus=$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
mongodb=$(module_dir "github.com/mongodb/mongodb-kubernetes-operator@$MONGODB_OPERATOR_VERSION")
keda=$(module_dir "github.com/kedacore/keda/v2@$KEDA_VERSION")
"$PY" "$TOOLS/schemas.py" crds "$SCHEMAS/crds" "$strimzi"/*.yaml \
  "$prometheus"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml \
  "$mongodb"/config/crd/bases/mongodbcommunity.mongodb.com_mongodbcommunity.yaml \
  "$keda"/config/crd/bases/keda.sh_*.yaml
rm -rf "$strimzi/libs"
touch "$SCHEMAS/.made-$stamp"
