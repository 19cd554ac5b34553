"""The metrics service's settings (`DOSSIER_*`, docs/contract.md §3): the shared ones and its own."""

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, IPvAnyNetwork, SecretStr
from pydantic_settings import NoDecode

from shared.auth import ApiKey
from shared.catalogue import DEFAULT_CATALOGUE
from shared.settings import ServiceSettings


def _codes(value: Any) -> Any:
    """Province codes as a JSON list (what the Kubernetes chart writes) or comma-separated: `38,25`."""
    if isinstance(value, str) and not value.lstrip().startswith("["):
        return [code.strip() for code in value.split(",") if code.strip()]
    if isinstance(value, str):
        return json.loads(value)
    return value


class MetricsSettings(ServiceSettings):
    metrics_port: int = 8003
    # Every replica reads every status event (its figures are whole), so each needs its own group.
    metrics_group_id: str = "metrics"
    # The replica's name (a StatefulSet's pod name): each replica keeps its own store in MongoDB
    # (collections prefixed with it), so that two replicas of the same provinces never write the
    # same documents. Empty: the one replica, collections `metrics_*`.
    metrics_replica: str = ""
    # The provinces this replica owns (2-digit codes): it keeps, counts, exports and reports only their
    # dossiers, and answers 421 for the others. Empty: every province.
    metrics_provinces: Annotated[list[str], NoDecode, BeforeValidator(_codes)] = []
    # Who owns which province ({"38": "http://metrics-north:8003"}), named in a 421.
    metrics_owners: dict[str, str] = {}
    # Dossiers that ended before the first day of the quarter this many quarters before the current one
    # leave memory for the archive in MongoDB (docs/domain.md §5); reports reaching before it read it.
    metrics_horizon_quarters: int = 8
    metrics_compact_interval_seconds: float = 3600  # how often ended dossiers are moved out
    metrics_max_batch: int = 1000
    # Off for national-scale deployments: 3,321 communes x sectors is too many series.
    metrics_sector_label: bool = True
    # QĐ 766 sub-indicators not scored for a commune (reported, left out of its score): the national
    # portal scores end-to-end online and population data for provinces only (docs/domain.md §6).
    metrics_not_applicable: list[str] = ["end_to_end_online", "population_data"]
    # The procedure catalogue (docs/domain.md §6), read again when the file changes.
    metrics_catalogue_file: Path = DEFAULT_CATALOGUE
    metrics_at_risk_interval_seconds: float = 60  # how often the points-at-risk gauge is computed
    # How often the Prometheus snapshot is rendered, and how often the clock moves open dossiers.
    metrics_snapshot_interval_seconds: float = 5
    metrics_clock_interval_seconds: float = 10
    # Operators' keys for the report API and the page: hashes only, scoped to provinces (optionally
    # communes) like intake's (docs/security.md).
    metrics_operator_keys: list[ApiKey] = []
    metrics_operator_keys_file: Path | None = None
    # Signs the page's session cookies: every replica the same.
    metrics_session_secret: SecretStr = SecretStr("")
    # Prometheus' token for /metrics/dossiers, the urgent dossiers' codes the officers' alerts text.
    metrics_scrape_token: SecretStr = SecretStr("")
    # Authenticating proxies (oauth2-proxy) whose X-Auth-Request-User / X-Forwarded-User is believed.
    metrics_trusted_proxies: list[IPvAnyNetwork] = []
    # The metrics service's own address, for `python -m services.metrics report`.
    metrics_url: str = "http://127.0.0.1:8003"

    def secrets_needed(self) -> list[str]:
        return ["metrics_session_secret", "metrics_scrape_token"]  # empty, anyone could sign or scrape
