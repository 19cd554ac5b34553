"""The Helm chart (deploy/kubernetes/dossier-tracker) cannot be installed here; these checks render it
with each values file, validate every manifest against Kubernetes' and the operators' schemas, and
check what production relies on. helm, kubeconform and the schemas come from
deploy/local/install-kubernetes-tools.sh (`make system`), so nothing here needs the network."""

import importlib
import inspect
import json
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from shared.communes import communes
from shared.kafka_acls import acls
from shared.settings import ServiceSettings

# Run by the deployment's tools (helm, kubeconform, promtool, amtool): `make test-tools`, not `make test-unit`.
pytestmark = pytest.mark.tools


ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "kubernetes" / "dossier-tracker"
BIN = ROOT / ".local" / "bin"
SCHEMAS = ROOT / ".local" / "kubernetes" / "schemas"
KUBERNETES_VERSION = re.search(r'KUBERNETES_VERSION="\$\{KUBERNETES_VERSION:-v([0-9.]+)\}"',
                               (ROOT / "deploy" / "local" / "common.sh").read_text())[1]
NAMESPACE = "dossiers"
PORTS = {"intake": 8001, "processing": 8002, "metrics": 8003, "notifications": 8004, "signature": 8005}
CONSUMERS = {"processing": "dossier-events", "notifications": "dossier-status", "signature": "dossier-events"}
PROVINCES = {c.province_code for c in communes().values()}

# The two deployments the chart ships values for, and the province one with every option turned on.
VARIANTS = {
    "province": ["-f", str(CHART / "values.yaml")],
    "country": ["-f", str(CHART / "values-country.yaml")],
    "options": ["-f", str(CHART / "values.yaml"),
                "--set-file", f"calendar={ROOT / 'shared' / 'calendars' / 'vn.yaml'}",
                "--set", "signature.seal.enabled=true,notifications.provider=http,notifications.officers=true",
                "--set", "notifications.httpUrl=https://sms.example.vn/v1/messages",
                "--set", "ingress.enabled=true,ingress.rules[0].host=api.example.vn,ingress.rules[0].service=intake",
                "--set", "intake.autoscaling.enabled=false,processing.autoscaling.enabled=false"],
}

# What must come from a Secret, by service: the variable, or the file the variable names.
SECRET_SETTINGS = {
    "intake": {"DOSSIER_MONGO_URL", "DOSSIER_KAFKA_PASSWORD", "DOSSIER_INTAKE_API_KEYS_FILE"},
    "processing": {"DOSSIER_MONGO_URL", "DOSSIER_KAFKA_PASSWORD", "DOSSIER_PROCESSING_OPERATOR_KEYS_FILE",
                   "DOSSIER_LOOKUP_SECRET"},
    "metrics": {"DOSSIER_MONGO_URL", "DOSSIER_KAFKA_PASSWORD"},
    "notifications": {"DOSSIER_MONGO_URL", "DOSSIER_KAFKA_PASSWORD", "DOSSIER_NOTIFICATIONS_API_KEYS_FILE",
                      "DOSSIER_NOTIFICATIONS_DLR_SECRET", "DOSSIER_NOTIFICATIONS_ALERT_SECRET",
                      "DOSSIER_NOTIFICATIONS_MO_SECRET", "DOSSIER_LOOKUP_SECRET"},
    "signature": {"DOSSIER_MONGO_URL", "DOSSIER_KAFKA_PASSWORD", "DOSSIER_SIGNATURE_API_KEYS_FILE"},
}
SECRET_LOOKING = re.compile(r"SECRET|PASSWORD|TOKEN|PIN\b|AUTH|MONGO_URL|API_KEYS|OPERATOR_KEYS|_KEY\b")


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run `make system` (deploy/local/install-kubernetes-tools.sh)"
    return str(path)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True)


@cache
def rendered(variant: str) -> str:
    result = run(tool("helm"), "template", "dossier-tracker", str(CHART), "--namespace", NAMESPACE,
                 "--kube-version", KUBERNETES_VERSION, *VARIANTS[variant])
    assert result.returncode == 0, result.stderr
    return result.stdout


@cache
def parsed(variant: str) -> tuple[dict, ...]:
    return tuple(d for d in yaml.load_all(rendered(variant), Loader=yaml.CSafeLoader) if d)


def manifests(variant: str, kind: str | None = None) -> list[dict]:
    return [d for d in parsed(variant) if kind is None or d["kind"] == kind]


def workloads(variant: str) -> list[dict]:
    return manifests(variant, "Deployment") + manifests(variant, "StatefulSet")


def component(workload: dict) -> str:
    return workload["metadata"]["labels"]["app.kubernetes.io/component"]


def container(workload: dict) -> dict:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    return only


def env(workload: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(workload)["env"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def settings_class(name: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{name}.settings")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, ServiceSettings)]
    return max(classes, key=lambda c: len(c.__mro__))


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lints_the_chart(variant):
    result = run(tool("helm"), "lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION,
                 *VARIANTS[variant])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_for_kubernetes_and_the_operators(variant):
    # No -ignore-missing-schemas: a kind without a schema is an error, not a pass.
    result = run(tool("kubeconform"), "-strict", "-summary",
                 "-schema-location", f"{SCHEMAS}/kubernetes/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
                 "-schema-location", f"{SCHEMAS}/crds/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json",
                 "-", stdin=rendered(variant))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"(\d+) resources found.*Valid: (\d+), Invalid: (\d+), Errors: (\d+), Skipped: (\d+)",
                        result.stdout)
    found, valid, *bad = map(int, summary.groups())
    assert found == valid == len(manifests(variant)) and bad == [0, 0, 0], result.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_service_runs_with_its_contract_port_and_probes(variant):
    assert {component(w) for w in workloads(variant)} == set(PORTS)
    for workload in workloads(variant):
        name, c = component(workload), container(workload)
        assert c["command"] == ["python", "-m", f"services.{name}"]
        assert c["ports"] == [{"name": "http", "containerPort": PORTS[name]}]
        assert env(workload)["DOSSIER_BIND_HOST"]["value"] == "0.0.0.0"
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_runs_as_non_root_on_a_read_only_root_with_requests_and_limits(variant):
    for workload in workloads(variant):
        pod, c = workload["spec"]["template"]["spec"], container(workload)
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert set(c["resources"][bound]) == {"cpu", "memory"}, (component(workload), bound)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_workload_and_the_database_have_a_disruption_budget(variant):
    budgets = manifests(variant, "PodDisruptionBudget")
    for workload in workloads(variant):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, workload["metadata"]["name"]
        assert matching[0]["spec"]["maxUnavailable"] == 1
    [mongodb] = manifests(variant, "MongoDBCommunity")
    assert any(b["spec"]["selector"]["matchLabels"] == {"app": f"{mongodb['metadata']['name']}-svc"} for b in budgets)


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_secret_is_written_into_a_manifest(variant):
    assert not manifests(variant, "Secret")
    for workload in workloads(variant):
        name, variables = component(workload), env(workload)
        pod = workload["spec"]["template"]["spec"]
        secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        secret_files = {f"{m['mountPath']}/{item['path']}" for m in container(workload)["volumeMounts"]
                        if m["name"] in secret_volumes for item in secret_volumes[m["name"]]["items"]}
        for variable in variables.values():
            if not SECRET_LOOKING.search(variable["name"]):
                continue
            if variable["name"].endswith("_FILE"):
                assert variable["value"] in secret_files, f"{name}: {variable['name']} is not a Secret's file"
            else:
                assert "value" not in variable, f"{name}: {variable['name']} is a literal value"
                assert "secretKeyRef" in variable["valueFrom"], f"{name}: {variable['name']}"
        assert SECRET_SETTINGS[name] <= set(variables), f"{name} lacks {SECRET_SETTINGS[name] - set(variables)}"


def test_the_options_pass_their_secrets_from_secrets_too():
    variables = {component(w): env(w) for w in workloads("options")}
    assert "secretKeyRef" in variables["signature"]["DOSSIER_SIGNATURE_SEAL_PASSWORD"]["valueFrom"]
    assert "secretKeyRef" in variables["notifications"]["DOSSIER_NOTIFICATIONS_HTTP_AUTH_HEADER"]["valueFrom"]
    assert all(v["DOSSIER_CALENDAR"]["value"] == "/config/calendar/calendar.yaml" for v in variables.values())


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_dossier_variable_is_a_setting_of_the_service_that_gets_it(variant):
    for workload in workloads(variant):
        name = component(workload)
        fields = set(settings_class(name).model_fields)
        unknown = {v for v in env(workload) if v.startswith("DOSSIER_") and v[8:].lower() not in fields}
        assert not unknown, f"{name}: {unknown}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_service_is_told_production_json_logs_and_the_kafka_layout(variant):
    [kafka] = manifests(variant, "Kafka")
    for workload in workloads(variant):
        variables = env(workload)
        assert variables["DOSSIER_ENVIRONMENT"]["value"] == "production"
        assert variables["DOSSIER_LOG_FORMAT"]["value"] == "json"
        assert variables["DOSSIER_REPLICATION_FACTOR"]["value"] == "3"
        assert variables["DOSSIER_KAFKA_BOOTSTRAP_SERVERS"]["value"] == \
            f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
        assert variables["DOSSIER_MONGO_URL"]["valueFrom"]["secretKeyRef"]["name"] == mongo_url_secret(variant)


def mongo_url_secret(variant: str) -> str:
    [mongodb] = manifests(variant, "MongoDBCommunity")
    [user] = mongodb["spec"]["users"]
    return user["connectionStringSecretName"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_topics_are_replicated_three_times_and_partitioned_as_the_services_are_told(variant):
    topics = {t["spec"]["topicName"]: t["spec"] for t in manifests(variant, "KafkaTopic")}
    defaults = ServiceSettings()
    dead_letters = {f"{topic}.dlq.{name}" for name, topic in {**CONSUMERS, "metrics": "dossier-status"}.items()}
    assert set(topics) == {defaults.topic_events, defaults.topic_status, defaults.topic_dlq} | dead_letters
    partitions = int(env(workloads(variant)[0])["DOSSIER_PARTITIONS"]["value"])
    for name, spec in topics.items():
        assert spec["replicas"] == 3, name
        assert spec["partitions"] == partitions, name
        assert spec["config"]["min.insync.replicas"] == 2, name
    assert topics["dossier-status"]["config"]["retention.ms"] == -1
    [kafka] = manifests(variant, "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False
    pools = manifests(variant, "KafkaNodePool")
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) >= 3
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) in (3, 5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_mongodb_is_a_replica_set_whose_credentials_are_secrets(variant):
    [mongodb] = manifests(variant, "MongoDBCommunity")
    spec = mongodb["spec"]
    assert spec["type"] == "ReplicaSet" and spec["members"] == 3
    assert spec["security"]["authentication"]["modes"] == ["SCRAM"]
    [user] = spec["users"]
    assert set(user["passwordSecretRef"]) == {"name", "key"}


@pytest.mark.parametrize("variant", ["province", "country"])
def test_consumers_scale_on_their_group_lag_and_intake_on_cpu(variant):
    partitions = int(env(workloads(variant)[0])["DOSSIER_PARTITIONS"]["value"])
    deployments = {component(d): d for d in manifests(variant, "Deployment")}
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s["spec"] for s in manifests(variant, "ScaledObject")}
    assert set(scaled) == {deployments[name]["metadata"]["name"] for name in CONSUMERS}
    for name, topic in CONSUMERS.items():
        spec = scaled[deployments[name]["metadata"]["name"]]
        [kafka] = [t for t in spec["triggers"] if t["type"] == "kafka"]
        group = env(deployments[name])[f"DOSSIER_{name.upper()}_GROUP_ID"]["value"]
        assert kafka["metadata"]["consumerGroup"] == group and kafka["metadata"]["topic"] == topic
        assert 2 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        # An autoscaled Deployment leaves replicas to the autoscaler, or each upgrade would reset it.
        assert "replicas" not in deployments[name]["spec"]
    [hpa] = manifests(variant, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployments["intake"]["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu" and hpa["spec"]["minReplicas"] >= 2


def test_without_autoscaling_the_deployments_keep_their_replicas():
    deployments = {component(d): d for d in manifests("options", "Deployment")}
    assert deployments["intake"]["spec"]["replicas"] == deployments["processing"]["spec"]["replicas"] == 2
    assert not manifests("options", "HorizontalPodAutoscaler")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in manifests("options", "ScaledObject")} == \
        {deployments[name]["metadata"]["name"] for name in ("notifications", "signature")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_metrics_shards_own_every_province_once_with_two_replicas_each(variant):
    shards = [s for s in manifests(variant, "StatefulSet") if component(s) == "metrics"]
    services = manifests(variant, "Service")
    owned: list[str] = []
    for shard in shards:
        variables = env(shard)
        assert shard["spec"]["replicas"] == 2
        # Its own consumer group and replica label: the stable pod name.
        for name in ("DOSSIER_METRICS_GROUP_ID", "DOSSIER_METRICS_REPLICA"):
            assert variables[name]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        provinces = json.loads(variables["DOSSIER_METRICS_PROVINCES"]["value"]) \
            if "DOSSIER_METRICS_PROVINCES" in variables else sorted(PROVINCES)
        owned += provinces
        if "DOSSIER_METRICS_OWNERS" in variables:
            owners = json.loads(variables["DOSSIER_METRICS_OWNERS"]["value"])
            labels = shard["spec"]["template"]["metadata"]["labels"]
            for province in provinces:
                host, port = re.fullmatch(r"http://([^.]+)\.([^.]+)\.svc:(\d+)", owners[province]).group(1, 3)
                [service] = [s for s in services if s["metadata"]["name"] == host]
                assert selects(service["spec"]["selector"], labels) and "clusterIP" not in service["spec"]
                assert [p["port"] for p in service["spec"]["ports"]] == [int(port)] == [PORTS["metrics"]]
    assert sorted(owned) == sorted(PROVINCES), "each province in exactly one shard"
    if len(shards) > 1:
        assert all("DOSSIER_METRICS_PROVINCES" in env(s) and "DOSSIER_METRICS_OWNERS" in env(s) for s in shards)


def test_the_country_is_split_into_shards_of_about_four_provinces():
    shards = [s for s in manifests("country", "StatefulSet") if component(s) == "metrics"]
    sizes = [len(json.loads(env(s)["DOSSIER_METRICS_PROVINCES"]["value"])) for s in shards]
    assert len(PROVINCES) == 34 and len(shards) >= 8 and max(sizes) <= 4


def test_the_chart_rules_are_the_projects_rules():
    ours = {p.name: p.read_bytes() for p in (ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "files" / "rules").glob("*.yml")}
    assert chart == ours, "run deploy/kubernetes/copy-rules.sh"


@pytest.mark.parametrize("variant", VARIANTS)
def test_prometheus_gets_the_rules_and_the_labels_they_expect(variant):
    rules = {r["metadata"]["name"]: r["spec"] for r in manifests(variant, "PrometheusRule")}
    for path in (CHART / "files" / "rules").glob("*.yml"):
        [spec] = [spec for name, spec in rules.items() if name.endswith(f"-{path.stem}")]
        ours = yaml.safe_load(path.read_text())
        for rule in (r for group in ours["groups"] for r in group["rules"] if "alert" in r):
            rule["labels"] = rule.get("labels", {}) | {"namespace": NAMESPACE}  # what AlertmanagerConfig routes by
        assert spec == ours
    [monitor] = manifests(variant, "PodMonitor")
    [endpoint, urgent] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http" and endpoint["path"] == "/metrics"
    # The urgent dossiers' codes: the metrics pods only, with the token (docs/security.md).
    assert urgent["path"] == "/metrics/dossiers" and urgent["authorization"]["credentials"]["key"] == "scrape-token"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"], "regex": "metrics",
            "action": "keep"} in urgent["relabelings"]
    # The rules select up{job="dossier"} and name $labels.service, as the local Prometheus labels them.
    assert {"targetLabel": "job", "replacement": "dossier"} in endpoint["relabelings"]
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
            "targetLabel": "service"} in endpoint["relabelings"]
    for workload in workloads(variant):
        assert selects(monitor["spec"]["selector"]["matchLabels"], workload["spec"]["template"]["metadata"]["labels"])


def test_with_officers_alertmanager_texts_them_through_the_webhook_as_the_local_stack_does():
    """notifications.officers: the officers' numbers from the Secret, and Alertmanager's route of
    deploy/alertmanager/alertmanager.yml as an AlertmanagerConfig (docs/alerts.md)."""
    assert not manifests("province", "AlertmanagerConfig")
    [config] = manifests("options", "AlertmanagerConfig")
    [notifications] = [w for w in workloads("options") if component(w) == "notifications"]
    assert env(notifications)["DOSSIER_NOTIFICATIONS_OFFICERS_FILE"]["value"] == "/secrets/keys/officers.json"
    [volume] = [v for v in notifications["spec"]["template"]["spec"]["volumes"] if v["name"] == "secrets"]
    assert {"key": "officers.json", "path": "officers.json"} in volume["secret"]["items"]
    secret = volume["secret"]["secretName"]
    [local] = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())["route"]["routes"]
    route = config["spec"]["route"]
    matchers = [f'{m["name"]}{m["matchType"]}"{m["value"]}"' for m in route["matchers"]]
    assert (matchers, route["groupBy"], route["repeatInterval"]) == \
        (local["matchers"], local["group_by"], local["repeat_interval"])
    [receiver] = config["spec"]["receivers"]
    [hook] = receiver["webhookConfigs"]
    [service] = [s for s in manifests("options", "Service") if s["metadata"]["name"].endswith("-notifications")]
    assert hook["url"] == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{PORTS['notifications']}/v1/alerts"
    assert hook["httpConfig"]["authorization"] == {"type": "Bearer",
                                                   "credentials": {"name": secret, "key": "alert-secret"}}
    assert env(notifications)["DOSSIER_NOTIFICATIONS_ALERT_SECRET"]["valueFrom"]["secretKeyRef"] == \
        {"name": secret, "key": "alert-secret"}


# -- Kafka's users and the network (docs/security.md, finding 12) ----------------------------------------


def kafka_user_of(workload: dict) -> tuple[str, dict]:
    """The user a service logs in as, and where its password comes from."""
    variables = env(workload)
    return variables["DOSSIER_KAFKA_USERNAME"]["value"], variables["DOSSIER_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_kafka_takes_only_scram_logins_and_grants_each_service_what_the_local_stack_does(variant):
    [kafka] = manifests(variant, "Kafka")
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert listener["authentication"] == {"type": "scram-sha-512"}
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert "userOperator" in kafka["spec"]["entityOperator"]
    users = {u["metadata"]["name"]: u["spec"] for u in manifests(variant, "KafkaUser")}
    metrics_prefix = f"{kafka['metadata']['name']}-metrics-"  # the metrics pods' names: their groups
    expected: dict[str, set] = {}
    for acl in acls(ServiceSettings()):
        name = acl.name.replace("metrics", metrics_prefix) if acl.prefixed else acl.name
        expected.setdefault(acl.user, set()).add((acl.resource, name, "prefix" if acl.prefixed else "literal",
                                                   acl.operation.capitalize()))
    services = {component(w): w for w in workloads(variant)}
    assert set(expected) == set(services)
    for name, workload in services.items():
        user, secret = kafka_user_of(workload)
        assert secret == {"name": user, "key": "password"}  # the Secret Strimzi's User Operator writes
        spec = users[user]
        assert spec["authentication"] == {"type": "scram-sha-512"}
        granted = {(a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"], op)
                   for a in spec["authorization"]["acls"] for op in a["operations"] if op != "Describe"}
        assert granted == expected[name], name
    assert len(users) == len(services)
    # Only the services' pods (and KEDA, for the lag) reach the brokers: Strimzi's NetworkPolicy.
    peers = listener["networkPolicyPeers"]
    for workload in workloads(variant):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(selects(p.get("podSelector", {}).get("matchLabels", {"-": "-"}), labels) for p in peers)
    assert all("podSelector" in p or "namespaceSelector" in p for p in peers)


@pytest.mark.parametrize("variant", ["province", "country"])
def test_keda_reads_the_lag_as_the_service_it_scales(variant):
    auths = {a["metadata"]["name"]: a["spec"] for a in manifests(variant, "TriggerAuthentication")}
    deployments = {d["metadata"]["name"]: d for d in manifests(variant, "Deployment")}
    for scaled in manifests(variant, "ScaledObject"):
        [trigger] = [t for t in scaled["spec"]["triggers"] if t["type"] == "kafka"]
        assert trigger["metadata"]["sasl"] == "scram_sha512"
        auth = auths[trigger["authenticationRef"]["name"]]
        workload = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        user, secret = kafka_user_of(workload)
        assert auth["env"] == [{"parameter": "username", "name": "DOSSIER_KAFKA_USERNAME",
                                "containerName": component(workload)}]
        assert auth["secretTargetRef"] == [{"parameter": "password", **secret}]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_service_is_reached_and_reaches_only_what_it_needs(variant):
    policies = manifests(variant, "NetworkPolicy")
    [kafka] = manifests(variant, "Kafka")
    for workload in workloads(variant):
        name, labels = component(workload), workload["spec"]["template"]["metadata"]["labels"]
        [policy] = [p["spec"] for p in policies if selects(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        [ingress] = policy["ingress"]
        assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
        if name == "intake":
            assert "from" not in ingress  # the one-stop-shop systems, wherever they are
        else:
            namespaces = [p["namespaceSelector"]["matchLabels"] for p in ingress["from"] if "namespaceSelector" in p]
            assert {"kubernetes.io/metadata.name": "monitoring"} in namespaces, name  # Prometheus' scrape
            assert all(set(p) <= {"namespaceSelector", "podSelector"} for p in ingress["from"]), name
        egress = policy["egress"]
        ports = {(p["port"], p["protocol"]) for rule in egress for p in rule.get("ports", [])}
        assert {(53, "UDP"), (9092, "TCP"), (27017, "TCP")} <= ports, name
        [to_kafka] = [r for r in egress if r["ports"] == [{"port": 9092, "protocol": "TCP"}]]
        assert to_kafka["to"] == [{"podSelector": {"matchLabels": {"strimzi.io/cluster": kafka["metadata"]["name"],
                                                                   "strimzi.io/broker-role": "true"}}}]
        # Every rule names its destinations, but the SMS gateway's ports (Kannel, an aggregator's HTTPS).
        assert all("to" in rule for rule in egress if name != "notifications"), name
        if name == "signature":
            [public] = [r for r in egress if any("ipBlock" in t for t in r["to"])]
            assert "169.254.0.0/16" in public["to"][0]["ipBlock"]["except"]  # cloud metadata (finding 3)
    assert len(policies) == len(PORTS)
