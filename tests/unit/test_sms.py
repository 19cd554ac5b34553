"""SMS text and recipients (transliteration, parts, phone numbers: docs/domain.md §7), and what the gateways' answers mean."""

import unicodedata

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifications.providers import Kannel, refused
from services.notifications.sms import PLACEHOLDER, cut, encode, is_gsm7, septets, transliterate
from shared.phones import normalise_phone

BASES = {"a": "aăâ", "e": "eê", "i": "i", "o": "oôơ", "u": "uư", "y": "y"}
TONES = ["", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"]  # huyền, sắc, hỏi, ngã, nặng
EVERY_LETTER = [
    (unicodedata.normalize("NFC", vowel + tone), plain)
    for plain, vowels in BASES.items() for vowel in vowels for tone in TONES
]


@pytest.mark.parametrize("letter, plain", EVERY_LETTER + [("đ", "d")], ids=lambda v: v)
def test_every_vietnamese_letter_in_both_cases_and_every_tone(letter, plain):
    assert transliterate(letter) == plain
    assert transliterate(letter.upper()) == plain.upper()


def test_the_domain_example_and_no_question_marks():
    text = "Hồ sơ 000.00.06.H56-231027-0361 đã được tiếp nhận. Ngày hẹn trả: 03/11/2023. Đội ngũ Ủy ban"
    assert transliterate(text) == ("Ho so 000.00.06.H56-231027-0361 da duoc tiep nhan. Ngay hen tra: 03/11/2023. "
                                   "Doi ngu Uy ban")


@given(st.text(alphabet="".join(letter for letter, _ in EVERY_LETTER) + "đĐ ,.:-0123456789" +
               "".join(letter.upper() for letter, _ in EVERY_LETTER)))
def test_any_vietnamese_text_becomes_gsm7(text):
    out = transliterate(text)
    assert is_gsm7(out) and "?" not in out and len(out) == len(text)


@pytest.mark.parametrize("text, ucs2, parts, units", [
    ("a" * 160, False, 1, 160),
    ("a" * 161, False, 2, 161),
    ("a" * 306, False, 2, 306),
    ("a" * 307, False, 3, 307),
    ("{" * 80, False, 1, 160),  # extension characters count two
    ("{" * 81, False, 2, 162),
    ("ệ" * 70, True, 1, 70),
    ("ệ" * 71, True, 2, 71),
    ("ệ" * 134, True, 2, 134),
    ("ệ" * 135, True, 3, 135),
])
def test_parts(text, ucs2, parts, units):
    encoded = encode(text, ucs2=ucs2)
    assert (encoded.parts, encoded.units, encoded.coding) == (parts, units, "ucs2" if ucs2 else "gsm7")


@pytest.mark.parametrize("raw, e164", [
    ("0912345678", "+84912345678"),
    ("091 234 5678", "+84912345678"),
    ("84912345678", "+84912345678"),
    ("+84 912 345 678", "+84912345678"),
    ("0327123456", "+84327123456"),
    ("01663123456", "+84363123456"),  # Viettel 0166 → 036
    ("01283123456", "+84783123456"),  # MobiFone 0128 → 078
    ("01243123456", "+84843123456"),  # VinaPhone 0124 → 084
    ("0241234567", None),  # a landline of Hà Nội: no SMS
    ("12345", None),
    ("not a number", None),
    ("", None),
])
def test_phone_numbers_are_normalised_to_e164(raw, e164):
    assert normalise_phone(raw) == e164


def _by_the_library(digits: str) -> str | None:
    """What phonenumbers makes of a number in full (parse, validity, type): normalise_phone's short way must agree."""
    try:
        number = phonenumbers.parse(digits, "VN")
    except phonenumbers.NumberParseException:
        return None
    mobile = phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if mobile else None


@given(st.from_regex(r"\A0[0-9]{9}\Z"))
def test_ten_digit_numbers_are_judged_as_the_library_judges_them(digits):
    assert normalise_phone(digits) == _by_the_library(digits)


@pytest.mark.parametrize("prefix", [f"0{n:02d}" for n in range(100)])
def test_every_prefix_is_judged_as_the_library_judges_it(prefix):
    for rest in ("0000000", "1234567", "9999999", "5550123"):
        assert normalise_phone(prefix + rest) == _by_the_library(prefix + rest)


@pytest.mark.parametrize("raw", ["09123456７8", "0９12345678", "091234567²", "٠٩١٢٣٤٥٦٧٨"])
def test_digits_other_than_ascii_never_raise(raw):
    assert normalise_phone(raw) == _by_the_library("".join(c for c in raw if c.isdigit() or c == "+"))


@pytest.mark.parametrize("text, sent", [
    ("Thiếu • bản sao ≥ 2", "Thieu * ban sao >= 2"),
    ("中文 😀", "ZhongWen :grinning:"),
    ("a\u200bb\x00c", "abc"),  # invisible characters go
    ("tab\there", "tab here"),
    ("…–—“”‘’", "...--\"\"''"),
    ("`", PLACEHOLDER),  # nothing spells it in GSM-7: a visible placeholder, never an exception
])
def test_any_other_character_gets_its_closest_gsm7_spelling(text, sent):
    assert transliterate(text) == sent


@given(st.text())
def test_any_unicode_becomes_gsm7_without_raising(text):
    out = transliterate(text)
    assert is_gsm7(out)
    assert encode(text).coding == "gsm7"


@given(st.text(), st.integers(min_value=0, max_value=200), st.booleans())
def test_a_cut_field_never_takes_more_than_its_limit(text, limit, ucs2):
    field = cut(text, limit, ucs2)
    assert (len(field.encode("utf-16-be")) // 2 if ucs2 else septets(field)) <= limit


@pytest.mark.parametrize("status, permanent", [
    (400, True), (404, True), (410, True), (413, True), (422, True),  # the message itself is refused
    (401, False), (403, False), (408, False), (429, False), (500, False), (503, False),  # the moment, or our setup
])
def test_a_gateway_refusal_is_permanent_only_when_it_is_about_the_message(status, permanent):
    error = refused("provider", status, "nope")
    assert error.permanent is permanent and str(error) == f"provider answered {status}: nope"


@pytest.mark.parametrize("kind, status", [(1, "delivered"), (2, "failed"), (4, None), (8, "sent"), (16, "failed")])
def test_kannel_says_what_its_delivery_reports_mean(kind, status):
    assert Kannel.report_status(kind) == status
