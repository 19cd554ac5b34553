"""Python packages come from requirements.lock only: exact versions, each with its hashes, and every
install (deploy/local/install-python.sh, the Dockerfile) refuses anything the lock does not pin."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())


def lock_entries() -> list[str]:
    """The lock's requirements, each with its continuation lines joined and comments dropped."""
    lines = (line.strip() for line in re.sub(r"\\\n", " ", LOCK.read_text()).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def pins() -> dict[str, Version]:
    found = {}
    for entry in lock_entries():
        name, version = re.match(r"([A-Za-z0-9][\w.-]*)==(\S+)", entry).groups()
        found[canonicalize_name(name)] = Version(version)
    return found


def declared() -> list[Requirement]:
    """What pyproject.toml asks for: the services', the tests' and the build's own requirements."""
    project = pyproject["project"]
    names = project["dependencies"] + project["optional-dependencies"]["test"] + pyproject["build-system"]["requires"]
    return [Requirement(name) for name in names]


def test_every_requirement_in_the_lock_is_an_exact_version_with_hashes():
    entries = lock_entries()
    assert entries
    for entry in entries:
        assert re.match(r"[A-Za-z0-9][\w.-]*==\S+ ", entry), entry
        assert re.search(r"--hash=sha256:[0-9a-f]{64}\b", entry), entry


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_every_dependency_pyproject_names_is_locked_within_its_range(requirement):
    locked = pins()
    name = canonicalize_name(requirement.name)
    assert name in locked, f"{name} is not in requirements.lock: run deploy/local/lock-python.sh"
    assert requirement.specifier.contains(locked[name], prereleases=True), (name, str(locked[name]))


def install_commands(path: Path) -> list[str]:
    """The pip install commands of a shell script or Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [command for command in re.split(r"\n|&&|;", text) if re.search(r"\bpip\s+install\b", command)]


@pytest.mark.parametrize("path", ["deploy/local/install-python.sh", "Dockerfile"])
def test_installs_take_the_lock_with_its_hashes_and_the_project_without_dependencies(path):
    commands = install_commands(ROOT / path)
    assert commands
    assert any(re.search(r"--require-hashes\s+-r\s+\S*requirements\.lock\b", c) for c in commands), commands
    # Anything else installed is the project itself, with nothing resolved beside it.
    for command in commands:
        if "requirements.lock" not in command:
            assert "--no-deps" in command and "--no-build-isolation" in command, command
