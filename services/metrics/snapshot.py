"""What /metrics serves of the business figures: a snapshot rendered off the event loop every few
seconds, the urgent dossiers' codes (for Prometheus' scrape token only), and the points each commune
is about to lose this quarter (the `dossier_points_at_risk` gauge)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime

from services.metrics.exposition import render, render_urgent
from services.metrics.figures import Figures
from services.metrics.settings import MetricsSettings
from shared.calendar import quarter_of


# The figures a report of these communes' dossiers received in [start, end] reads (MetricsCore.figures_for).
Reading = Callable[[list[str], date, date], Awaitable[Figures]]


class Snapshot:
    def __init__(self, settings: MetricsSettings, figures: Figures, clock: Callable[[], datetime], reading: Reading):
        self.settings = settings
        self.figures = figures
        self.clock = clock
        # The current quarter is read as a report reads it: from memory, and from the archive too when the store's
        # horizon is later than the quarter (services/metrics/compaction.py: a horizon never goes back).
        self.reading = reading
        self.text = b""  # the business metrics, Prometheus' text format
        self.urgent = b""  # the urgent dossiers' codes
        self.at_risk: dict[str, float] = {}  # commune -> points at risk in the current quarter
        self.rendered_at: float | None = None  # monotonic
        self.render_seconds = 0.0

    async def refresh(self) -> None:
        """Render the business metrics off the event loop, from a copy of the counts."""
        started = time.perf_counter()
        counts = self.figures.counts.copy()
        self.text = await asyncio.to_thread(render, counts, self.settings.metrics_sector_label, dict(self.at_risk))
        self.urgent = await asyncio.to_thread(render_urgent, counts)
        self.rendered_at = time.monotonic()
        self.render_seconds = time.perf_counter() - started

    async def refresh_at_risk(self) -> datetime:
        """The points each commune is about to lose in the current quarter: its score if every open
        dossier ends in time, minus its score if those due by the quarter's end turn late; returns the instant they
        were worked out as of."""
        now = self.clock()
        calendar = self.figures.calendar
        first, last = quarter_of(calendar.local(now).date())
        horizon = calendar.end_of_day(last)
        not_applicable = frozenset(self.settings.metrics_not_applicable)
        found = {}
        for code in self.figures.communes():
            figures = await self.reading([code], first, last)
            found[code] = figures.at_risk(code, first, last, now, horizon, not_applicable)["points_at_risk"]
            await asyncio.sleep(0)  # a province's communes, one at a time: the consumer goes on meanwhile
        self.at_risk = found
        return now

    def age(self) -> float:
        return time.monotonic() - self.rendered_at if self.rendered_at is not None else float("inf")
