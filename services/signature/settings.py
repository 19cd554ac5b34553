"""The signature service's settings (`DOSSIER_*`, docs/contract.md §3): the shared ones and its own."""

from pathlib import Path

from pydantic import SecretStr

from shared.auth import ApiKey
from shared.settings import ServiceSettings


class SignatureSettings(ServiceSettings):
    signature_port: int = 8005
    signature_group_id: str = "signature"
    # A folder of PEM files: the CAs a result's signer must chain to (national root, VNPT-CA, ...).
    signature_trust_roots: Path | None = None
    signature_max_bytes: int = 20 * 1024 * 1024  # an upload or a fetched document (its bytes as sent)
    # One deadline for a document_url's fetch: resolving, connecting, the headers and the whole body.
    signature_fetch_timeout_seconds: float = 10
    # Hosts (names or addresses) a document_url may name even when they resolve to loopback, private or
    # link-local addresses: a one-stop system's internal document store. Any other host must resolve to
    # public addresses only (SSRF: docs/security.md).
    signature_fetch_allowed_hosts: list[str] = []
    # Fetches a replica holds, queued in memory (tasks of a few KB each) and claimed in the store as its own; beyond,
    # a fetch waits in the store as anyone's, taken up by the first replica with its queue at most half full.
    signature_fetches_queued: int = 10_000
    # The agency's seal (optional): a PKCS#12 file, or a PKCS#11 library with a token, a key label and
    # the seal's certificate (PEM, then its CA chain). The password is the file's or the token PIN.
    signature_seal_pkcs12: Path | None = None
    signature_seal_pkcs11_lib: Path | None = None
    signature_seal_token_label: str | None = None
    signature_seal_key_label: str | None = None
    signature_seal_cert: Path | None = None
    signature_seal_password: SecretStr | None = None
    # Who uploads and lists (a one-stop system's key, usually its intake key).
    signature_api_keys: list[ApiKey] = []
    signature_api_keys_file: Path | None = None
    # Who may ask for the seal: keys of their own, in the same format, apart from the API keys; a key's
    # `sources` and `provinces` (`communes`) are the dossiers whose results it may seal. None: nobody.
    signature_seal_keys: list[ApiKey] = []
    signature_seal_keys_file: Path | None = None

    def secrets_needed(self) -> list[str]:
        sealing = self.signature_seal_pkcs12 or self.signature_seal_pkcs11_lib
        return ["signature_seal_password"] if sealing else []
