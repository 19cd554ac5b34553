from pathlib import Path

from shared.auth import ApiKey
from shared.settings import ServiceSettings


class SignatureSettings(ServiceSettings):
    signature_port: int = 8005
    signature_group_id: str = "signature"
    # A folder of PEM files: the CAs a result's signer must chain to (national root, VNPT-CA, ...).
    signature_trust_roots: Path | None = None
    signature_max_bytes: int = 20 * 1024 * 1024  # an upload or a fetched document
    signature_fetch_timeout_seconds: float = 10
    signature_api_keys: list[ApiKey] = []
    signature_api_keys_file: Path | None = None
