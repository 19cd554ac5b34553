"""The business metrics of docs/contract.md §4 as Prometheus text, rendered from a copy of the counts.

Rendering ~100,000 series takes a while, so the service renders in the background and a scrape
serves the last rendering (its age is the gauge `metrics_snapshot_age_seconds`).

Only what never decreases is a counter (`_total`): a dossier once received stays received, once
digitized stays digitized. Every other figure can go down when a late event re-judges a dossier
(an obligation arriving late turns `early` into `late`), so it is a gauge (contract v1.1).
"""

import heapq
from collections import Counter
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.metrics.figures import FIGURES, Key
from shared.communes import commune

# figure -> (metric name, help); names ending in _total are counters.
METRICS = {
    "received": ("dossier_received_total", "Dossiers received (tiếp nhận), by channel and online level"),
    "completed": ("dossier_completed", "Dossiers ended, by timeliness against the due in force (docs/domain.md §4)"),
    "withdrawn": ("dossier_withdrawn", "Dossiers withdrawn by the citizen (rút hồ sơ)"),
    "open": ("dossier_open", "Dossiers open now, by open state (docs/domain.md §4)"),
    "payments": ("dossier_payments", "Dossiers with a payment, online if any payment was online"),
    "digitized": ("dossier_digitized_total", "Dossiers with at least one digitization (số hóa)"),
    "ratings": ("dossier_ratings", "Dossiers rated by the citizen, by their latest rating"),
    "apologies": ("dossier_apologies", "Apologies issued (phiếu xin lỗi), compliant or not"),
    "signatures": ("dossier_signatures", "Results whose digital signature (ký số) was verified, by latest verdict"),
}


class _Families(Collector):
    def __init__(self, families: list[Metric]):
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def families(counts: Counter[Key], sector_label: bool = True) -> list[Metric]:
    """One family per business metric; without the sector label, sectors are summed."""
    merged: dict[str, Counter[tuple[str, ...]]] = {figure: Counter() for figure in FIGURES}
    for (figure, commune_code, sector, *rest), value in counts.items():
        if figure == "urgent":
            continue  # dossiers, not counts: see `urgent`
        labels = (commune_code, sector, *rest) if sector_label else (commune_code, *rest)
        merged[figure][labels] += value
    out: list[Metric] = []
    for figure, own in FIGURES.items():
        label_names = ["commune", "sector", *own] if sector_label else ["commune", *own]
        name, description = METRICS[figure]
        if name.endswith("_total"):
            family = CounterMetricFamily(name.removesuffix("_total"), description, labels=label_names)
        else:
            family = GaugeMetricFamily(name, description, labels=label_names)
        for labels, value in sorted(merged[figure].items()):
            # A series once seen stays, at 0 if need be: a counter that disappears looks like a reset.
            family.add_metric(list(labels), value)
        out.append(family)
    info = GaugeMetricFamily("dossier_commune_info", "The commune's name and province (value 1)",
                             labels=["commune", "name", "province"])
    for code in sorted({key[1] for key in counts}):
        unit = commune(code)
        if unit is not None:
            info.add_metric([code, unit.name, unit.province_code], 1)
    out.append(info)
    return out


def urgent(counts: Counter[Key], top: int = 5) -> Metric:
    """The `top` overdue and the `top` due-soon open dossiers of each commune whose due came or comes
    first, valued at their due: the codes the officers' alerts give (docs/alerts.md). At most 2 × `top`
    series a commune, whatever its backlog. A code opens a citizen's lookup with 4 digits: these are
    served apart from /metrics, to Prometheus' scrape token only (`render_urgent`, docs/security.md)."""
    found: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for key, due in counts.items():
        if key[0] == "urgent":
            _, commune_code, _, state, code = key
            found.setdefault((commune_code, state), []).append((due, code))
    family = GaugeMetricFamily("dossier_urgent_due_timestamp_seconds",
                               "Due (Unix time) of the first overdue and due-soon open dossiers of each commune",
                               labels=["commune", "state", "dossier"])
    for (commune_code, state), dossiers in sorted(found.items()):
        for due, code in heapq.nsmallest(top, dossiers):
            family.add_metric([commune_code, state, code], due)
    return family


def render(counts: Counter[Key], sector_label: bool = True, at_risk: dict[str, float] | None = None) -> bytes:
    """The figures /metrics serves: counts, no dossier code."""
    risk = GaugeMetricFamily("dossier_points_at_risk", "QĐ 766 points a commune would lose in the current quarter "
                             "if its open dossiers due by its end turned late (docs/domain.md §6)", labels=["commune"])
    for code, value in sorted((at_risk or {}).items()):
        risk.add_metric([code], value)
    return _exposed([*families(counts, sector_label), risk])


def render_urgent(counts: Counter[Key]) -> bytes:
    """The urgent dossiers' codes, for the authenticated scrape (/metrics/dossiers)."""
    return _exposed([urgent(counts)])


def _exposed(metrics: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(metrics))
    return generate_latest(registry)
