"""Intake's settings (`DOSSIER_*`, docs/contract.md §3): the shared ones and its own."""

from pathlib import Path

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import Field, model_validator

from pydantic import SecretStr

from shared.auth import ApiKey, PortalAccount
from shared.catalogue import DEFAULT_CATALOGUE
from shared.units import DEFAULT_UNITS
from shared.kafka import MAX_MESSAGE_BYTES, STRUCTURED_HEADERS
from shared.settings import ServiceSettings

# Room for what intake adds to an event on its way to Kafka: `intaketime` and `intakecontributor`.
ATTRIBUTES_BYTES = 1024
LONGEST_KEY = b"000.00.00.H00-000000-0000"  # a dossier code (docs/domain.md §7)


class IntakeSettings(ServiceSettings):
    intake_port: int = 8001
    intake_api_keys: list[ApiKey] = []
    # A JSON file with more keys (a list of ApiKey); `make up` writes one for the local key.
    intake_api_keys_file: Path | None = None
    intake_max_body_bytes: int = 1024 * 1024
    intake_max_batch_events: int = 1000
    # Levels of objects and arrays an event may nest (the event itself is the first): far below what the
    # consumers' parser reads (about 200 levels) and what intake's encoder writes (254).
    intake_max_depth: int = Field(default=32, ge=2, le=128)
    # How long a publish may wait for Kafka before the caller gets 503 and retries.
    intake_kafka_timeout_ms: int = 5000
    intake_linger_ms: int = 2
    # The national portal's sync format (docs/dvcqg.md): accounts (username, password hash, source, scope), also
    # from a JSON file; sessions signed with the secret (any replica checks them) and valid for so long.
    intake_dvcqg_accounts: list[PortalAccount] = []
    intake_dvcqg_accounts_file: Path | None = None
    intake_dvcqg_session_secret: SecretStr = SecretStr("")
    intake_dvcqg_session_seconds: int = Field(default=3600, ge=60, le=86400)
    intake_dvcqg_units_file: Path = DEFAULT_UNITS
    intake_dvcqg_catalogue_file: Path = DEFAULT_CATALOGUE
    # Provinces whose applicants consented to SMS: the format does not say (default: none).
    intake_dvcqg_sms_provinces: list[str] = []
    intake_dvcqg_max_records: int = Field(default=10_000, ge=1)
    intake_dvcqg_max_body_bytes: int = 64 * 1024 * 1024
    # Bodies whose session is not in their first 64 KiB, read at once per replica (docs/security.md).
    intake_dvcqg_late_sessions: int = Field(default=2, ge=1)
    # TraCuuHoSo (docs/dvcqg.md §8): MaHoSo a request, and a minute per system (source), per replica.
    intake_dvcqg_max_lookups: int = Field(default=100, ge=1, le=1000)
    intake_dvcqg_lookups_per_minute: int = Field(default=1200, ge=1)

    def secrets_needed(self) -> list[str]:
        """The citizens' blind index's secret (shared/personal.py), and the portal's session secret once
        portal accounts are configured."""
        portal = self.intake_dvcqg_accounts or self.intake_dvcqg_accounts_file
        return [*super().secrets_needed(), "personal_index_secret",
                *(["intake_dvcqg_session_secret"] if portal else [])]

    @property
    def max_record_bytes(self) -> int:
        """The largest record intake writes: one event of the largest body, with intake's attributes."""
        # A receipt's applicant is sealed as base64 (shared/personal.py): up to 4/3 of what was sent.
        return self.intake_max_body_bytes * 4 // 3 + ATTRIBUTES_BYTES

    @model_validator(mode="after")
    def _records_fit_in_kafka(self) -> "IntakeSettings":
        batch = DefaultRecordBatchBuilder.estimate_size_in_bytes(LONGEST_KEY, bytes(self.max_record_bytes),
                                                                 STRUCTURED_HEADERS)
        if batch > MAX_MESSAGE_BYTES:
            raise ValueError(f"DOSSIER_INTAKE_MAX_BODY_BYTES: an event of {self.intake_max_body_bytes} bytes "
                             f"makes a record of {batch} bytes, more than Kafka takes ({MAX_MESSAGE_BYTES}: "
                             "shared/kafka.py)")
        return self
