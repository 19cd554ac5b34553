"""Every Kafka client is told who it is in one place (shared/kafka.py, docs/security.md finding 12)."""

import asyncio

import pytest
import structlog
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from faststream.security import SASLScram512
from pydantic import ValidationError

from prometheus_client import CollectorRegistry

import shared.kafka
from shared.kafka import broker_security, client_options, started_producer, until_reached
from shared.consumer_app import ConsumerApp
from shared.settings import ServiceSettings


def test_a_user_logs_in_with_scram_sha_512_its_password_read_from_its_file(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-of-processing\n")
    settings = ServiceSettings(kafka_username="processing", kafka_password_file=secret)
    assert client_options(settings) == {
        "bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "processing",
        "sasl_plain_password": "s3cr3t-of-processing"}
    security = broker_security(settings)
    assert isinstance(security, SASLScram512) and not security.use_ssl
    assert (security.username, security.password) == ("processing", "s3cr3t-of-processing")


def test_the_services_broker_logs_in_as_the_services_user():
    settings = ServiceSettings(kafka_username="signature", kafka_password="a-real-password")
    broker = ConsumerApp("signature", settings, CollectorRegistry(), database=False).broker
    security = broker.specification.security
    assert isinstance(security, SASLScram512) and (security.username, security.password) == \
        ("signature", "a-real-password")


def test_outside_the_local_stack_a_client_without_a_user_or_with_a_weak_password_is_refused():
    with pytest.raises(ValueError, match="DOSSIER_KAFKA_USERNAME"):
        client_options(ServiceSettings())
    with pytest.raises(ValidationError, match="DOSSIER_KAFKA_PASSWORD"):
        ServiceSettings(kafka_username="intake", kafka_password="password")
    assert client_options(ServiceSettings(environment="local")) == {"bootstrap_servers": "127.0.0.1:9092"}


async def test_kafka_away_or_refusing_is_tried_again_and_a_refusal_said_as_an_error(monkeypatch):
    pause = asyncio.sleep
    monkeypatch.setattr(shared.kafka.asyncio, "sleep", lambda _seconds: pause(0))
    failures = [KafkaConnectionError("away"), SaslAuthenticationFailed("wrong password")]

    async def work():
        if failures:
            raise failures.pop(0)
        return "done"

    with structlog.testing.capture_logs() as logs:
        assert await until_reached(work, "test") == "done"
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("warning", "test: kafka not reachable, retrying"), ("error", "test: kafka refused it, retrying")]


async def test_a_producer_that_failed_to_start_is_stopped_before_the_next_try(monkeypatch):
    pause = asyncio.sleep
    monkeypatch.setattr(shared.kafka.asyncio, "sleep", lambda _seconds: pause(0))
    producers = []

    class Producer:
        def __init__(self, **options):
            self.options, self.stopped = options, False
            producers.append(self)

        async def start(self):
            if len(producers) < 3:
                raise KafkaConnectionError("away")

        async def stop(self):
            self.stopped = True

    monkeypatch.setattr(shared.kafka, "AIOKafkaProducer", Producer)
    producer = await started_producer(ServiceSettings(environment="local"), "test", linger_ms=5)
    assert producer is producers[2] and [p.stopped for p in producers] == [True, True, False]
    assert producer.options["acks"] == "all" and producer.options["linger_ms"] == 5
