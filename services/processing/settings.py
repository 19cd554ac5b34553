from shared.settings import ServiceSettings


class ProcessingSettings(ServiceSettings):
    processing_port: int = 8002
    processing_group_id: str = "processing"
    processing_max_batch: int = 500
    # Dossiers a replica keeps in memory (a few KB each); a dossier not kept costs a read when it next changes.
    processing_cache_dossiers: int = 20_000
    # Events of a dossier whose `received` never comes go to the dead-letter topic after this.
    processing_waiting_limit_hours: float = 168
    processing_sweep_interval_seconds: float = 60
    # Fault tests only: exit right after the first batch is written, before publishing and committing.
    processing_fault_exit_after_write: bool = False
