"""The Prometheus configuration and alerting rules, checked by promtool itself."""

import subprocess
from pathlib import Path

import pytest

# Run by the deployment's tools (helm, kubeconform, promtool, amtool): `make test-tools`, not `make test-unit`.
pytestmark = pytest.mark.tools


PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True)


def test_the_rules_are_valid():
    result = promtool("check", "rules", *map(str, sorted((PROMETHEUS / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tests", sorted((PROMETHEUS / "tests").glob("*.test.yml")), ids=lambda p: p.name)
def test_every_alert_behaves_as_its_unit_tests_say(tests):
    result = promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_file_has_unit_tests():
    tested = {line.split("/")[-1].strip(" []\n") for t in (PROMETHEUS / "tests").glob("*.test.yml")
              for line in t.read_text().splitlines() if line.startswith("rule_files:")}
    assert tested == {p.name for p in (PROMETHEUS / "rules").glob("*.yml")}
