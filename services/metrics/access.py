"""Who may read the figures (docs/security.md, finding 7): operators, each with a key scoped to provinces
(optionally communes), like the one-stop systems' intake keys.

- The report API takes the key as `Authorization: Bearer`.
- The operators' page takes it once, on its login form, then a session cookie (HttpOnly,
  SameSite=Strict, signed with DOSSIER_METRICS_SESSION_SECRET: any replica reads it).
- Behind an authenticating proxy (oauth2-proxy and the like), the page and the API take the user it
  names in `X-Auth-Request-User` or `X-Forwarded-User`, from the proxies configured only; such a user
  sees every province the replica has (the proxy decides who gets in).
"""

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from shared.auth import ApiKey, ApiKeys, commune_in_scope, province_in_scope
from shared.http import Network, in_networks

SESSION_COOKIE = "phien"
SESSION_SECONDS = 8 * 3600  # a working day
PROXY_USER_HEADERS = ("x-auth-request-user", "x-forwarded-user")


@dataclass(frozen=True)
class Operator:
    """Who reads, and what they may read."""

    name: str
    provinces: frozenset[str] = frozenset({"*"})
    communes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, key: ApiKey) -> "Operator":
        return cls(key.name, frozenset(key.provinces), frozenset(key.communes))

    def sees_province(self, province_code: str) -> bool:
        return province_in_scope(self.provinces, province_code)

    def sees_commune(self, commune_code: str) -> bool:
        return commune_in_scope(self.provinces, self.communes, commune_code)


class Access:
    def __init__(self, keys: ApiKeys, secret: str, proxies: list[Network],
                 clock: Callable[[], float] = time.time):
        self._keys = keys
        self._secret = secret.encode()
        self._proxies = proxies
        self._clock = clock

    def operator(self, request: Request) -> Operator | None:
        """The operator a request comes from: its Bearer key, its session, or its proxy's user."""
        if (key := self._keys.identify(request.headers.get("authorization"))) is not None:
            return Operator.of(key)
        if (name := self._session_name(request.cookies.get(SESSION_COOKIE, ""))) is not None:
            key = self._keys.named(name)
            return Operator.of(key) if key is not None else None
        peer = request.client.host if request.client else ""
        if in_networks(peer, self._proxies):
            user = next((v for h in PROXY_USER_HEADERS if (v := request.headers.get(h, "").strip())), "")
            return Operator(f"proxy:{user[:100]}") if user else None
        return None

    def required(self, request: Request) -> Operator:
        """The report API's dependency: the operator, or 401."""
        found = self.operator(request)
        if found is None:
            raise HTTPException(401, "an operator's key is required", headers={"WWW-Authenticate": "Bearer"})
        return found

    def login(self, key_text: str) -> str | None:
        """The session cookie's value for a valid operator key, or None."""
        key = self._keys.identify(f"Bearer {key_text}")
        if key is None:
            return None
        claim = f"{key.name}|{int(self._clock()) + SESSION_SECONDS}".encode()
        return f"{base64.urlsafe_b64encode(claim).decode()}.{self._sign(claim)}"

    def _session_name(self, cookie: str) -> str | None:
        encoded, _, signature = cookie.partition(".")
        try:
            claim = base64.urlsafe_b64decode(encoded.encode())
        except ValueError:
            return None
        if not signature or not hmac.compare_digest(signature, self._sign(claim)):
            return None
        name, _, expires = claim.decode(errors="replace").rpartition("|")
        return name if expires.isdigit() and int(expires) > self._clock() else None

    def _sign(self, claim: bytes) -> str:
        return hmac.new(self._secret, b"session|" + claim, hashlib.sha256).hexdigest()


def require_province(operator: Operator, province_code: str) -> None:
    if not operator.sees_province(province_code):
        raise HTTPException(403, f"{operator.name} may not read province {province_code}")


def require_commune(operator: Operator, commune_code: str) -> None:
    if not operator.sees_commune(commune_code):
        raise HTTPException(403, f"{operator.name} may not read commune {commune_code}")


def session_cookie(value: str) -> dict[str, Any]:
    """The cookie's attributes: sent back to this site only, never read by a script."""
    return {"key": SESSION_COOKIE, "value": value, "max_age": SESSION_SECONDS, "httponly": True,
            "samesite": "strict", "path": "/"}
