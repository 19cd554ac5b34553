"""The figures of every dossier the metrics service has seen, in memory, from their timelines.

Pure: no I/O. The service feeds it the timelines of processing's status events (from MongoDB at
start, then from `dossier-status`); every replica fed the same timelines holds the same figures.

- Prometheus (docs/contract.md §4): counts as of now, kept up to date on each change, so a snapshot is a
  copy of a dict; the open dossiers' counts by state move with time through `tick`.
- Reports (docs/contract.md §5): each dossier's Facts as of any instant come from its timeline, and
  shared.report turns them into the indicators; nothing is recomputed a second way.
- The clock (`tick`): a heap of the instants at which an open dossier turns due soon or overdue,
  so a tick costs what moves, not a scan of every open dossier.
- Urgent dossiers: `counts` also holds each overdue or due-soon dossier under `("urgent", commune,
  sector, state, code)` with its due (Unix seconds) as the value, kept as its open state changes: a
  snapshot's copy of the counts then has what `dossier_urgent_due_timestamp_seconds` names.
"""

import heapq
from collections import ChainMap, Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AliasChoices, AliasPath, AwareDatetime, Field

from shared.calendar import WorkingCalendar
from shared.communes import Commune
from shared.contracts import SignatureData, Status, StatusData, received_of
from shared.facts import OPEN, Facts, OpenState, Received, Timeline, facts_as_of, open_state_changes
from shared.report import progress, report_of, score
from shared.scorecard import COMMUNE_NOT_APPLICABLE, Counts, OpenDossier, at_risk, score_of, scorecard
from shared.scorecard import rank as rank_with_ties

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
RECEPTION = "Bộ phận tiếp nhận (một cửa)"  # who holds a dossier before its first transfer


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
    """One dossier as the metrics service keeps it: what was last announced, and what the clock did."""

    counted: Counted
    received_date: date  # local date: the report cohort (docs/domain.md §5)
    open_counted: OpenState | None = None  # what `dossier_open` counts it as now
    announced_until: datetime | None = None  # the clock's changes up to here are announced

    @property
    def code(self) -> str:
        return self.counted.dossier_code

    @property
    def timeline(self) -> Timeline:
        return self.counted.timeline

    @property
    def now(self) -> Facts:
        return self.counted.timeline[-1]


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
                      appointment_at=self.dossier.counted.appointment_at, open_state=open_state)


def scorecard_counts(report: dict[str, Any], members: list[tuple["Tracked", Facts]],
                     signed_valid: Callable[[str], bool]) -> Counts:
    """What the scorecard counts of a cohort (docs/domain.md §6), beside its report (§5)."""
    payments = report["payments"]
    in_time, judged = progress(report["received"], report["withdrawn"], report["completed"], report["open"])
    with_result = [t for t, f in members if f.state in ("resolved", "returned")]
    return Counts(
        received=report["received"],
        withdrawn=report["withdrawn"],
        in_time=in_time,
        judged=judged,
        online_full=report["online_full"],
        payments=payments["online"] + payments["offline"],
        payments_online=payments["online"],
        satisfied=sum(f.state != "withdrawn" and f.rating != "unsatisfied" and f.timeliness != "late"
                      for _, f in members),
        resolved=len(with_result),
        signed_valid=sum(signed_valid(t.code) for t in with_result),
        digitized=report["digitized"],
        events=sum(t.counted.arrivals for t, _ in members),
        events_synced=sum(t.counted.arrivals_synced for t, _ in members),
    )


class Figures:
    def __init__(self, calendar: WorkingCalendar):
        self.calendar = calendar
        self.dossiers: dict[str, Tracked] = {}
        self._by_commune: dict[str, list[Tracked]] = {}
        self.counts: Counter[Key] = Counter()
        self._clock: list[tuple[datetime, str]] = []  # (instant the open state may change, code)
        self._signatures: MutableMapping[tuple[str, str], Verdict] = {}  # (dossier, document) -> latest verdict
        self._documents: MutableMapping[str, set[str]] = {}  # dossier -> its documents with a verdict

    # -- feeding -----------------------------------------------------------------------------

    def is_newer(self, code: str, events: int) -> bool:
        """Whether an announcement of a dossier with this many events is newer than what is counted."""
        tracked = self.dossiers.get(code)
        return tracked is None or events > tracked.counted.events

    def apply(self, counted: Counted, now: datetime) -> bool:
        """Take what processing announced of a dossier; False if an announcement with as many events
        was seen."""
        tracked = self.dossiers.get(counted.dossier_code)
        if tracked is not None and counted.events <= tracked.counted.events:
            return False
        if tracked is None:
            tracked = self.tracked_of(counted)
            self.dossiers[counted.dossier_code] = tracked
            self._by_commune.setdefault(counted.commune_code, []).append(tracked)
        else:
            self._count(tracked, -1)
            tracked.counted, tracked.announced_until = counted, None
        self._count(tracked, +1)
        self._recount_open(tracked, now)
        self._schedule(tracked)
        return True

    def apply_verdict(self, verdict: Verdict) -> bool:
        """A result's verdict: each document counts once, under its latest verdict."""
        key = (verdict.dossier_code, verdict.document_id)
        before = self._signatures.get(key)
        if before is not None and before.at >= verdict.at:
            return False
        if before is not None:
            self.counts["signatures", before.commune_code, before.sector, before.verdict] -= 1
        self._signatures[key] = verdict
        self._documents.setdefault(verdict.dossier_code, set()).add(verdict.document_id)
        self.counts["signatures", verdict.commune_code, verdict.sector, verdict.verdict] += 1
        return True

    def tracked_of(self, counted: Counted) -> Tracked:
        return Tracked(counted, self.calendar.local(counted.received_at).date(),
                       announced_until=counted.announced_until)

    def verdicts_of(self, code: str) -> list[Verdict]:
        return [self._signatures[code, doc] for doc in sorted(self._documents.get(code, ()))]

    # -- leaving memory (the horizon, docs/domain.md §5) ------------------------------------------

    def ended_before(self, instant: datetime) -> list[Tracked]:
        """The dossiers that ended (or were withdrawn) before `instant` and changed no more since."""
        return [t for t in self.dossiers.values() if t.now.state not in OPEN and t.now.since < instant]

    def received_before(self, instant: datetime) -> list[Tracked]:
        return [t for t in self.dossiers.values() if t.counted.received_at < instant]

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

    def including(self, archived: Iterable[tuple[Counted, list[Verdict]]]) -> "Figures":
        """These figures for reports, with dossiers read back from the archive beside those in memory
        (a dossier in both counts once, as the one with more events). Counts and clock stay behind."""
        view = Figures(self.calendar)
        view.dossiers = self.dossiers
        view._by_commune = dict(self._by_commune)
        # The archive's verdicts in front of ours, which stay as they are (not copied: a request's work).
        view._signatures, view._documents = ChainMap({}, self._signatures), ChainMap({}, self._documents)
        added: dict[str, list[Tracked]] = {}
        for counted, verdicts in archived:
            here = self.dossiers.get(counted.dossier_code)
            if here is not None and here.counted.events >= counted.events:
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
        c, f = tracked.counted, tracked.now
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
        c, f = tracked.counted, tracked.now
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
        return [(at, to) for at, to in open_state_changes(f.state, f.due_at, self.calendar) if at > f.since]

    # -- time ----------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Transition]:
        """Move the open dossiers whose open state changed by `now` and return the changes, in time
        order. After a restart, every change since the dossier's last change of facts is returned
        again (also those missed while stopped): the caller skips those it already announced."""
        moved = []
        while self._clock and self._clock[0][0] <= now:
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
                    moved.append(Transition(tracked, at, previous, to))
                previous = to
            tracked.announced_until = now
            self._recount_open(tracked, now)
        return sorted(moved, key=lambda t: t.at)

    # -- reports ---------------------------------------------------------------------------------

    def cohort(self, commune_code: str, start: date, end: date, as_of: datetime) -> Iterable[tuple[Tracked, Facts]]:
        """The dossiers of a commune received (local date) in [start, end], with their Facts at `as_of`."""
        for tracked in self._by_commune.get(commune_code, ()):
            if start <= tracked.received_date <= end and tracked.counted.received_at <= as_of:
                facts = facts_as_of(tracked.timeline, as_of)
                if facts is not None:
                    yield tracked, facts

    def report(self, commune_code: str, start: date, end: date, as_of: datetime) -> dict[str, Any]:
        return report_of(((t.counted, f) for t, f in self.cohort(commune_code, start, end, as_of)), as_of,
                         self.calendar)

    def counts_of(self, commune_code: str, start: date, end: date, as_of: datetime
                  ) -> tuple[dict[str, Any], Counts, list[tuple["Tracked", Facts]]]:
        """A commune's report, what its scorecard counts, and its cohort, as of `as_of`."""
        members = list(self.cohort(commune_code, start, end, as_of))
        report = report_of(((t.counted, f) for t, f in members), as_of, self.calendar)
        counts = scorecard_counts(report, members, lambda code: self._signed_valid(code, as_of))
        return report, counts, members

    def _signed_valid(self, code: str, as_of: datetime) -> bool:
        """Whether a document of the dossier has `valid` as its latest verdict (given by `as_of`)."""
        return any(v.verdict == "valid" and v.signed_at <= as_of
                   for doc in self._documents.get(code, ()) if (v := self._signatures[code, doc]))

    def scorecard(self, province: list[Commune], start: date, end: date, as_of: datetime,
                  not_applicable: frozenset[str] = COMMUNE_NOT_APPLICABLE) -> list[dict[str, Any]]:
        """The province's communes scored as QĐ 766 scores them and ranked, ties sharing a rank (§6)."""
        cards, reports = {}, {}
        for c in province:
            reports[c.code], counts, _ = self.counts_of(c.code, start, end, as_of)
            cards[c.code] = scorecard(counts, not_applicable) | score(reports[c.code])  # v1 fields beside
            cards[c.code]["score"] = score_of(counts, not_applicable)  # v1.1: the decision's score
        ranks = rank_with_ties({code: card["score"] for code, card in cards.items()})
        names = {c.code: c.name for c in province}
        rows = [{"rank": ranks[code], "of": len(province), "commune_code": code, "name": names[code],
                 "received": reports[code]["received"], "rates": reports[code]["rates"], **card}
                for code, card in cards.items()]
        return sorted(rows, key=lambda row: (row["rank"], row["commune_code"]))

    def at_risk(self, commune_code: str, start: date, end: date, as_of: datetime, horizon: datetime,
                not_applicable: frozenset[str]) -> dict[str, Any]:
        """The points a commune is about to lose (§6): its score if every open dossier ends in time,
        if every one due by `horizon` turns late, and the dossiers that cost the most."""
        _, counts, members = self.counts_of(commune_code, start, end, as_of)
        opened = []
        for tracked, f in members:
            state = f.open_state(as_of, self.calendar)
            if state is None:
                continue
            left = None  # the working hours left: of those due by the horizon, the only ones shown
            if f.due_at is not None and f.due_at <= horizon:
                left = (self.calendar.working_between(as_of, f.due_at).total_seconds() / 3600
                        if f.due_at > as_of else 0.0)
            opened.append(OpenDossier(tracked.code, state, f.due_at, left, f.rating == "unsatisfied"))
        return {"score": score_of(counts, not_applicable)} | at_risk(counts, opened, horizon, not_applicable)

    def units(self, commune_code: str, start: date, end: date, as_of: datetime) -> list[dict[str, Any]]:
        """Where the cohort's dossiers waited: per unit, the working hours it held them (up to their end
        or `as_of`), the open dossiers it holds now by open state, and how many of those are overdue."""
        held: dict[str, float] = {}
        holding: dict[str, Counter[str]] = {}
        for tracked, now in self.cohort(commune_code, start, end, as_of):
            entries = [f for f in tracked.timeline if f.since <= as_of]
            for f, following in zip(entries, [*entries[1:], None], strict=True):
                if f.state not in OPEN:
                    break  # ended or withdrawn: no one holds it any more
                until = following.since if following else as_of
                hours = self.calendar.working_between(f.since, until).total_seconds() / 3600
                held[f.unit or RECEPTION] = held.get(f.unit or RECEPTION, 0.0) + hours
            if (state := now.open_state(as_of, self.calendar)) is not None:
                holding.setdefault(now.unit or RECEPTION, Counter())[state] += 1
        return sorted(({"unit": unit, "working_hours_held": round(held.get(unit, 0.0), 2),
                        "open": dict(holding.get(unit, Counter())),
                        "overdue": holding.get(unit, Counter())["overdue"]}
                       for unit in held.keys() | holding.keys()),
                      key=lambda row: (-row["overdue"], -sum(row["open"].values()), -row["working_hours_held"]))

    def communes(self) -> list[str]:
        return sorted(self._by_commune)
