"""Configuration common to every service: environment variables prefixed DOSSIER_, and a .env file."""

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service needs to reach the stack. Each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(env_prefix="DOSSIER_", env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    topic_events: str = "dossier-events"
    topic_status: str = "dossier-status"
    topic_dlq: str = "dossier-events.dlq"
    partitions: int = 6  # of the topics the project creates (a topic's count can only grow)
    replication_factor: int = 1  # 1 on the single-broker local stack; 3 in production

    # The working calendar file (docs/contract.md §3); the shipped default when unset.
    calendar: Path | None = None

    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_database: str = "dossiers"

    # Services listen on loopback unless told otherwise (docker-compose sets 0.0.0.0).
    bind_host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
