"""Which SMS a status event asks for (DOMAIN §7), and the step each one is about.

Pure: no I/O. A step key names the dossier step a message is about ("received", the supplement
request with its event id, ...): the message's id derives from it, so the same step never gives
two messages, whichever replica, redelivery or restart sees its status event again.
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.status import METRICS_SOURCE


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
        return hashlib.sha256(self.step.encode()).hexdigest()[:32]


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def wanted(event: dict[str, Any], due_soon: bool = False) -> list[Wanted]:
    data = event["data"]
    old, new, cause = data.get("old") or {}, data["new"], data.get("cause") or {}
    code = data["dossier_code"]
    applicant = data.get("applicant") or {}
    out: list[tuple[str, str, datetime | None]] = []  # (trigger, step, date)
    if event["source"] == METRICS_SOURCE:
        if due_soon and new.get("open_state") == "due_soon":
            out.append(("due_soon", f"due_soon|{new['due_at']}", _at(new["due_at"])))
    else:
        if not old:
            out.append(("received", "received", _at(new["appointment_at"])))
        state, before = new["state"], old.get("state")
        if state == "awaiting_supplement" and before != state:
            out.append(("supplement_requested", f"supplement|{cause.get('id')}", None))
        if state == "resolved" and before != state:
            out.append(("resolved", "resolved", None))
        if state == "returned" and before != state:
            out.append(("returned", "returned", _at(event["time"])))
        if cause.get("type") == "dossier.apology_issued" and old and new["appointment_at"] != old.get("appointment_at"):
            out.append(("apology", f"apology|{cause.get('id')}", _at(new["appointment_at"])))
    return [
        Wanted(f"{code}|{step}", trigger, code, data["commune_code"], date, data.get("missing"),
               applicant.get("phone"), bool(applicant.get("sms_opt_in", False)) or event["source"] == METRICS_SOURCE)
        for trigger, step, date in out
    ]
