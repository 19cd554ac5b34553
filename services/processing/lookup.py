"""The citizens' lookup (tra cứu hồ sơ, docs/contract.md §8): a dossier code and a second factor the
citizen has, answered with only what the citizen needs (never a name nor a phone).

A wrong factor and an unknown code give the same answer after the same work (the factor is compared,
in constant time, with a stand-in when the dossier is unknown). Attempts are limited per client
address and failures per code, in memory (per replica: a bound on guessing, not an accounting).
"""

import hmac
import time
from datetime import datetime
from typing import Any

from shared.calendar import WorkingCalendar
from shared.dossier import open_state
from shared.lookup import OPEN_STATES, PHONE4, STATES, STEPS, TOKEN, Windows, lookup_token

class LookupRefused(Exception):
    """Too many attempts: the answer is 429, with the seconds to wait."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many attempts, retry after {retry_after} s")
        self.retry_after = retry_after


class Attempts:
    """Sliding windows of attempts per client and failures per code."""

    def __init__(self, per_client_per_minute: int, failures_per_code_per_hour: int,
                 clock: Any = time.monotonic):
        self._clients = Windows(per_client_per_minute, 60.0, clock)
        self._codes = Windows(failures_per_code_per_hour, 3600.0, clock)

    def check(self, client: str, code: str) -> None:
        """Count an attempt of `client`; refuse it if the client or the code is over its limit."""
        for windows, key in ((self._clients, client), (self._codes, code)):
            wait = windows.wait(key)
            if wait is not None:
                raise LookupRefused(max(1, int(wait) + 1))
        self._clients.add(client)

    def failed(self, code: str) -> None:
        self._codes.add(code)


def factor_matches(code: str, phone4_given: str | None, token_given: str | None, phone4: str | None,
                   secret: str) -> bool:
    """Whether the citizen's factor is this dossier's; the same comparisons whatever the outcome."""
    if phone4_given is not None:
        return hmac.compare_digest(phone4_given.encode(), (phone4 or "\x00" * 4).encode())
    if token_given is not None:
        return hmac.compare_digest(token_given.encode(), lookup_token(secret, code).encode())
    return False


def well_formed_factor(phone4: str | None, token: str | None) -> bool:
    """Exactly one factor, in its shape: 4 ASCII digits, or a 16-letter token."""
    if (phone4 is None) == (token is None):
        return False
    return bool(PHONE4.match(phone4)) if phone4 is not None else bool(TOKEN.match(token or ""))


def citizen_view(view: dict[str, Any], now: datetime, calendar: WorkingCalendar) -> dict[str, Any]:
    """What a citizen sees of their dossier: state, appointment, steps, what is missing. No name, no phone."""
    due = datetime.fromisoformat(view["due_at"]) if view["due_at"] else None
    state_now = open_state(view["state"], due, now, calendar)
    return {
        "dossier_code": view["dossier_code"],
        "state": view["state"],
        "state_name": STATES[view["state"]],
        "open_state": state_now,
        "open_state_name": OPEN_STATES.get(state_now) if state_now else None,
        "received_at": view["received_at"],
        # The date told to the citizen holds while the dossier is being processed; a supplement or a
        # payment awaited suspends it (docs/domain.md §3).
        "appointment_at": view.get("appointment_at") if view["state"] == "processing" else None,
        "ended_at": view["ended_at"],
        "missing": view.get("missing") if view["state"] == "awaiting_supplement" else None,
        "steps": [{"type": s["type"], "name": STEPS.get(s["type"], s["type"]), "time": s["time"]}
                  for s in view["history"]],
    }
