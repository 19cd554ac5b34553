from shared.settings import ServiceSettings


class MetricsSettings(ServiceSettings):
    metrics_port: int = 8003
    # Every replica reads every status event (its figures are whole), so each needs its own group.
    metrics_group_id: str = "metrics"
    metrics_max_batch: int = 1000
    # Off for national-scale deployments: 3,321 communes x sectors is too many series.
    metrics_sector_label: bool = True
    # QĐ 766 sub-indicators not scored for a commune (reported, left out of its score): the national
    # portal scores end-to-end online for provinces only (docs/domain.md §6).
    metrics_not_applicable: list[str] = ["end_to_end_online"]
    metrics_at_risk_interval_seconds: float = 60  # how often the points-at-risk gauge is computed
    # How often the Prometheus snapshot is rendered, and how often the clock moves open dossiers.
    metrics_snapshot_interval_seconds: float = 5
    metrics_clock_interval_seconds: float = 10
    # The metrics service's own address, for `python -m services.metrics report`.
    metrics_url: str = "http://127.0.0.1:8003"
