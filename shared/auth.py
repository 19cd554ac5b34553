"""Bearer API keys per one-stop-shop system (intake, notifications' lookup), and the national portal format's
accounts (a username and password per system, intake's /v1/dvcqg). Only hashes are kept; keys are compared by
hash, in constant time; passwords by a salted, slow hash (PBKDF2)."""

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from pathlib import Path

from fastapi import HTTPException
from pydantic import BaseModel, Field

from shared.communes import commune
from shared.events import NOT_A_DOSSIER_CODE, is_dossier_code


class ApiKey(BaseModel):
    """One one-stop-shop system's key: only its SHA-256 is kept, with the sources it may send and the
    places it serves (docs/security.md)."""

    name: str
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sources: list[str] = Field(min_length=1)  # exact `source` values, or "*" for any
    # The provinces (2-digit codes, "*" for all) whose dossiers it may receive: a centre receives for
    # any commune of its province (NĐ 118/2025); `communes`, when given, narrows it to those.
    provinces: list[str] = Field(default=["*"], min_length=1)
    communes: list[str] = []
    # Event types it contributes to other systems' dossiers (a payment gateway's
    # `dossier.payment_completed`, the portal's `dossier.rated`); never a receipt.
    contributes: list[str] = []

    def serves(self, commune_code: str) -> bool:
        """May this key receive (or read) a dossier for `commune_code`?"""
        return commune_in_scope(self.provinces, self.communes, commune_code)


PASSWORD_ITERATIONS = 200_000


def password_hash(password: str, salt: bytes | None = None, iterations: int = PASSWORD_ITERATIONS) -> str:
    """`pbkdf2_sha256$<iterations>$<salt>$<hash>` (base64): what a portal account keeps of its password."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join(("pbkdf2_sha256", str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def password_matches(password: str, hashed: str) -> bool:
    scheme, iterations, salt, digest = hashed.split("$")
    if scheme != "pbkdf2_sha256":
        return False
    presented = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(presented, base64.b64decode(digest))


class PortalAccount(BaseModel):
    """One one-stop-shop system's account for the national portal's format (docs/dvcqg.md): its username, a
    hash of its password, the `source` its records get, and its scope, as an intake key's."""

    name: str
    username: str = Field(min_length=1, max_length=200)
    password_hash: str = Field(pattern=r"^pbkdf2_sha256\$\d+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
    source: str = Field(min_length=1, max_length=256)
    provinces: list[str] = Field(default=["*"], min_length=1)
    communes: list[str] = []
    contributes: list[str] = []

    def serves(self, commune_code: str) -> bool:
        return commune_in_scope(self.provinces, self.communes, commune_code)


def province_in_scope(provinces: Iterable[str], province_code: str) -> bool:
    """A scope's provinces ("*" for all) hold `province_code`."""
    return "*" in provinces or province_code in provinces


def commune_in_scope(provinces: Iterable[str], communes: Iterable[str], commune_code: str) -> bool:
    """A scope (its provinces, and its communes when it lists any) holds `commune_code`."""
    if communes and commune_code not in communes:
        return False
    unit = commune(commune_code)
    return unit is not None and province_in_scope(provinces, unit.province_code)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, keys: list[ApiKey]):
        self._keys = keys

    @classmethod
    def load(cls, keys: list[ApiKey], file: Path | None = None) -> "ApiKeys":
        """The configured keys, and those of a JSON file (a list of ApiKey) if given."""
        keys = list(keys)
        if file is not None:
            keys += [ApiKey.model_validate(k) for k in json.loads(file.read_text())]
        return cls(keys)

    def named(self, name: str) -> ApiKey | None:
        return next((key for key in self._keys if key.name == name), None)

    def identify(self, authorization: str | None) -> ApiKey | None:
        """The key an `Authorization: Bearer <key>` header carries, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        presented = key_hash(token.strip())
        found = None
        for key in self._keys:  # no early exit: every key is compared, whichever matches
            if hmac.compare_digest(presented, key.key_sha256):
                found = key
        return found


def may_send(key: ApiKey, source: str) -> bool:
    return "*" in key.sources or source in key.sources


def require_key(keys: ApiKeys, authorization: str | None) -> ApiKey:
    """The key of an `Authorization: Bearer` header, or 401 (the lookups of notifications and signature)."""
    key = keys.identify(authorization)
    if key is None:
        raise HTTPException(401, "a valid Bearer key is required", headers={"WWW-Authenticate": "Bearer"})
    return key


def require_dossier_code(code: str) -> None:
    """400 unless `code` is a dossier code (the lookups by dossier of processing, notifications, signature)."""
    if not is_dossier_code(code):
        raise HTTPException(400, NOT_A_DOSSIER_CODE)
