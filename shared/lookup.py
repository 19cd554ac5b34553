"""The citizens' lookup of their dossier (docs/contract.md §8): the second factor a citizen has.

- the last 4 digits of the phone given at receipt;
- or a per-dossier token, printed on the receipt as a QR code and put in the receipt SMS: a keyed
  HMAC of the dossier code, so nothing extra is stored and nobody without the key can make one.
"""

import base64
import hashlib
import hmac
import re

PHONE4 = re.compile(r"^[0-9]{4}$")  # ASCII digits only: "١٢٣٤".isdigit() is true in Python
TOKEN = re.compile(r"^[a-z2-7]{16}$")


def lookup_token(secret: str, code: str) -> str:
    digest = hmac.new(secret.encode(), f"lookup|{code}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


def lookup_link(base_url: str, secret: str, code: str) -> str:
    """The page's address with the code and the token: what the QR code and the SMS carry."""
    return f"{base_url}?ma={code}&t={lookup_token(secret, code)}"


def last4(phone: str | None) -> str | None:
    digits = re.sub(r"[^0-9]", "", phone or "")
    return digits[-4:] if len(digits) >= 4 else None
