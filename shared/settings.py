"""Configuration common to every service: environment variables prefixed DOSSIER_, a .env file, and
secret files (one per secret, named like its variable in lower case, e.g. `dossier_lookup_secret`) in
the folder DOSSIER_SECRETS_DIR names: `make up` writes the local stack's under .local/secrets/ once;
a deployment mounts its Secrets there (or passes them as variables)."""

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import Clock

# Values that are nobody's secret: refused outside the local stack, as an empty one is.
WEAK = frozenset({"", "change-me", "changeme", "dossier", "secret", "password", "admin"})


class ServiceSettings(BaseSettings):
    """What every service needs to reach the stack. Each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_prefix="DOSSIER_", env_file=".env", extra="ignore")

    # `local`: the development stack and the tests, where empty secrets are accepted. Anything else is a
    # deployment: a service refuses to start while a secret it needs is empty or a well-known value.
    environment: Literal["local", "production"] = "production"
    # The folder of secret files (read first, by __init__: the module docstring).
    secrets_dir: Path | None = None

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Who this service is to Kafka (docs/security.md, finding 12): its own SASL/SCRAM user, whose ACLs
    # let it read and write only its own topics. Every client takes these through shared/kafka.py
    # `client_options`. Empty: no authentication, which only the local stack's tests of an
    # unauthenticated broker may use; a client refuses to start without a user outside it.
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    # The password's file, read when a client is built, instead of kafka_password: the local stack gives
    # each service a user of its own, while every service reads the one DOSSIER_SECRETS_DIR.
    kafka_password_file: Path | None = None
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    topic_events: str = "dossier-events"
    topic_status: str = "dossier-status"
    topic_dlq: str = "dossier-events.dlq"
    partitions: int = 6  # of the topics the project creates (a topic's count can only grow)
    replication_factor: int = 1  # 1 on the single-broker local stack; 3 in production

    # The working calendar file (docs/contract.md §3); the shipped default when unset.
    calendar: Path | None = None
    # The official commune list's file (shared/communes.py `use_list`); the shipped list when unset.
    communes_file: Path | None = None

    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_database: str = "dossiers"

    # Keys the citizens' lookup token of a dossier (the QR code on the receipt, the SMS link): processing
    # checks it, notifications writes it. Services that use it list it in `secrets_needed`.
    lookup_secret: SecretStr = SecretStr("")
    # Personal data (shared/personal.py, docs/security.md "Retention of personal data"): the blind index's
    # key (a citizen's dossiers by a keyed hash of their number: intake writes, the export/erase command
    # reads), and the days a dossier's applicant stays readable after its end, when its key is erased; a dossier
    # open with no change for `personal_idle_days` is abandoned: its key goes `personal_retention_days` later.
    personal_index_secret: SecretStr = SecretStr("")
    personal_retention_days: float = 90
    personal_idle_days: float = Field(365, ge=30)  # shorter would erase the key of a dossier merely slow

    # The citizens' lookup page, as the receipt and the SMS give it.
    lookup_url: str = "http://127.0.0.1:8002/tra-cuu"

    # Services listen on loopback unless told otherwise (docker-compose sets 0.0.0.0).
    bind_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # The cyclic garbage collector's young generation, in container objects allocated (shared/http.py:serve).
    gc_young_threshold: int = Field(50_000, ge=700)

    # Unexpected handling failures a partition may dead-letter before it stops (shared/failures.py): so
    # many in a row, or more than this share of the last `dlq_window` records; a stopped partition is
    # tried again every `dlq_retry_seconds` from where it stopped.
    dlq_max_consecutive: int = 10
    dlq_max_ratio: float = 0.5
    dlq_window: int = 100
    dlq_retry_seconds: float = 30

    # The services' clock (shared/clock.py): the real one moved by this many seconds, so that a test or
    # a rehearsal runs the whole stack at another instant. The local stack only: a deployment is on time.
    clock_offset_seconds: float = 0

    @property
    def clock(self) -> Clock:
        return Clock(timedelta(seconds=self.clock_offset_seconds))

    def __init__(self, **values: Any):
        secrets = os.environ.get("DOSSIER_SECRETS_DIR")
        super().__init__(**({"_secrets_dir": secrets} if secrets else {}), **values)

    def environment_variables(self) -> dict[str, str]:
        """These settings as the variables that set them, secrets in clear when set: what a test or a
        benchmark gives the services it starts."""
        out = {}
        for name, value in self.model_dump(mode="json").items():
            if isinstance(secret := getattr(self, name), SecretStr):
                value = secret.get_secret_value() or None
            if value is not None:
                out[f"DOSSIER_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return out

    def secrets_needed(self) -> list[str]:
        """The secret fields this service cannot run without, as configured."""
        return []

    def kafka_secret(self) -> str:
        """The Kafka user's password: its file's content when a file is named."""
        if self.kafka_password_file is not None:
            return self.kafka_password_file.read_text().strip()
        return self.kafka_password.get_secret_value()

    @model_validator(mode="after")
    def _no_weak_secret_outside_the_local_stack(self) -> "ServiceSettings":
        if self.environment == "local":
            return self
        if self.clock_offset_seconds:
            raise ValueError("DOSSIER_CLOCK_OFFSET_SECONDS: a moved clock is for the local stack and the tests "
                             "(DOSSIER_ENVIRONMENT=local)")
        weak = [name for name in self.secrets_needed()
                if (value := getattr(self, name)) is None or value.get_secret_value().strip().lower() in WEAK]
        if self.kafka_username and self.kafka_secret().lower() in WEAK:
            weak.append("kafka_password_file" if self.kafka_password_file else "kafka_password")
        if weak:
            names = ", ".join(f"DOSSIER_{name.upper()}" for name in weak)
            raise ValueError(f"{names}: empty or a well-known value; outside the local stack "
                             "(DOSSIER_ENVIRONMENT=local) every secret must be set")
        return self
