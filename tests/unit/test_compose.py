"""docker-compose.yml cannot run here; these checks keep it consistent with the local stack."""

import importlib
import inspect
import re
from pathlib import Path

import pytest
import yaml

from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_PORTS = {"intake": 8001, "processing": 8002, "metrics": 8003, "notifications": 8004, "signature": 8005}
INFRA_PORTS = {"kafka": 9092, "mongodb": 27017, "prometheus": 9090, "grafana": 3000}
BUILT = sorted(name for name in CONTRACT_PORTS if (ROOT / "services" / name / "__main__.py").exists())

compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def settings_class(name: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{name}.settings")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, ServiceSettings)]
    return max(classes, key=lambda c: len(c.__mro__))


def host_ports(service: dict) -> set[int]:
    return {int(mapping.split(":")[-2]) for mapping in service.get("ports", [])}


@pytest.mark.parametrize("name", BUILT)
def test_each_built_service_runs_in_compose_as_locally_on_its_contract_port(name):
    service = compose[name]
    assert service["command"] == ["python", "-m", f"services.{name}"]
    assert host_ports(service) == {CONTRACT_PORTS[name]}
    assert all(m.startswith("127.0.0.1:") for m in service["ports"])
    port_field = f"{name}_port"
    assert settings_class(name).model_fields[port_field].default == CONTRACT_PORTS[name]


def test_compose_has_no_service_that_is_not_built():
    declared = set(compose) & set(CONTRACT_PORTS)
    assert declared == set(BUILT)


@pytest.mark.parametrize(("name", "port"), INFRA_PORTS.items())
def test_infrastructure_ports_match_the_contract(name, port):
    assert host_ports(compose[name]) == {port}


def test_every_dossier_variable_in_compose_is_a_setting_of_the_service_that_gets_it():
    for name, service in compose.items():
        env = service.get("environment") or {}
        names = {k for k in env if k.startswith("DOSSIER_")}
        fields = set(ServiceSettings.model_fields)
        if name in BUILT:
            fields |= set(settings_class(name).model_fields)
        unknown = {n for n in names if n.removeprefix("DOSSIER_").lower() not in fields}
        assert not unknown, f"{name}: {unknown}"


def test_prometheus_scrapes_every_built_service_on_its_port():
    targets = yaml.safe_load((ROOT / "deploy" / "prometheus" / "targets.yml").read_text())
    scraped = {t["labels"]["service"]: t["targets"][0] for t in targets}
    assert scraped == {name: f"{name}:{CONTRACT_PORTS[name]}" for name in BUILT}


def test_local_scripts_use_the_contract_ports():
    common = (ROOT / "deploy" / "local" / "common.sh").read_text()
    for name, port in CONTRACT_PORTS.items():
        assert re.search(rf'{name}\) echo "\$\{{DOSSIER_{name.upper()}_PORT:-{port}\}}"', common), name
    for name, variable in [("kafka", "KAFKA_PORT"), ("mongodb", "MONGO_PORT"), ("prometheus", "PROMETHEUS_PORT")]:
        assert f'{variable}="${{DOSSIER_{variable}:-{INFRA_PORTS[name]}}}"' in common


def test_what_compose_mounts_from_the_repository_is_there():
    """Its configuration is the local stack's files (the officers, trust roots, Alertmanager's...)."""
    sources = [volume.split(":")[0] for service in compose.values() for volume in service.get("volumes", [])
               if isinstance(volume, str) and volume.startswith("./") and not volume.startswith("./.local")]
    assert "./deploy/local/officers.json" in sources
    assert all((ROOT / source).exists() for source in sources), [s for s in sources if not (ROOT / s).exists()]


def image_version(name: str) -> tuple[int, ...]:
    tag = compose[name]["image"].rsplit(":", 1)[1]
    return tuple(int(part) for part in tag.removeprefix("v").split("."))


def test_every_image_is_pinned_to_an_exact_release():
    """A floating tag (`latest`, `mongo:7`) moves under the stack without a change here to review."""
    images = {name: service["image"] for name, service in compose.items() if "image" in service}
    loose = {name: image for name, image in images.items() if not re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image)}
    assert not loose


def test_alertmanager_is_past_its_stored_xss():
    """CVE-2023-40577: an alert posted to its API ran script in the UI of whoever opened it; fixed in 0.25.1."""
    assert image_version("alertmanager") >= (0, 25, 1)


def test_grafana_lets_in_no_one_without_a_login():
    env = compose["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    # The admin's password is the operator's, required at start: no admin/admin to fall back on.
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", env["GF_SECURITY_ADMIN_PASSWORD"])
