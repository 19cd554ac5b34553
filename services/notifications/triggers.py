"""Which SMS a status event asks for (docs/domain.md §7), and the step each one is about.

Pure: no I/O. A step key names the dossier step a message is about ("received", the supplement
request with its event id, ...): the message's id derives from it, so the same step never gives
two messages, whichever replica, redelivery or restart sees its status event again.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from shared.contracts import ClockChanged, StatusChanged


@dataclass(frozen=True)
class Wanted:
    """A message a status event asks for."""

    step: str  # e.g. "000.00.38.H56-250701-0001|received"
    trigger: str
    dossier_code: str
    commune_code: str
    date: datetime | None  # the date the message tells
    missing: str | None
    phone: str | None  # as the applicant gave it; None for clock events (looked up)
    opted_in: bool

    @property
    def message_id(self) -> str:
        return message_id(self.step)


def message_id(step: str) -> str:
    """A message's id: the step that asks for it, hashed (one message per step, however often asked)."""
    return hashlib.sha256(step.encode()).hexdigest()[:32]


def wanted(record: StatusChanged | ClockChanged, due_soon: bool = False) -> list[Wanted]:
    data = record.data
    out: list[tuple[str, str, datetime | None]] = []  # (trigger, step, date)
    if isinstance(record, ClockChanged):
        if due_soon and data.new.open_state == "due_soon" and data.new.due_at:
            out.append(("due_soon", f"due_soon|{data.new.due_at.isoformat()}", data.new.due_at))
        phone, opted_in, missing = None, True, None  # the clock's record carries no applicant: looked up
    else:
        old, new = data.old, data.new
        if old is None:
            out.append(("received", "received", new.appointment_at))
        before = old.state if old else None
        if new.state == "awaiting_supplement" and before != new.state:
            out.append(("supplement_requested", f"supplement|{data.cause.id}", None))
        if new.state == "resolved" and before != new.state:
            out.append(("resolved", "resolved", None))
        if new.state == "returned" and before != new.state:
            out.append(("returned", "returned", record.time))
        if data.cause.type == "dossier.apology_issued" and old and new.appointment_at != old.appointment_at:
            out.append(("apology", f"apology|{data.cause.id}", new.appointment_at))
        phone, opted_in, missing = data.applicant.phone, data.applicant.sms_opt_in, data.missing
    code = data.dossier_code
    return [Wanted(f"{code}|{step}", trigger, code, data.commune_code, date, missing, phone, opted_in)
            for trigger, step, date in out]
