"""Replies to the SMS a citizen sends to the brandname number (MO, tra cứu qua SMS): "HS <code>"
gets where the dossier stands and its appointment, without diacritics, in one SMS part, but only
when it comes from the phone given at receipt. Anything else (another number, an unknown code, junk
in any encoding) gets the same neutral reply, so that nobody learns which codes exist.

Pure but the rate limit's memory: the caller looks the dossier up and sends what `reply` says.
"""

import hmac
import re
import time
from datetime import datetime
from typing import Any

from services.notifications.sms import cut
from shared.calendar import WorkingCalendar
from shared.events import is_dossier_code
from shared.labels import STATES
from shared.ratelimit import Windows
from shared.mongo import as_utc

# A TT 01/2018 code anywhere in the text ("HS 000.00.38.H56-250701-0001", "hs000.00...", the code alone).
CODE = re.compile(r"[0-9A-Z]{3}\.[0-9A-Z]{2}\.[0-9A-Z]{2}\.[A-Z][0-9A-Z]{2}-[0-9]{6}-[0-9]{4}")
NEUTRAL = "Khong tim thay ho so theo ma va so dien thoai nay. Vui long kiem tra ma tren giay tiep nhan ho so."


def mo_token_ok(secret: str, token: str) -> bool:
    """Whether the gateway's call carries the shared secret (in constant time); never with no secret,
    which an empty token would match."""
    return bool(secret) and hmac.compare_digest(token.encode(), secret.encode())


def code_in(text: str) -> str | None:
    found = CODE.search(text.upper()[:1000])
    return found.group(0) if found and is_dossier_code(found.group(0)) else None


def reply(code: str, standing: dict[str, Any], calendar: WorkingCalendar) -> str:
    """Where the dossier stands, in one GSM-7 part."""
    text = f"Ho so {code}: {STATES[standing['state']]}."
    appointment = standing.get("appointment_at")
    if appointment and standing["state"] == "processing":  # a supplement or a payment awaited suspends it
        when = appointment if isinstance(appointment, datetime) else datetime.fromisoformat(appointment)
        text += f" Ngay hen tra ket qua: {calendar.local(as_utc(when)):%d/%m/%Y}."
    return cut(text, 160)


class PerNumber:
    """At most `limit` replies per number (its hash) an hour, in memory."""

    def __init__(self, limit: int, clock: Any = time.monotonic):
        self._sent = Windows(limit, 3600.0, clock)

    def allow(self, number: str) -> bool:
        if self._sent.wait(number) is not None:
            return False
        self._sent.add(number)
        return True
