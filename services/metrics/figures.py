"""The figures of every dossier the metrics service has seen, in memory, from their timelines.

Pure: no I/O. The service feeds it the timelines of processing's status events (from MongoDB at
start, then from `dossier-status`); every replica fed the same timelines holds the same figures.

- Prometheus (docs/contract.md §4): counts as of now, kept up to date on each change, so a snapshot is a
  copy of a dict; the open dossiers' counts by state move with time through `tick`.
- Reports (docs/contract.md §5): each dossier's Facts as of any instant come from its timeline, and
  shared.report turns them into the indicators; nothing is recomputed a second way. The queries are
  services/metrics/queries.py's (`ReportQueries`, which `Figures` extends).
- The clock (`tick`): a heap of the instants at which an open dossier turns due soon or overdue,
  so a tick costs what moves, not a scan of every open dossier.
- Urgent dossiers: `counts` also holds each overdue or due-soon dossier under `("urgent", commune,
  sector, state, code)` with its due (Unix seconds) as the value, kept as its open state changes: a
  snapshot's copy of the counts then has what `dossier_urgent_due_timestamp_seconds` names.
"""

import heapq
from sys import intern
from collections import ChainMap, Counter
from collections.abc import Callable, Collection, Iterable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import AliasChoices, AliasPath, AwareDatetime, Field

from services.metrics import compact
from services.metrics.feedback import FeedbackBook
from services.metrics.queries import ReportQueries
from shared.calendar import WorkingCalendar
from shared.catalogue import DEFAULT_CATALOGUE, Catalogue, load_catalogue
from shared.contracts import FeedbackData, SignatureData, Status, StatusData, received_of
from shared.facts import OPEN, Facts, OpenState, Received, Timeline, facts_as_of, open_state_changes
from shared.instants import shared_zone
from shared.reloading import Reloading

if TYPE_CHECKING:
    from services.metrics.settings import MetricsSettings

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
URGENT = ("overdue", "due_soon")  # open states whose dossiers the officers' alerts name (docs/alerts.md)


@dataclass(frozen=True, slots=True, kw_only=True)
class Counted(Received):
    """A dossier as processing last announced it: what the figures take, and what the store keeps
    (services/metrics/store.py, with shared.facts' codec)."""

    events: int  # events folded into `timeline`: an announcement with fewer is older
    timeline: Timeline
    # The last date told to the citizen; a store written before v1.2 keeps it as `new.appointment_at`.
    appointment_at: Annotated[AwareDatetime | None, Field(
        validation_alias=AliasChoices("appointment_at", AliasPath("new", "appointment_at")))]
    arrivals: int = 0  # events whose arrival at intake is known, and those in sync (§6)
    arrivals_synced: int = 0
    announced_until: AwareDatetime | None = None  # as stored with a carried dossier (services/metrics/store.py)

    @classmethod
    def of(cls, data: StatusData) -> "Counted":
        """What the figures take of processing's status record: its objects, as parsed."""
        return cls(**received_of(data), events=data.events, timeline=data.timeline,
                   appointment_at=data.new.appointment_at, arrivals=data.arrivals, arrivals_synced=data.arrivals_synced)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A result's latest signature verdict, as the figures count it."""

    dossier_code: str
    document_id: str
    at: datetime  # when the signature service gave it
    commune_code: str
    sector: str
    verdict: str
    signed_at: datetime  # from when a report counts it (docs/domain.md §6)


def verdict_of(verified: SignatureData, at: datetime) -> Verdict | None:
    """A `dossier.signature_verified` as the figures count it; None when the signature service had not
    seen the dossier's receipt (no commune to count it in)."""
    if not verified.commune_code:
        return None
    return Verdict(verified.dossier_code, verified.document_id, at, verified.commune_code, verified.sector or "none",
                   verified.verdict, verified.signed_at or at)


@dataclass(slots=True)
class Tracked:
    """One dossier as the metrics service keeps it: what was last announced, and what the clock did.

    Held by the hundred thousand (about 0.8 KiB each, docs/benchmarks.md): the announcement without its
    timeline (`receipt`), its last Facts (`now`), and the whole timeline packed (services/metrics/compact.py),
    unpacked when a report asks for the dossier as of an earlier instant."""

    receipt: Counted  # what processing last announced, its timeline left out (`timeline` has it)
    now: Facts  # the last Facts of its timeline: what it counts as now
    steps: bytes  # its whole timeline, packed
    received_date: date  # local date: the report cohort (docs/domain.md §5)
    open_counted: OpenState | None = None  # what `dossier_open` counts it as now
    announced_until: datetime | None = None  # the clock's changes up to here are announced
    # Its last change (its last Facts' `since`, its verdicts' instants) in Unix seconds (a float compares ten times
    # faster than an aware datetime), set when it is settled: ended, or open in the plain way `open_times` tells.
    # What it adds to its cohort's counts from then on, packed (services/metrics/scoring.py; for an open one, less
    # what moves with time), and with which catalogue: see ReportQueries.settle.
    quiet_since: float | None = field(default=None, compare=False)
    open_times: tuple[float, float, float] | None = field(default=None, compare=False)
    packed: int = field(default=0, compare=False)
    packed_with: Catalogue | None = field(default=None, compare=False)

    @classmethod
    def of(cls, announced: "Held", received_date: date) -> "Tracked":
        return cls(announced.receipt, announced.now, announced.steps, received_date,
                   announced_until=announced.announced_until)

    def take(self, announced: "Held") -> None:
        """A newer announcement of the dossier: what the clock announced starts over."""
        self.receipt, self.now, self.steps = announced.receipt, announced.now, announced.steps
        self.announced_until = None

    @property
    def code(self) -> str:
        return self.receipt.dossier_code

    @property
    def timeline(self) -> Timeline:
        return compact.unpack(self.steps)

    @property
    def counted(self) -> Counted:
        """The announcement whole, timeline included."""
        return replace(self.receipt, timeline=self.timeline)

    def facts_at(self, at: datetime) -> Facts | None:
        """Its Facts in force at instant `at` (None before its receipt); most reports need only `now`."""
        return self.now if self.now.since <= at else facts_as_of(self.timeline, at)


@dataclass(frozen=True, slots=True)
class Held:
    """An announcement as `Tracked` takes it: its receipt (`receipt_of`), its last Facts (`last_of`), its timeline
    packed and, when at hand, unpacked (a start reading the store leaves it packed), with how far the clock
    announced it (a dossier the store carried)."""

    receipt: Counted
    now: Facts
    steps: bytes
    timeline: Timeline | None = None
    announced_until: datetime | None = None


def held(counted: Counted) -> Held:
    """What `Tracked` keeps of an announcement as processing made it."""
    receipt = receipt_of(counted)
    return Held(receipt, last_of(counted.timeline, receipt), compact.pack(counted.timeline), counted.timeline,
                counted.announced_until)


def held_from(data: StatusData) -> Held:
    """`held(Counted.of(data))`, its receipt made once: processing's status record as `Tracked` takes it."""
    receipt = _receipt(data, data.events, data.new.appointment_at, data.arrivals, data.arrivals_synced)
    return Held(receipt, last_of(data.timeline, receipt), compact.pack(data.timeline), data.timeline)


def receipt_of(counted: Counted) -> Counted:
    """An announcement as `Tracked` keeps it: without its timeline, its repeated strings shared with every
    other dossier's, its datetimes sharing one tzinfo per UTC offset (and the appointment the receipt's due)."""
    return _receipt(counted, counted.events, counted.appointment_at, counted.arrivals, counted.arrivals_synced)


def _receipt(received: Received, events: int, appointment_at: datetime | None, arrivals: int,
             arrivals_synced: int) -> Counted:
    """`receipt_of` of what a receipt said and these, made at once (`replace` of a Counted costs twice as much)."""
    due = shared_zone(received.receipt_due_at)
    appointment = due if _same(appointment_at, due) else shared_zone(appointment_at)
    return Counted(**received_of(received) | {
        "commune_code": intern(received.commune_code), "sector": intern(received.sector),
        "procedure_code": intern(received.procedure_code), "received_at": shared_zone(received.received_at),
        "receipt_due_at": due, "fees_total": shared_fees(received.fees_total),
        "received_by_unit": received.received_by_unit and intern(received.received_by_unit)},
        events=events, timeline=(), appointment_at=appointment, arrivals=arrivals, arrivals_synced=arrivals_synced)


def shared_fees(total: float | None) -> float | None:
    return _FEES.get(total, total)


# The usual fees' totals, one float each (24 bytes a dossier otherwise): none, and whole thousands of đồng up to
# 10 million.
_FEES: dict[float | None, float | None] = {float(v): float(v) for v in range(0, 10_000_001, 1_000)}


def last_of(last: Timeline | Facts, receipt: Counted) -> Facts:
    """A timeline's last Facts (or the Facts given) as `Tracked` keeps it: its datetimes as `receipt_of` keeps them."""
    f = last if isinstance(last, Facts) else last[-1]
    due = receipt.receipt_due_at if _same(f.due_at, receipt.receipt_due_at) else shared_zone(f.due_at)
    return Facts(shared_zone(f.since), f.state, due, f.timeliness, f.payment_method, f.digitized,  # type: ignore[arg-type]
                 f.rating, f.apologies_compliant, f.apologies_non_compliant, f.unit and intern(f.unit),
                 shared_zone(f.step_due_at), f.payment_gateway, f.result_issued,
                 f.result_sent_to_personal_store)


def _same(one: datetime | None, other: datetime | None) -> bool:
    """Equal and written alike (the same UTC offset)."""
    return one is not None and other is not None and one == other and one.utcoffset() == other.utcoffset()


@dataclass(frozen=True)
class Transition:
    """Time alone moved an open dossier: what the clock announces, with the dossier as it was then (a newer
    announcement may come before the clock's record is made)."""

    receipt: Counted
    facts: Facts
    received_date: date
    at: datetime
    old: OpenState
    new: OpenState
    announced_before: datetime | None  # the dossier's `announced_until` before this tick

    def status(self, open_state: OpenState) -> Status:
        facts = self.facts
        return Status(state=facts.state, due_at=facts.due_at, timeliness=facts.timeliness,
                      appointment_at=self.receipt.appointment_at, open_state=open_state)


class Figures(ReportQueries):
    """Counts as of now, the clock's heap and the verdicts, fed by what processing announced; the
    report queries over the same timelines are services/metrics/queries.py's."""

    def __init__(self, calendar: WorkingCalendar, catalogue: Callable[[], Catalogue] | None = None):
        self.calendar = calendar
        self.catalogue = catalogue or Reloading(DEFAULT_CATALOGUE, load_catalogue).current
        self.dossiers: dict[str, Tracked] = {}
        self._by_commune: dict[str, list[Tracked]] = {}
        self.counts: Counter[Key] = Counter()
        self._clock: list[tuple[datetime, str]] = []  # (instant the open state may change, code)
        self._signatures: MutableMapping[tuple[str, str], Verdict] = {}  # (dossier, document) -> latest verdict
        self._documents: MutableMapping[str, set[str]] = {}  # dossier -> its documents with a verdict
        self.feedback_book = FeedbackBook()  # the PAKN (services/metrics/feedback.py)
        self.changes: Counter[str] = Counter()  # per commune: how often what its reports count changed
        self._cards: dict[tuple, tuple] = {}  # scorecard rows as last computed (services/metrics/queries.py)
        self._packings: dict[int, int] = {}  # each distinct packed contribution once (services/metrics/queries.py)
        self._catalogue_seen: Catalogue | None = None  # the catalogue the last query read
        self._days: dict[date, date] = {}  # each day of receipt once, shared by its dossiers

    # -- feeding -----------------------------------------------------------------------------

    def is_newer(self, code: str, events: int) -> bool:
        """Whether an announcement of a dossier with this many events is newer than what is counted."""
        tracked = self.dossiers.get(code)
        return tracked is None or events > tracked.receipt.events

    def apply(self, announced: Counted | Held, now: datetime, settle: bool = True) -> bool:
        """Take what processing announced of a dossier; False if an announcement with as many events
        was seen. `settle`: False leaves the dossier to be judged by each report until `settle` is called (a
        start, which settles what it loaded once consuming)."""
        receipt = announced.receipt if isinstance(announced, Held) else announced
        tracked = self.dossiers.get(receipt.dossier_code)
        if tracked is not None and receipt.events <= tracked.receipt.events:
            return False
        if isinstance(announced, Counted):
            announced = held(announced)
        if tracked is None:
            tracked = self.tracked_of(announced)
            self.dossiers[receipt.dossier_code] = tracked
            self._by_commune.setdefault(tracked.receipt.commune_code, []).append(tracked)
        else:
            self._count(tracked, -1)
            tracked.take(announced)
        self._count(tracked, +1)
        self._recount_open(tracked, now)
        self._schedule(tracked)
        if settle:
            self.settle(tracked, announced.timeline)
        else:
            self.unsettle(tracked)
        self.changes[receipt.commune_code] += 1
        return True

    def apply_verdict(self, verdict: Verdict, settle: bool = True) -> bool:
        """A result's verdict: each document counts once, under its latest verdict (`settle` as `apply`'s)."""
        key = (verdict.dossier_code, verdict.document_id)
        before = self._signatures.get(key)
        if before is not None and before.at >= verdict.at:
            return False
        if before is not None:
            self.counts["signatures", before.commune_code, before.sector, before.verdict] -= 1
        self._signatures[key] = verdict
        self._documents.setdefault(verdict.dossier_code, set()).add(verdict.document_id)
        self.counts["signatures", verdict.commune_code, verdict.sector, verdict.verdict] += 1
        if (tracked := self.dossiers.get(verdict.dossier_code)) is not None:
            if settle:
                self.settle(tracked)
            else:
                self.unsettle(tracked)
        self.changes[verdict.commune_code] += 1
        return True

    def tracked_of(self, announced: Counted | Held) -> Tracked:
        if isinstance(announced, Counted):
            announced = held(announced)
        received = self.calendar.local(announced.receipt.received_at).date()
        return Tracked.of(announced, self._days.setdefault(received, received))

    def verdicts_of(self, code: str) -> list[Verdict]:
        return [self._signatures[code, doc] for doc in sorted(self._documents.get(code, ()))]

    def all_verdicts(self) -> Collection[Verdict]:
        return self._signatures.values()

    def loose_verdicts(self) -> list[Verdict]:
        """The verdicts of dossiers not in memory."""
        return [v for (code, _), v in self._signatures.items() if code not in self.dossiers]

    # -- leaving memory (the horizon, docs/domain.md §5) ------------------------------------------

    def ended_before(self, instant: datetime) -> list[Tracked]:
        """The dossiers that ended (or were withdrawn) before `instant` and changed no more since."""
        return [t for t in self.dossiers.values() if t.now.state not in OPEN and t.now.since < instant]

    def received_before(self, instant: datetime) -> list[Tracked]:
        return [t for t in self.dossiers.values() if t.receipt.received_at < instant]

    def forget(self, codes: set[str]) -> None:
        """Drop these dossiers' timelines and verdicts; what they counted stays counted (the counters
        Prometheus reads must not go back)."""
        for code in codes:
            tracked = self.dossiers.pop(code)
            assert tracked.open_counted is None, f"{code} is open"
            for document in self._documents.pop(code, ()):
                del self._signatures[code, document]
        for commune_code in {c for c, dossiers in self._by_commune.items() if any(t.code in codes for t in dossiers)}:
            self._by_commune[commune_code] = [t for t in self._by_commune[commune_code] if t.code not in codes]
            self.changes[commune_code] += 1

    def including(self, archived: Iterable[tuple[Counted, list[Verdict]]],
                  feedback: list[FeedbackData] | None = None) -> "Figures":
        """These figures for reports, with dossiers (and PAKN) read back from the archive beside those in
        memory (one in both counts once, as the one with more events). Counts and clock stay behind."""
        view = Figures(self.calendar, self.catalogue)
        view.dossiers = self.dossiers
        view.feedback_book = self.feedback_book.including(feedback) if feedback else self.feedback_book
        view._by_commune = dict(self._by_commune)
        # The archive's verdicts in front of ours, which stay as they are (not copied: a request's work).
        view._signatures, view._documents = ChainMap({}, self._signatures), ChainMap({}, self._documents)
        added: dict[str, list[Tracked]] = {}
        for counted, verdicts in archived:
            here = self.dossiers.get(counted.dossier_code)
            if here is not None and here.receipt.events >= counted.events:
                continue
            added.setdefault(counted.commune_code, []).append(self.tracked_of(counted))
            for verdict in verdicts:
                view._signatures[verdict.dossier_code, verdict.document_id] = verdict
                view._documents[verdict.dossier_code] = view._documents.get(verdict.dossier_code, set()) | {
                    verdict.document_id}
        for commune_code, dossiers in added.items():
            replaced = {t.code for t in dossiers}
            view._by_commune[commune_code] = [t for t in self._by_commune.get(commune_code, ())
                                              if t.code not in replaced] + dossiers
            for tracked in dossiers:
                view.settle(tracked)
        return view

    def counted_by(self, dossiers: Iterable[tuple[Tracked, list[Verdict]]]) -> Counter[Key]:
        """What these ended dossiers add to the counts, with their verdicts."""
        counts: Counter[Key] = Counter()
        for tracked, verdicts in dossiers:
            self._count(tracked, +1, counts)
            for v in verdicts:
                counts["signatures", v.commune_code, v.sector, v.verdict] += 1
        return counts

    def _count(self, tracked: Tracked, sign: int, counts: Counter[Key] | None = None) -> None:
        c, f = tracked.receipt, tracked.now
        where = (c.commune_code, c.sector)
        counts = self.counts if counts is None else counts
        counts["received", *where, c.channel, c.online_level or "none"] += sign
        if f.timeliness:
            counts["completed", *where, f.timeliness] += sign
        if f.state == "withdrawn":
            counts["withdrawn", *where] += sign
        if f.payment_method:
            counts["payments", *where, f.payment_method] += sign
        if f.digitized:
            counts["digitized", *where] += sign
        if f.rating:
            counts["ratings", *where, f.rating] += sign
        counts["apologies", *where, "true"] += sign * f.apologies_compliant
        counts["apologies", *where, "false"] += sign * f.apologies_non_compliant

    def _recount_open(self, tracked: Tracked, now: datetime) -> OpenState | None:
        """Count the dossier under its open state at `now`; returns the state it was counted under."""
        before = tracked.open_counted
        c, f = tracked.receipt, tracked.now
        tracked.open_counted = f.open_state(now, self.calendar)
        if before != tracked.open_counted:
            if before:
                self.counts["open", c.commune_code, c.sector, before] -= 1
            if tracked.open_counted:
                self.counts["open", c.commune_code, c.sector, tracked.open_counted] += 1
        if before in URGENT:
            self.counts.pop(("urgent", c.commune_code, c.sector, before, tracked.code), None)
        if tracked.open_counted in URGENT:  # a later status may carry another due
            self.counts["urgent", c.commune_code, c.sector, tracked.open_counted, tracked.code] = f.due_at.timestamp()
        return before

    def _schedule(self, tracked: Tracked) -> None:
        for at, _ in self._changes(tracked):
            heapq.heappush(self._clock, (at, tracked.code))
            return

    def _changes(self, tracked: Tracked) -> list[tuple[datetime, OpenState]]:
        """The open-state changes time alone brings after the dossier's last change of facts."""
        f = tracked.now
        changes = open_state_changes(f.state, f.due_at, self.calendar)
        return [(at, to) for at, to in changes if at > f.since] if changes else changes

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: datetime, at_most: int | None = None) -> list[Transition]:
        """Move the open dossiers whose open state changed by `now` and return the changes, in time
        order. After a restart, every change since the dossier's last change of facts is returned
        again (also those missed while stopped): the caller skips those it already announced.
        `at_most`: look at so many dossiers of the clock's queue, the next call at the next ones while
        `due_by(now)` (a tick after a restart may move every open dossier; a dossier's changes come in one call)."""
        moved = []
        looked = 0
        while self._clock and self._clock[0][0] <= now and (at_most is None or looked < at_most):
            looked += 1
            _, code = heapq.heappop(self._clock)
            tracked = self.dossiers.get(code)
            if tracked is None:
                continue  # it ended long ago and left memory
            changes = self._changes(tracked)
            if not changes or changes[0][0] > now:
                continue  # the dossier changed since it was scheduled; its new instant is queued
            previous = tracked.now.open_state(tracked.now.since, self.calendar)
            for at, to in changes:
                if at > now:
                    heapq.heappush(self._clock, (at, code))
                    break
                if previous != to and (tracked.announced_until is None or at > tracked.announced_until):
                    moved.append(Transition(tracked.receipt, tracked.now, tracked.received_date, at, previous, to,
                                            tracked.announced_until))
                previous = to
            tracked.announced_until = now
            self._recount_open(tracked, now)
        return sorted(moved, key=lambda t: t.at)

    def unannounced(self, moved: list[Transition]) -> None:
        """These moves were not announced after all (their records were not published): the next tick returns them
        again."""
        for t in moved:
            tracked = self.dossiers.get(t.receipt.dossier_code)
            if tracked is not None:
                tracked.announced_until = t.announced_before
                heapq.heappush(self._clock, (t.at, tracked.code))

    def due_by(self, now: datetime) -> bool:
        """Whether a dossier's open state may have changed by `now`: `tick` has something to look at."""
        return bool(self._clock) and self._clock[0][0] <= now

    def communes(self) -> list[str]:
        return sorted(self._by_commune)


def figures_of(settings: "MetricsSettings") -> Figures:
    """The figures of a deployment: its calendar, and its procedure catalogue read again when it changes."""
    return Figures(WorkingCalendar.load(settings.calendar),
                   Reloading(settings.metrics_catalogue_file, load_catalogue).current)
