"""The fault suite runs on the integration tests' stack and fixtures."""

from tests.integration.conftest import clock, pipeline, stack  # noqa: F401  (fixtures)
