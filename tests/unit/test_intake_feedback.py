"""Intake's scope for a PAKN's forwarding (security review): a key forwards a PAKN only to a unit of the
units file in a commune it serves, else 403 and nothing reaches Kafka."""

import orjson
import pytest

from tests.unit.test_intake_binary_mode import PROVINCE_KEY, Intake


@pytest.fixture(scope="module")
def intake() -> Intake:
    return Intake()


def forwarded(to_unit: str) -> bytes:
    return orjson.dumps({"specversion": "1.0", "id": f"fw-{to_unit}", "source": "urn:motcua:38",
                         "type": "feedback.forwarded", "subject": "PAKN-38-0001", "time": "2025-07-02T09:00:00+07:00",
                         "data": {"from_unit": "923.14.00.H38", "to_unit": to_unit}})


@pytest.mark.parametrize("to_unit, status, says", [
    ("923.14.00.H38", 202, None),  # Bá Thước's centre: Thanh Hóa's key serves it
    ("152.08.00.H25", 403, "may not forward PAKN to communes 08152"),  # Thanh Ba, Phú Thọ: another province
    ("Phòng không có thật", 403, "unknown unit"),  # a unit the units file does not know: counted nowhere
])
def test_a_forwarding_goes_only_to_a_known_unit_the_key_serves(intake, to_unit, status, says):
    answer, written = intake.recorded(forwarded(to_unit), {"authorization": f"Bearer {PROVINCE_KEY}",
                                                          "content-type": "application/cloudevents+json"})
    assert answer.status_code == status, answer.text
    assert (written is None) == (status != 202)
    if says:
        assert says in answer.json()["error"]
