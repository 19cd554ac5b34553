"""Who may do what on Kafka (docs/security.md, finding 12): each service has a SASL/SCRAM user of its
own, and its ACLs are docs/architecture.md's table: it reads the topics it consumes in its own group
and writes only the topics it publishes and its dead letters. Anything not granted is refused
(`allow.everyone.if.no.acl.found=false`); the admin user, a super user, creates topics and grants.

Topics are granted by their exact names (LITERAL), as the settings name them, so a test run's own
topics (`test-<run>-dossier-events`) get the same grants as `dossier-events`, and a user granted
`dossier-events` reaches neither `dossier-events.dlq` nor another run's topics. Only metrics' names
vary per replica (its group is its pod's name, its dead letters `<topic>.dlq.<group>`): those are
granted by PREFIX (`metrics`, `dossier-status.dlq.metrics`).

`python -m shared.kafka` (deploy/local/up.sh) grants these after creating the topics; the chart gives
the same grants to Strimzi's KafkaUsers (deploy/kubernetes/dossier-tracker/templates/kafka.yaml)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest

from shared.contracts import dead_letter_topic
from shared.kafka import client_options, ensure_topics
from shared.settings import ServiceSettings

ADMIN = "admin"  # the super user (deploy/local/kafka.sh `super.users`)
SERVICES = ("intake", "processing", "metrics", "notifications", "signature")


def password_file(secrets: Path, user: str) -> Path:
    """A Kafka user's password in the local stack's secrets (shared/secrets.py)."""
    return secrets / f"dossier_kafka_password_{user}"


def as_user(user: str, secrets: Path) -> dict[str, str]:
    """The variables that make a process `user` on Kafka, its password read from `secrets`."""
    return {"DOSSIER_KAFKA_USERNAME": user, "DOSSIER_KAFKA_PASSWORD_FILE": str(password_file(secrets, user))}

Operation = Literal["read", "write", "create"]

# The Kafka protocol's codes (org.apache.kafka.common.acl and .resource).
_RESOURCE = {"topic": 2, "group": 3}
_PATTERN = {False: 3, True: 4}  # LITERAL, PREFIXED
_OPERATION = {"read": 3, "write": 4, "create": 5}
_ALLOW = 3


@dataclass(frozen=True)
class Acl:
    """`user` may `operation` the topic or group `name` (every name starting with it, if `prefixed`).
    Read and write imply describe."""

    user: str
    resource: Literal["topic", "group"]
    name: str
    operation: Operation
    prefixed: bool = False


def _reads(user: str, topic: str, group: str, prefixed_group: bool = False) -> list[Acl]:
    return [Acl(user, "topic", topic, "read"), Acl(user, "group", group, "read", prefixed_group)]


def _writes(user: str, topic: str) -> list[Acl]:
    return [Acl(user, "topic", topic, "write")]


def _dead_letters(user: str, topic: str, group: str, prefixed: bool = False) -> list[Acl]:
    """A consumer's `<topic>.dlq.<group>`, which it creates at start (shared/consumer_app.py)."""
    name = dead_letter_topic(topic, group)
    return [Acl(user, "topic", name, "write", prefixed), Acl(user, "topic", name, "create", prefixed)]


def acls(settings: ServiceSettings) -> list[Acl]:
    """The services' grants on the topics `settings` names, with the services' default groups."""
    events, status, rejected = settings.topic_events, settings.topic_status, settings.topic_dlq
    return [
        *_writes("intake", events),
        *_reads("processing", events, "processing"), *_writes("processing", status), *_writes("processing", rejected),
        *_dead_letters("processing", events, "processing"),
        # One group per replica (`metrics`, `metrics-<replica>`, the chart's pod names `<release>-metrics-…`).
        *_reads("metrics", status, "metrics", prefixed_group=True), *_writes("metrics", status),
        *_dead_letters("metrics", status, "metrics", prefixed=True),
        *_reads("notifications", status, "notifications"), *_dead_letters("notifications", status, "notifications"),
        *_reads("signature", events, "signature"), *_writes("signature", status),
        *_dead_letters("signature", events, "signature"),
    ]


async def grant(settings: ServiceSettings, granted: list[Acl]) -> None:
    """Create the ACLs (idempotent: an ACL granted twice is one), as `settings`' user, the admin.
    aiokafka's admin client has no ACL call: its protocol's CreateAcls request, one per ACL."""
    client = AIOKafkaClient(**client_options(settings), client_id="dossier-acls")
    await client.bootstrap()
    try:
        node = client.get_random_node()
        for acl in granted:
            request = CreateAclsRequest(_RESOURCE[acl.resource], acl.name, _PATTERN[acl.prefixed], f"User:{acl.user}",
                                        "*", _OPERATION[acl.operation], _ALLOW)
            response = await client.send(node, request)
            for code, message in response.creation_responses:
                if code:
                    raise for_code(code)(f"{acl}: {message}")
    finally:
        await client.close()


async def prepare(settings: ServiceSettings) -> None:
    """The topics `settings` names, and the services' grants on them, as the admin (`python -m shared.kafka`)."""
    await ensure_topics(settings)
    if settings.kafka_username:
        await grant(settings, acls(settings))
