"""Prometheus helpers shared by the services."""

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, disable_created_metrics, generate_latest

# `_created` series double every counter's output and no dashboard reads them.
disable_created_metrics()


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
