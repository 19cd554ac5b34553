"""The figures of every dossier the metrics service has seen, in memory, from their timelines.

Pure: no I/O. The service feeds it the timelines of processing's status events (from MongoDB at
start, then from `dossier-status`); every replica fed the same timelines holds the same figures.

- Prometheus (docs/contract.md §4): counts as of now, kept up to date on each change, so a snapshot is a
  copy of a dict; the open dossiers' counts by state move with time through `tick`.
- Reports (docs/contract.md §5): each dossier's Facts as of any instant come from its timeline, and
  shared.report turns them into the indicators; nothing is recomputed a second way.
- The clock (`tick`): a heap of the instants at which an open dossier turns due soon or overdue,
  so a tick costs what moves, not a scan of every open dossier.
"""

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.calendar import WorkingCalendar
from shared.communes import Commune
from shared.contracts import DossierInfo, SignatureData, Status
from shared.dossier import Facts, OpenState, Timeline, facts_as_of, open_state_changes
from shared.report import commune_report, rank, score

# What is counted, with what tells its counts apart after the commune and the sector.
FIGURES: dict[str, tuple[str, ...]] = {
    "received": ("channel", "online_level"),
    "completed": ("timeliness",),
    "withdrawn": (),
    "open": ("state",),
    "payments": ("method",),
    "digitized": (),
    "ratings": ("rating",),
    "apologies": ("compliant",),
    "signatures": ("verdict",),  # results whose signature was verified, under their latest verdict
}

Key = tuple[str, ...]  # figure, commune, sector, then the figure's own labels


@dataclass(frozen=True, slots=True)
class Counted:
    """A dossier as processing last announced it: what the figures take."""

    code: str
    procedure_code: str
    events: int  # events folded into `timeline`: an announcement with fewer is older
    timeline: Timeline
    appointment_at: datetime | None


@dataclass(slots=True)
class Tracked:
    """One dossier as the metrics service keeps it."""

    code: str
    procedure_code: str
    events: int  # events folded into `timeline`: a status event with fewer is older
    timeline: Timeline
    appointment_at: datetime | None
    open_counted: OpenState | None = None  # what `dossier_open` counts it as now
    announced_until: datetime | None = None  # the clock's changes up to here are announced

    @property
    def now(self) -> Facts:
        return self.timeline[-1]


@dataclass(frozen=True)
class Transition:
    """Time alone moved an open dossier: what the clock announces."""

    dossier: Tracked
    at: datetime
    old: OpenState
    new: OpenState

    def status(self, open_state: OpenState) -> Status:
        facts = self.dossier.now
        return Status(state=facts.state, due_at=facts.due_at, timeliness=facts.timeliness,
                      appointment_at=self.dossier.appointment_at, open_state=open_state)

    def info(self) -> DossierInfo:
        facts = self.dossier.now
        return DossierInfo(dossier_code=self.dossier.code, commune_code=facts.commune_code, sector=facts.sector,
                           procedure_code=self.dossier.procedure_code, channel=facts.channel,
                           online_level=facts.online_level, received_at=facts.received_at)


class Figures:
    def __init__(self, calendar: WorkingCalendar):
        self.calendar = calendar
        self.dossiers: dict[str, Tracked] = {}
        self._by_commune: dict[str, list[Tracked]] = {}
        self.counts: Counter[Key] = Counter()
        self._clock: list[tuple[datetime, str]] = []  # (instant the open state may change, code)
        self._signatures: dict[tuple[str, str], dict[str, Any]] = {}  # (dossier, document) -> latest verdict

    # -- feeding -----------------------------------------------------------------------------

    def is_newer(self, code: str, events: int) -> bool:
        """Whether an announcement of a dossier with this many events is newer than what is counted."""
        tracked = self.dossiers.get(code)
        return tracked is None or events > tracked.events

    def apply(self, counted: Counted, now: datetime) -> bool:
        """Take what processing announced of a dossier; False if an announcement with as many events
        was seen."""
        tracked = self.dossiers.get(counted.code)
        if tracked is not None and counted.events <= tracked.events:
            return False
        if tracked is None:
            tracked = Tracked(counted.code, counted.procedure_code, counted.events, counted.timeline,
                              counted.appointment_at)
            self.dossiers[counted.code] = tracked
            self._by_commune.setdefault(counted.timeline[0].commune_code, []).append(tracked)
        else:
            self._count(tracked, -1)
            tracked.events, tracked.timeline = counted.events, counted.timeline
            tracked.appointment_at, tracked.announced_until = counted.appointment_at, None
        self._count(tracked, +1)
        self._recount_open(tracked, now)
        self._schedule(tracked)
        return True

    def apply_signature(self, verified: SignatureData, at: datetime) -> bool:
        """A `dossier.signature_verified`: each document counts once, under its latest verdict."""
        if not verified.commune_code:
            return False  # the signature service had not seen the dossier's receipt
        key = (verified.dossier_code, verified.document_id)
        before = self._signatures.get(key)
        if before is not None and before["at"] >= at:
            return False
        if before is not None:
            self.counts["signatures", before["commune_code"], before["sector"], before["verdict"]] -= 1
        self._signatures[key] = {"at": at, "commune_code": verified.commune_code,
                                 "sector": verified.sector or "none", "verdict": verified.verdict}
        self.counts["signatures", verified.commune_code, verified.sector or "none", verified.verdict] += 1
        return True

    def _count(self, tracked: Tracked, sign: int) -> None:
        f = tracked.now
        where = (f.commune_code, f.sector)
        self.counts["received", *where, f.channel, f.online_level or "none"] += sign
        if f.timeliness:
            self.counts["completed", *where, f.timeliness] += sign
        if f.state == "withdrawn":
            self.counts["withdrawn", *where] += sign
        if f.payment_method:
            self.counts["payments", *where, f.payment_method] += sign
        if f.digitized:
            self.counts["digitized", *where] += sign
        if f.rating:
            self.counts["ratings", *where, f.rating] += sign
        self.counts["apologies", *where, "true"] += sign * f.apologies_compliant
        self.counts["apologies", *where, "false"] += sign * f.apologies_non_compliant

    def _recount_open(self, tracked: Tracked, now: datetime) -> OpenState | None:
        """Count the dossier under its open state at `now`; returns the state it was counted under."""
        before = tracked.open_counted
        f = tracked.now
        tracked.open_counted = f.open_state(now, self.calendar)
        if before != tracked.open_counted:
            if before:
                self.counts["open", f.commune_code, f.sector, before] -= 1
            if tracked.open_counted:
                self.counts["open", f.commune_code, f.sector, tracked.open_counted] += 1
        return before

    def _schedule(self, tracked: Tracked) -> None:
        for at, _ in self._changes(tracked):
            heapq.heappush(self._clock, (at, tracked.code))
            return

    def _changes(self, tracked: Tracked) -> list[tuple[datetime, OpenState]]:
        """The open-state changes time alone brings after the dossier's last change of facts."""
        f = tracked.now
        return [(at, to) for at, to in open_state_changes(f.state, f.due_at, self.calendar) if at > f.since]

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Transition]:
        """Move the open dossiers whose open state changed by `now` and return the changes, in time
        order. After a restart, every change since the dossier's last change of facts is returned
        again (also those missed while stopped): the caller skips those it already announced."""
        moved = []
        while self._clock and self._clock[0][0] <= now:
            _, code = heapq.heappop(self._clock)
            tracked = self.dossiers[code]
            changes = self._changes(tracked)
            if not changes or changes[0][0] > now:
                continue  # the dossier changed since it was scheduled; its new instant is queued
            previous = tracked.now.open_state(tracked.now.since, self.calendar)
            for at, to in changes:
                if at > now:
                    heapq.heappush(self._clock, (at, code))
                    break
                if previous != to and (tracked.announced_until is None or at > tracked.announced_until):
                    moved.append(Transition(tracked, at, previous, to))
                previous = to
            tracked.announced_until = now
            self._recount_open(tracked, now)
        return sorted(moved, key=lambda t: t.at)

    # -- reports ---------------------------------------------------------------------------------

    def as_of(self, commune_code: str, start: date, end: date, as_of: datetime) -> Iterable[Facts]:
        """The Facts in force at `as_of` of the dossiers of a commune received in [start, end]."""
        for tracked in self._by_commune.get(commune_code, ()):
            received = tracked.timeline[0]
            if start <= received.received_date <= end and received.received_at <= as_of:
                facts = facts_as_of(tracked.timeline, as_of)
                if facts is not None:
                    yield facts

    def report(self, commune_code: str, start: date, end: date, as_of: datetime) -> dict[str, Any]:
        return commune_report(self.as_of(commune_code, start, end, as_of), start, end, as_of, self.calendar)

    def scorecard(self, province: list[Commune], start: date, end: date, as_of: datetime) -> list[dict[str, Any]]:
        """The province's communes ranked by the QĐ 766 approximation (docs/domain.md §6)."""
        reports = {c.code: self.report(c.code, start, end, as_of) for c in province}
        ranked = rank({code: score(report) for code, report in reports.items()})
        names = {c.code: c.name for c in province}
        return [{**card, "name": names[card["commune_code"]], "received": reports[card["commune_code"]]["received"],
                 "rates": reports[card["commune_code"]]["rates"]} for card in ranked]

    def communes(self) -> list[str]:
        return sorted(self._by_commune)
