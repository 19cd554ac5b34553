"""The official CloudEvents SDK as a real client of the real intake (docs/contract.md §1.1): what it sends in
binary mode is on `dossier-events` as the same record as what it sends in structured mode, and processing
folds it the same."""

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http as sdk
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1.conversion import to_binary as v1_to_binary
from cloudevents.v1.conversion import to_structured as v1_to_structured
from cloudevents.v1.http import CloudEvent as V1CloudEvent

from tests.fixtures.sample import VN, dossier_code, dossier_history
from tests.integration.conftest import ANY_SOURCE_KEY, end_offsets, read_topic
from tests.integration.test_intake import opened
from tests.integration.test_processing import wait_for_states

AUTH = {"authorization": f"Bearer {ANY_SOURCE_KEY}"}
Message = tuple[dict[str, str], bytes]


def sdk_binary(sent: dict[str, Any]) -> Message:
    """The SDK's current API (cloudevents.core): attributes percent-encoded into ce-* headers."""
    message = sdk.to_binary_event(CloudEvent(*_attributes_and_data(sent, parse_time=True)))
    return message.headers, message.body


def sdk_structured(sent: dict[str, Any]) -> Message:
    message = sdk.to_structured_event(CloudEvent(*_attributes_and_data(sent, parse_time=True)))
    return message.headers, message.body


def sdk_1x_binary(sent: dict[str, Any]) -> Message:
    """The SDK 1.x API (`cloudevents.http` there, `cloudevents.v1` in 2.x), what most examples still use."""
    return v1_to_binary(V1CloudEvent(*_attributes_and_data(sent, parse_time=False)))


def sdk_1x_structured(sent: dict[str, Any]) -> Message:
    return v1_to_structured(V1CloudEvent(*_attributes_and_data(sent, parse_time=False)))


def _attributes_and_data(sent: dict[str, Any], parse_time: bool) -> tuple[dict[str, Any], Any]:
    attributes = {name: value for name, value in sent.items() if name != "data"}
    if parse_time:  # the current API takes `time` as a datetime
        attributes["time"] = datetime.fromisoformat(attributes["time"])
    return attributes, sent.get("data")


def post(intake, message: Message) -> httpx.Response:
    headers, body = message
    return httpx.post(f"{intake.url}/v1/events", content=body, headers=headers | AUTH, timeout=30)


@pytest.mark.parametrize(("binary", "structured"), [(sdk_binary, sdk_structured), (sdk_1x_binary, sdk_1x_structured)],
                         ids=["sdk", "sdk-1x-api"])
def test_the_sdks_binary_events_are_on_the_topic_as_its_structured_ones(
        intake, settings, binary: Callable[[dict], Message], structured: Callable[[dict], Message]):
    code = dossier_code(datetime(2025, 7, 8, tzinfo=VN))
    history = dossier_history(code, datetime(2025, 7, 8, 8, 0, tzinfo=VN))
    history[0]["partner"] = "urn:partner:vnpost"  # an extension attribute: a ce-partner header
    before = asyncio.run(end_offsets(settings, settings.topic_events))

    for sent in history:
        binary_message, structured_message = binary(sent), structured(sent)
        assert any(name.startswith("ce-") for name in binary_message[0])  # binary mode indeed
        for message in (binary_message, structured_message):
            answer = post(intake, message)
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"accepted": 1}

    records = asyncio.run(read_topic(settings, settings.topic_events, since=before))
    assert len(records) == 2 * len(history)
    for record in records:
        assert dict(record.headers) == {"content-type": b"application/cloudevents+json"}
        assert record.key.decode() == code
    written = [opened(settings, json.loads(r.value)) for r in records]  # receipts sealed (finding 6)
    for event in written:
        assert settings.clock() - datetime.fromisoformat(event.pop("intaketime")) < timedelta(minutes=1)
    # One partition per dossier: in the order posted, each binary event then its structured twin.
    assert written == [sent for sent in history for _twice in range(2)]


def test_processing_folds_a_dossier_sent_in_binary_mode_as_one_sent_structured(pipeline):
    processing = pipeline.add_processing().start()
    received = datetime(2025, 7, 9, 8, 0, tzinfo=VN)
    sent_by = {dossier_code(received, sequence=n): send for n, send in
               enumerate((sdk_binary, sdk_1x_binary, sdk_structured), start=4200)}
    histories = {code: dossier_history(code, received) for code in sent_by}

    for code, send in sent_by.items():
        for sent in histories[code]:
            answer = post(pipeline.intake, send(sent))
            assert answer.status_code == 202, answer.text

    wait_for_states(processing, histories)  # each as the reducer folds its events
