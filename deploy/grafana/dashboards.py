"""Grafana dashboards as code: `python deploy/grafana/dashboards.py` writes deploy/grafana/dashboards/*.json.

The boards below (`BOARDS`: each panel's title, description, kind and PromQL) are the one source of
the Grafana dashboards and of Prometheus' console pages (deploy/prometheus/consoles.py), so that the
two never disagree. Titles are Vietnamese, descriptions English. Every panel's PromQL is run against
the real Prometheus by tests/integration/test_dashboards.py; tests/unit/test_dashboards.py checks that
the committed JSON is what this file generates.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}

# Replicas of the metrics service export the same figures (docs/contract.md §4): every query takes
# one copy of each series before it sums, so N replicas give the numbers of one.
REPLICA_LABELS = "instance, pod, replica"


def figure(selector: str) -> str:
    """A business metric's series, one per dossier figure whatever the number of replicas."""
    return f"max without ({REPLICA_LABELS}) ({selector})"


def total(selector: str, by: str = "") -> str:
    return f"sum{f' by ({by}) ' if by else ''}({figure(selector)})"


def on_time(by: str = "", commune: str | None = None) -> str:
    """766 tiến độ (docs/domain.md §5): early + on time + open in time, over those whose clock runs;
    `or … * 0` keeps a commune that has no series of a kind."""
    where = f'commune="{commune}"' if commune else ""

    def metric(name: str, condition: str = "") -> str:
        labels = ", ".join(c for c in (condition, where) if c)
        return total(f"{name}{{{labels}}}" if labels else name, by)

    zero = f"{metric('dossier_received_total')} * 0"
    in_time = metric("dossier_completed", 'timeliness=~"early|on_time"')
    open_in_time = metric("dossier_open", 'state=~"within_deadline|due_soon"')
    stopped = metric("dossier_open", 'state=~"awaiting_supplement|paused"')
    return (f"(\n  {in_time}\n  + ({open_in_time} or {zero})\n) / (\n  {metric('dossier_received_total')}\n"
            f"  - ({metric('dossier_withdrawn')} or {zero})\n  - ({stopped} or {zero})\n)")


def ratio(numerator: str, denominator: str) -> str:
    return f"{total(numerator)} / {total(denominator)}"


@dataclass(frozen=True)
class Panel:
    """What a panel shows, whatever draws it."""

    title: str
    description: str
    kind: str  # Grafana's panel type: stat, timeseries, bargauge, piechart, table
    targets: list[tuple[str, str]]  # (PromQL, legend with {{label}}); `$commune`, `$__rate_interval` as Grafana's
    w: int = 6
    h: int = 6
    unit: str | None = None  # Grafana's: percentunit, s
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def instant(self) -> bool:
        """Whether the panel shows values as of now rather than over time."""
        return self.kind in ("stat", "bargauge", "table", "piechart")


def panel(title: str, description: str, kind: str, targets: list[tuple[str, str]], w: int = 6, h: int = 6,
          unit: str | None = None, **options: Any) -> Panel:
    return Panel(title, description, kind, targets, w, h, unit, options)


@dataclass(frozen=True)
class Board:
    uid: str
    title: str
    description: str
    panels: list[Panel]
    variables: list[dict[str, Any]] = field(default_factory=list)


def grafana_panel(p: Panel, n: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if p.unit:
        defaults["unit"] = p.unit
    if p.unit == "percentunit":
        defaults |= {"min": 0, "max": 1, "decimals": 2}
    return {
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": p.w, "h": p.h},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
             "instant": p.instant}
            for i, (expr, legend) in enumerate(p.targets)
        ],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": p.options,
        "id": n,
    }


def grafana(board: Board) -> dict[str, Any]:
    """The board as a Grafana dashboard, panels placed left to right in rows of 24 columns."""
    x = y = row_h = 0
    panels = []
    for n, p in enumerate(board.panels, start=1):
        if x + p.w > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(grafana_panel(p, n, x, y))
        x, row_h = x + p.w, max(row_h, p.h)
    return {
        "uid": board.uid,
        "title": board.title,
        "description": board.description,
        "tags": ["dossier", "một cửa"],
        "timezone": "Asia/Ho_Chi_Minh",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": list(board.variables)},
        "panels": panels,
    }


COMMUNE_VARIABLE = {
    "name": "commune",
    "label": "Xã / phường",
    "description": "Commune-level unit (5-digit code)",
    "type": "query",
    "datasource": DATASOURCE,
    "query": {"query": "label_values(dossier_commune_info, commune)", "refId": "commune"},
    "definition": "label_values(dossier_commune_info, commune)",
    "refresh": 2,
    "sort": 1,
}
NAMED = f"* on (commune) group_left (name) {figure('dossier_commune_info')}"
OVERDUE_BY_COMMUNE = total('dossier_open{state="overdue"}', "commune")


def overview() -> Board:
    return Board("dossier-overview", "Tổng quan hồ sơ thủ tục hành chính",
                 "Operators' overview of every commune: timeliness, overdue dossiers, channels and the "
                 "QĐ 766 rates, from the metrics service (docs/contract.md §4).", [
        panel("Tỷ lệ giải quyết đúng hạn", "766 on-time rate over every dossier received (docs/domain.md §5)", "stat",
              [(on_time(), "đúng hạn")], unit="percentunit"),
        panel("Hồ sơ quá hạn", "Open dossiers past their due date now", "stat",
              [(total('dossier_open{state="overdue"}'), "quá hạn")]),
        panel("Hồ sơ sắp đến hạn", "Open dossiers due within 24 hours", "stat",
              [(total('dossier_open{state="due_soon"}'), "sắp đến hạn")]),
        panel("Hồ sơ đang giải quyết", "Open dossiers by open state", "piechart",
              [(total("dossier_open", "state"), "{{state}}")]),
        panel("Tiếp nhận theo kênh", "Dossiers received by channel: direct, online, postal", "piechart",
              [(total("dossier_received_total", "channel"), "{{channel}}")]),
        panel("Tỷ lệ hồ sơ trực tuyến", "Online dossiers over all received", "stat",
              [(ratio('dossier_received_total{channel="online"}', "dossier_received_total"), "trực tuyến")],
              unit="percentunit"),
        panel("Tỷ lệ trực tuyến toàn trình", "End-to-end online dossiers over all received", "stat",
              [(ratio('dossier_received_total{channel="online",online_level="full"}', "dossier_received_total"),
                "toàn trình")], unit="percentunit"),
        panel("Tỷ lệ thanh toán trực tuyến", "Dossiers paid online over dossiers with a payment", "stat",
              [(ratio('dossier_payments{method="online"}', "dossier_payments"), "thanh toán")],
              unit="percentunit"),
        panel("Tỷ lệ số hóa", "Dossiers with a digitization over all received", "stat",
              [(ratio("dossier_digitized_total", "dossier_received_total"), "số hóa")], unit="percentunit"),
        panel("Mức độ hài lòng", "Very satisfied or satisfied over all ratings", "stat",
              [(ratio('dossier_ratings{rating=~"very_satisfied|satisfied"}', "dossier_ratings"),
                "hài lòng")], unit="percentunit"),
        panel("Kết quả có chữ ký số hợp lệ", "Results whose digital signature verified valid, over all verified",
              "stat", [(ratio('dossier_signatures{verdict="valid"}', "dossier_signatures"), "ký số")],
              unit="percentunit"),
        panel("Hồ sơ quá hạn theo xã", "Overdue dossiers now, by commune", "bargauge",
              [(f"{OVERDUE_BY_COMMUNE} {NAMED}", "{{name}}")], w=12, h=8,
              orientation="horizontal"),
        panel("10 xã nhiều hồ sơ quá hạn nhất", "The ten communes with the most overdue dossiers", "table",
              [(f"topk(10, {OVERDUE_BY_COMMUNE} {NAMED})", "{{name}}")], w=12, h=8),
        panel("Tỷ lệ đúng hạn theo xã", "766 on-time rate by commune (recording rule)", "bargauge",
              [(f"commune:dossier_on_time:ratio {NAMED}", "{{name}}")], w=24, h=8, unit="percentunit",
              orientation="horizontal"),
        panel("Điểm có nguy cơ mất theo xã", "QĐ 766 points each commune would lose this quarter if its open "
              "dossiers due by the quarter's end turned late (docs/domain.md §6)", "bargauge",
              [(f"topk(10, {figure('dossier_points_at_risk')} {NAMED})", "{{name}}")], w=24, h=8,
              orientation="horizontal"),
        panel("Hồ sơ tiếp nhận", "Dossiers received per interval, by channel", "timeseries",
              [(total("increase(dossier_received_total[$__rate_interval])", "channel"), "{{channel}}")], w=24),
    ])


def commune() -> Board:
    c = 'commune="$commune"'
    return Board("dossier-commune", "Chi tiết theo xã",
                 "One commune's figures: choose it above (5-digit code).", [
        panel("Tỷ lệ giải quyết đúng hạn", "766 on-time rate of the commune", "stat",
              [(on_time(commune="$commune"), "đúng hạn")], unit="percentunit"),
        panel("Tiếp nhận", "Dossiers received", "stat", [(total(f"dossier_received_total{{{c}}}"), "tiếp nhận")]),
        panel("Quá hạn", "Open dossiers past their due date", "stat",
              [(total(f'dossier_open{{{c}, state="overdue"}}'), "quá hạn")]),
        panel("Sắp đến hạn", "Open dossiers due within 24 hours", "stat",
              [(total(f'dossier_open{{{c}, state="due_soon"}}'), "sắp đến hạn")]),
        panel("Đang giải quyết theo trạng thái", "Open dossiers by open state", "bargauge",
              [(total(f"dossier_open{{{c}}}", "state"), "{{state}}")], w=8),
        panel("Đã giải quyết", "Ended dossiers by timeliness: early, on time, late", "bargauge",
              [(total(f"dossier_completed{{{c}}}", "timeliness"), "{{timeliness}}")], w=8),
        panel("Tiếp nhận theo kênh", "Received by channel and online level", "bargauge",
              [(total(f"dossier_received_total{{{c}}}", "channel, online_level"), "{{channel}} {{online_level}}")],
              w=8),
        panel("Theo lĩnh vực", "Received by sector (lĩnh vực)", "table",
              [(total(f"dossier_received_total{{{c}}}", "sector"), "{{sector}}")], w=8, h=8),
        panel("Thanh toán", "Dossiers with a payment, by method", "piechart",
              [(total(f"dossier_payments{{{c}}}", "method"), "{{method}}")], w=8, h=8),
        panel("Đánh giá", "Citizens' ratings", "piechart",
              [(total(f"dossier_ratings{{{c}}}", "rating"), "{{rating}}")], w=8, h=8),
        panel("Phiếu xin lỗi", "Apologies, compliant or not", "bargauge",
              [(total(f"dossier_apologies{{{c}}}", "compliant"), "đúng quy định: {{compliant}}")], w=12),
        panel("Số hóa", "Dossiers with a digitization over all received", "stat",
              [(ratio(f"dossier_digitized_total{{{c}}}", f"dossier_received_total{{{c}}}"), "số hóa")], w=12,
              unit="percentunit"),
    ], variables=[COMMUNE_VARIABLE])


def pipeline() -> Board:
    return Board("dossier-pipeline", "Sức khỏe hệ thống",
                 "The pipeline that produces the figures: services up, consumer lag, dead letters, intake "
                 "answers, the age of the metrics snapshot, SMS by status.", [
        panel("Dịch vụ hoạt động", "1 when Prometheus scraped the service last time", "stat",
              [('up{job="dossier"}', "{{service}}")], w=8),
        panel("Độ trễ tiêu thụ Kafka", "Records waiting in Kafka for processing and metrics", "timeseries",
              [(f"sum({name}_consumer_lag)", name) for name in ("processing", "metrics", "notifications", "signature")],
              w=8),
        panel("Tuổi số liệu báo cáo", "Age of the figures the metrics service serves (s)", "stat",
              [("max(metrics_snapshot_age_seconds)", "giây")], w=8, unit="s"),
        panel("Sự kiện theo kết quả xử lý", "Events consumed by processing, by outcome, per interval", "timeseries",
              [("sum by (outcome) (increase(processing_events_total[$__rate_interval]))", "{{outcome}}")], w=12),
        panel("Hàng lỗi (DLQ)", "Records in the dead-letter topics: events the fold rejects (dossier-events.dlq) "
              "and what a consumer group could not handle (<topic>.dlq.<group>), in total", "stat",
              [('sum(processing_events_total{outcome="dead_lettered"}) + (sum(dead_letters_total) or vector(0))',
                "DLQ")], w=6),
        panel("Sự kiện trạng thái", "Status events consumed by metrics, by outcome", "bargauge",
              [("sum by (outcome) (metrics_status_events_total)", "{{outcome}}")], w=6),
        panel("Tiếp nhận: mã trả lời", "Answers of POST /v1/events by HTTP status, per interval", "timeseries",
              [("sum by (status) (increase(intake_requests_total[$__rate_interval]))", "{{status}}")], w=12),
        panel("Tiếp nhận: lỗi", "Refused requests (4xx, 5xx) in total, by status", "bargauge",
              [('sum by (status) (intake_requests_total{status!="202"})', "{{status}}")], w=12),
        panel("Độ trễ xử lý (p99)", "99th percentile from arrival in Kafka to state written", "timeseries",
              [("histogram_quantile(0.99, sum by (le) (rate(processing_apply_latency_seconds_bucket"
                "[$__rate_interval])))", "p99")], w=12, unit="s"),
        panel("Kafka sẵn sàng cho tiếp nhận", "1 while Kafka confirms intake's publishes", "stat",
              [("min(intake_kafka_available)", "kafka")], w=12),
        panel("Tin nhắn SMS theo trạng thái", "SMS messages by status reached (created, sent, delivered, failed, "
              "expired, opted_out, invalid_recipient)", "bargauge",
              [("sum by (status) (notifications_messages_total)", "{{status}}")], w=12),
        panel("Tuổi hàng đợi SMS", "Age of the oldest SMS not sent yet (quiet hours, gateway down)", "stat",
              [("max(notifications_queue_age_seconds)", "giây")], w=12, unit="s"),
    ])


BOARDS = {"overview": overview, "commune": commune, "pipeline": pipeline}
DASHBOARDS = {name: lambda make=make: grafana(make()) for name, make in BOARDS.items()}


def rendered() -> dict[str, str]:
    return {f"{name}.json": json.dumps(make(), ensure_ascii=False, indent=2) + "\n" for name, make in
            DASHBOARDS.items()}


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
