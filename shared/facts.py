"""A dossier's facts, one model from the fold to the figures, with one codec (docs/architecture.md §3).

- `Received`: what does not change in a dossier's life, set by its receipt.
- `Facts`: what the figures count about it from instant `since` on. A dossier's `Timeline` is its
  Facts each time they changed, oldest first: the Facts in force at instant T are those the fold of
  the events up to T gives, so a report as of any instant reads them instead of folding again.

The fold (shared.dossier) derives them; processing's status record (shared.contracts.StatusData) is a
`Received` carrying the `Timeline`; the metrics service counts the very objects it parsed and stores
them with the same codec (`RECEIVED`, `TIMELINE`). pydantic validates and serializes these dataclasses
where they cross a boundary; in memory they are plain slotted dataclasses (small, fast to build).

Adding a fact: declare it here, derive it in shared/dossier.py, count it where it is counted
(services/metrics/figures.py, shared/report.py), pack it where the metrics service holds timelines
(services/metrics/compact.py), and regenerate docs/schemas (`python -m shared.contracts`).
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from pydantic import AwareDatetime, TypeAdapter

from shared.calendar import WorkingCalendar

State = Literal["processing", "awaiting_supplement", "paused", "withdrawn", "stopped", "resolved", "returned"]
OpenState = Literal["within_deadline", "due_soon", "overdue", "awaiting_supplement", "paused"]
Timeliness = Literal["early", "on_time", "late"]
Channel = Literal["direct", "online", "postal"]
OnlineLevel = Literal["full", "partial"]
PaymentMethod = Literal["online", "offline"]
PaymentGateway = Literal["portal", "province"]
Rating = Literal["very_satisfied", "satisfied", "unsatisfied"]

OPEN: frozenset[str] = frozenset({"processing", "awaiting_supplement", "paused"})
DUE_SOON = timedelta(hours=24)


@dataclass(frozen=True, slots=True, kw_only=True)
class Received:
    """What the receipt says and nothing later changes (docs/domain.md §2)."""

    dossier_code: str
    commune_code: str  # the figures belong to this commune
    sector: str
    procedure_code: str
    channel: Channel
    online_level: OnlineLevel | None
    received_at: AwareDatetime
    # v1.2: the centre that took the dossier, when not the resolving commune's (NĐ 118: a centre may
    # receive for any commune of its province); None when the commune's own centre took it.
    received_by_unit: str | None = None
    # v1.2 (docs/contract.md §10), what the QĐ 766 scorecard counts (docs/domain.md §6): at least one
    # component digitized, reused from digitized data, taken from the personal data store; the account
    # authenticated with VNeID; population data used; the fees' total (None when the receipt says none).
    component_digitized: bool = False
    component_reused: bool = False
    component_from_personal_store: bool = False
    vneid_authenticated: bool = False
    population_data: bool = False
    fees_total: float | None = None
    # v1.2: the appointment on the receipt (its `due_at`, else the initial due, docs/domain.md §3), which the
    # portal's on-time rule judges by (§6); None in a record written before v1.2.
    receipt_due_at: AwareDatetime | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """What the figures count about a dossier from `since` on (docs/domain.md §5)."""

    since: AwareDatetime
    state: State
    due_at: AwareDatetime | None  # the due in force; None while a supplement is awaited
    timeliness: Timeliness | None
    payment_method: PaymentMethod | None
    digitized: bool
    rating: Rating | None
    apologies_compliant: int
    apologies_non_compliant: int
    unit: str | None = None  # who holds the dossier (the last transfer's `to_unit`); None at reception
    # v1.2: the holding step's own due (the last transfer's `step_due_at`); the gateway of an online
    # payment; an electronic result issued (`dossier.result_issued`), and sent to the personal data store.
    step_due_at: AwareDatetime | None = None
    payment_gateway: PaymentGateway | None = None
    result_issued: bool = False
    result_sent_to_personal_store: bool = False

    def open_state(self, at: datetime, calendar: WorkingCalendar) -> OpenState | None:
        return open_state(self.state, self.due_at, at, calendar)


Timeline = tuple[Facts, ...]

# The one codec of the facts: to and from JSON-ready values, wherever they are stored.
RECEIVED: TypeAdapter[Received] = TypeAdapter(Received)
TIMELINE: TypeAdapter[Timeline] = TypeAdapter(Timeline)


def facts_as_of(timeline: Timeline, at: datetime) -> Facts | None:
    """The Facts in force at instant `at`; None before the dossier was received."""
    if timeline and timeline[-1].since <= at:
        return timeline[-1]  # most reports: the dossier changed no more since
    found = None
    for facts in timeline:
        if facts.since > at:
            break
        found = facts
    return found


def open_state(state: State, due_at: datetime | None, at: datetime, calendar: WorkingCalendar) -> OpenState | None:
    """Where a dossier in `state` with `due_at` stands at instant `at` (docs/domain.md §4); None unless open."""
    if state not in OPEN:
        return None
    if state != "processing":
        return state  # type: ignore[return-value]
    assert due_at is not None
    if calendar.local(at).date() > calendar.local(due_at).date():
        return "overdue"
    if due_at - at <= DUE_SOON:
        return "due_soon"
    return "within_deadline"


def open_state_changes(state: State, due_at: datetime | None, calendar: WorkingCalendar) -> list[tuple[datetime, OpenState]]:
    """The instants at which a dossier left alone moves on: due soon 24 h before its due, overdue from
    the start of the local day after the due's. Only a dossier being processed moves with time."""
    if state != "processing" or due_at is None:
        return []
    local_due = calendar.local(due_at)
    next_day = datetime.combine(local_due.date() + timedelta(days=1), time(), local_due.tzinfo)
    return [(due_at - DUE_SOON, "due_soon"), (next_day, "overdue")]
