from pathlib import Path

from shared.auth import ApiKey
from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    intake_port: int = 8001
    intake_api_keys: list[ApiKey] = []
    # A JSON file with more keys (a list of ApiKey); `make up` writes one for the local key.
    intake_api_keys_file: Path | None = None
    intake_max_body_bytes: int = 1024 * 1024
    intake_max_batch_events: int = 1000
    # How long a publish may wait for Kafka before the caller gets 503 and retries.
    intake_kafka_timeout_ms: int = 5000
    intake_linger_ms: int = 2
