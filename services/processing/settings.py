"""Processing's settings (`DOSSIER_*`, docs/contract.md §3): the shared ones and its own."""

from pathlib import Path

from pydantic import Field, IPvAnyNetwork

from shared.auth import ApiKey
from shared.settings import ServiceSettings
from shared.units import DEFAULT_UNITS


class ProcessingSettings(ServiceSettings):
    processing_port: int = 8002
    processing_group_id: str = "processing"
    # Events a batch takes at most. A batch's writes and acknowledgements are waited for in turn: under load a
    # larger batch carries more events a round (bench-e2e, 30 s at 2,500 events/s: p99 489 ms, 4.4 s with 500).
    processing_max_batch: int = 2000
    # Links keep their status records as JSON instead of text: faster and smaller (services/processing/history.py
    # `Outgoing.to_doc`), read by this version on, not by one before 2026-12-06: turned on once every replica runs
    # this version (a rolling update, or a rollback, would otherwise have an older replica fail on them).
    processing_link_records_as_json: bool = False
    # The memory a replica keeps dossiers in (services/processing/store.py: a seven-step dossier holds about
    # 32 KB, so 128 MiB keep about 4,000); a dossier not kept costs a few key reads when it next changes.
    processing_cache_mib: float = Field(default=128, gt=0)
    # Events of a dossier whose `received` never comes go to the dead-letter topic after this.
    processing_waiting_limit_hours: float = 168
    # Events a dossier keeps (a real one has a few dozen): further ones go to the dead-letter topic,
    # so that no sender can grow one dossier, and the memory and documents that hold it, without bound.
    processing_max_events_per_dossier: int = 1000
    processing_sweep_interval_seconds: float = 60
    # How often the keys of dossiers past retention (DOSSIER_PERSONAL_RETENTION_DAYS) are erased: day by
    # day, from the last day swept (shared/personal.py); the first run is at start.
    processing_retention_sweep_interval_seconds: float = 3600
    # Operators' keys for the full dossier view (GET /v1/dossiers/{code}): hashes only, like intake's.
    processing_operator_keys: list[ApiKey] = []
    processing_operator_keys_file: Path | None = None
    # The citizens' lookup: attempts per client address a minute (per replica), and wrong guesses of
    # the 4 digits per dossier code and per (client, code) an hour, shared by the replicas (4 digits
    # are 10,000 guesses: a code is locked long before; the receipt's QR token never is).
    processing_lookup_per_client_per_minute: int = 30
    processing_lookup_failures_per_code_per_hour: int = 10
    processing_lookup_failures_per_client_code_per_hour: int = 5
    # Proxies (addresses or networks, e.g. an ingress's) whose X-Forwarded-For names the client;
    # from any other peer the header is ignored.
    processing_trusted_proxies: list[IPvAnyNetwork] = []
    # Agencies and their communes (shared/units.py): the commune of the unit a PAKN is forwarded to
    # (docs/domain.md §9); read again when the file changes.
    processing_units_file: Path = DEFAULT_UNITS

    def secrets_needed(self) -> list[str]:
        return ["lookup_secret"]
