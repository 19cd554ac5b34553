"""Personal data (Nghị định 13/2023/NĐ-CP): phone numbers never leave a service unmasked."""

import re
from typing import Any

# Vietnamese phone numbers as they appear in the wild: 0912345678, 0912.345.678, 84912345678,
# +84 912 345 678, old 11-digit 01xx numbers. Dashes are not separators: dossier codes use them.
_PHONE = re.compile(r"(?<![\w.+-])(?:\+?84|0)(?:[ .]?\d){8,10}(?![\w])")


def mask_phone(phone: str) -> str:
    """Keep the first two and the last two digits: '0912345678' -> '09******78'."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def _mask_match(match: re.Match[str]) -> str:
    return mask_phone(match.group(0))


def scrub(value: Any, key: str = "") -> Any:
    """Mask phone numbers anywhere in a log event: under keys that name a phone, or in free text."""
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, key) for v in value]
    if isinstance(value, str):
        if "phone" in key.lower():
            return mask_phone(value)
        return _PHONE.sub(_mask_match, value)
    return value
