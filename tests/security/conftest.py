"""The security findings (docs/security.md), each reproduced as a test: the integration tests' stack and
fixtures (tests/integration/conftest.py), for the findings that need the real services."""

from tests.integration.conftest import (  # noqa: F401 (fixtures)
    clock,
    fixed_port_intake,
    intake,
    pipeline,
    settings,
    stack,
)
