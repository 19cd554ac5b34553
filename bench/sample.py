"""Valid sample events of every type, for tests, benchmarks and the small demo."""

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
SOURCE = "urn:motcua:38"

SAMPLE_DATA: dict[str, dict[str, Any]] = {
    "dossier.received": {
        "commune_code": "14923",
        "procedure_code": "1.001193",
        "procedure_name": "Đăng ký khai sinh",
        "sector": "HT",
        "channel": "online",
        "online_level": "full",
        "processing_time": {"value": 1, "unit": "working_days"},
        "applicant": {"name": "Nguyễn Văn An", "phone": "0912345678", "sms_opt_in": True},
        "fee": {"amount": 0},
    },
    "dossier.transferred": {"from_unit": "Bộ phận một cửa", "to_unit": "Công chức Tư pháp - Hộ tịch"},
    "dossier.supplement_requested": {"reason": "Thiếu bản sao giấy chứng sinh"},
    "dossier.supplement_received": {},
    "dossier.obligation_requested": {"amount": 50000},
    "dossier.obligation_fulfilled": {},
    "dossier.withdrawn": {"reason": "Công dân rút hồ sơ"},
    "dossier.stopped": {"reason": "Hồ sơ không đủ điều kiện"},
    "dossier.resolved": {"outcome": "approved"},
    "dossier.returned": {"method": "online"},
    "dossier.signature_requested": {"document_id": "KQ-1", "signer": "Chủ tịch UBND xã"},
    "dossier.signed": {"document_id": "KQ-1", "document_sha256": "ab" * 32},
    "dossier.payment_completed": {"method": "online", "amount": 50000},
    "dossier.digitized": {"scope": "input"},
    "dossier.rated": {"rating": "very_satisfied"},
    "dossier.apology_issued": {"new_due_at": "2025-07-10T17:00:00+07:00", "reason": "Cần xác minh thêm"},
}

_sequence = itertools.count(1)


def dossier_code(day: datetime | None = None, sequence: int | None = None, unit: str = "000.00.38.H56") -> str:
    """A TT 01/2018 dossier code: receiving unit, YYMMDD, 4-digit daily sequence."""
    day = day or datetime(2025, 7, 1, tzinfo=VN)
    seq = next(_sequence) if sequence is None else sequence
    return f"{unit}-{day:%y%m%d}-{seq % 10000:04d}"


def event(
    type_: str,
    subject: str | None = None,
    time: datetime | None = None,
    id_: str | None = None,
    **data: Any,
) -> dict[str, Any]:
    """One valid CloudEvent as the one-stop-shop system would send it; `data` overrides the sample."""
    return {
        "specversion": "1.0",
        "id": id_ or str(uuid.uuid4()),
        "source": SOURCE,
        "type": type_,
        "subject": subject or dossier_code(),
        "time": (time or datetime(2025, 7, 1, 9, 0, tzinfo=VN)).isoformat(),
        "datacontenttype": "application/json",
        "data": SAMPLE_DATA[type_] | data,
    }


def dossier_history(subject: str, received_at: datetime) -> list[dict[str, Any]]:
    """A plain dossier's life: received, transferred, digitized, resolved, paid, returned, rated."""
    steps = [
        ("dossier.received", timedelta(0)),
        ("dossier.digitized", timedelta(minutes=5)),
        ("dossier.transferred", timedelta(minutes=30)),
        ("dossier.resolved", timedelta(hours=3)),
        ("dossier.payment_completed", timedelta(hours=3, minutes=10)),
        ("dossier.returned", timedelta(hours=4)),
        ("dossier.rated", timedelta(hours=4, minutes=5)),
    ]
    return [event(t, subject=subject, time=received_at + offset) for t, offset in steps]
