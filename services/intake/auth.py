"""Bearer API keys per one-stop-shop system. Keys are compared by hash, in constant time."""

import hashlib
import hmac
import json

from services.intake.settings import ApiKey, IntakeSettings


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, keys: list[ApiKey]):
        self._keys = keys

    @classmethod
    def from_settings(cls, settings: IntakeSettings) -> "ApiKeys":
        keys = list(settings.intake_api_keys)
        if settings.intake_api_keys_file is not None:
            raw = json.loads(settings.intake_api_keys_file.read_text())
            keys += [ApiKey.model_validate(k) for k in raw]
        return cls(keys)

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
