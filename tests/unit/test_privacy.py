import pytest

from shared.privacy import mask_phone, scrub


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("0912345678", "09******78"),
        ("+84 912 345 678", "84*******78"),
        ("0912.345.678", "09******78"),
        ("01681234567", "01*******67"),
        ("123", "***"),
    ],
)
def test_mask_phone_keeps_two_digits_each_end(phone, masked):
    assert mask_phone(phone) == masked


def test_scrub_masks_phone_fields_and_phones_in_text_but_not_dossier_codes_or_times():
    scrubbed = scrub(
        {
            "applicant": {"phone": "0912345678", "name": "An"},
            "event": "sms to +84912345678 for 000.00.06.H56-231027-0361 at 2025-07-01T08:00:00+07:00",
            "numbers": ["84987654321", 1500000],
        }
    )
    assert scrubbed == {
        "applicant": {"phone": "09******78", "name": "An"},
        "event": "sms to 84*******78 for 000.00.06.H56-231027-0361 at 2025-07-01T08:00:00+07:00",
        "numbers": ["84*******21", 1500000],
    }
