"""Vietnamese phone numbers in one written form: what the SMS is sent to and what the citizens' index
keys (shared/personal.py), whatever way the citizen or the one-stop-shop system wrote the number."""

import phonenumbers

# Numbers renumbered in 2018: 11-digit mobile prefixes and their 10-digit successors.
OLD_PREFIXES = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036", "0167": "037", "0168": "038",
    "0169": "039", "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078", "0123": "083",
    "0124": "084", "0125": "085", "0127": "081", "0129": "082", "0186": "056", "0188": "058", "0199": "059",
}


def normalise_phone(raw: str) -> str | None:
    """A Vietnamese mobile number in E.164 (+84…), or None if it is not one."""
    digits = "".join(c for c in raw if c.isdigit() or c == "+")
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) in (11, 12):
        digits = "0" + digits[2:]
    if len(digits) == 11 and digits[:4] in OLD_PREFIXES:
        digits = OLD_PREFIXES[digits[:4]] + digits[4:]
    if len(digits) == 10 and digits.isascii() and digits.isdigit() and digits[0] == "0" != digits[1]:
        # How almost every number is written, and what parse makes of it in 4× its time (tests/unit/test_sms.py).
        number = phonenumbers.PhoneNumber(country_code=84, national_number=int(digits[1:]))
    else:
        try:
            number = phonenumbers.parse(digits, "VN")
        except phonenumbers.NumberParseException:
            return None
    # A type other than UNKNOWN is a valid number's (phonenumbers.is_valid_number asks the same of it).
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE
    ):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
