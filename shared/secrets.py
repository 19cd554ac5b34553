"""The local stack's secrets: `python -m shared.secrets DIR` writes, once, a random value for each
secret a service or Kannel needs, one file per secret named like its variable in lower case (what
DOSSIER_SECRETS_DIR reads, shared.settings). A file already there is kept. Files are readable by
their owner only. A deployment provides its own (Kubernetes Secrets, docker-compose's setup)."""

import os
import secrets
import sys
from pathlib import Path

from shared.kafka_acls import ADMIN, SERVICES

LOCAL = (
    "dossier_lookup_secret",  # the citizens' lookup token (processing checks, notifications writes)
    "dossier_notifications_dlr_secret",  # signs the delivery-report URLs given to the gateway
    "dossier_notifications_kannel_password",  # Kannel's sendsms user
    "dossier_notifications_mo_secret",  # Kannel's calls with the SMS citizens send
    "dossier_notifications_alert_secret",  # Alertmanager's calls to the officers' webhook
    "dossier_personal_index_secret",  # the citizens' blind index (intake writes, shared.personal reads)
    "dossier_metrics_session_secret",  # signs the operators' page sessions
    "dossier_metrics_scrape_token",  # Prometheus' scrape of the urgent dossiers' codes
    # Kafka's SCRAM users (deploy/local/kafka.sh): the admin (topics, grants, operators' tools) and one
    # per service, each read by its own process alone (DOSSIER_KAFKA_PASSWORD_FILE, deploy/local/services.sh).
    *(f"dossier_kafka_password_{user}" for user in (ADMIN, *SERVICES)),
    "dossier_kafka_password_controller",  # the broker's login to the controller's listener
)


def ensure(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in LOCAL:
        path = folder / name
        if not path.exists() or not path.read_text().strip():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))


if __name__ == "__main__":
    ensure(Path(sys.argv[1]))
