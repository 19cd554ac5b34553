"""Notifications' pure parts: which SMS a status event asks for, templates, quiet hours."""

import asyncio
from datetime import datetime, time
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.gateway import Asked, recording_gateway
from tests.fixtures.sample import VN
from services.notifications.messages import Body, Message, MessageStatus
from services.notifications.providers import Kannel
from services.notifications.quiet import QuietHours
from services.notifications.settings import NotificationsSettings
from services.notifications.templates import DEFAULT, Template, Templates
from services.notifications.triggers import wanted
from shared.calendar import WorkingCalendar
from shared.contracts import StatusRecord

CAL = WorkingCalendar.load()
QUIET = QuietHours(CAL, time(21, 0), time(7, 0))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=VN)


@pytest.mark.parametrize("now, sent_at", [
    ("2026-03-02 20:59", "2026-03-02 20:59"),
    ("2026-03-02 21:00", "2026-03-03 07:00"),  # a night-time change goes out at 07:00
    ("2026-03-02 23:30", "2026-03-03 07:00"),
    ("2026-03-03 06:59", "2026-03-03 07:00"),
    ("2026-03-03 07:00", "2026-03-03 07:00"),
])
def test_quiet_hours(now, sent_at):
    assert QUIET.not_before(at(now)) == at(sent_at)


def test_over_the_daily_limit_a_message_waits_for_the_next_morning():
    assert QUIET.next_morning(at("2026-03-02 15:00")) == at("2026-03-03 07:00")


def status(old, new, cause="dossier.received", source="urn:dossier-tracker:processing", **data):
    """A status record as its consumers parse it (shared.contracts)."""
    record = {"specversion": "1.0", "id": "s1", "type": "dossier.status_changed", "source": source, "subject": "X",
              "time": "2026-03-02T10:00:00+07:00", "data": {
                  "dossier_code": "X", "commune_code": "14923", "sector": "HT", "procedure_code": "1.001193",
                  "channel": "direct", "online_level": None, "received_at": "2026-03-02T09:00:00+07:00",
                  "old": old, "new": new, "cause": {"id": "e1" if cause != "clock" else None, "type": cause},
                  "events": 1, **data}}
    if source == "urn:dossier-tracker:processing":
        record["data"] |= {"ended_at": None, "withdrawn_at": None, "missing": None, "timeline": [],
                           "applicant": {"phone": "0912345678", "sms_opt_in": True}}
    return TypeAdapter(StatusRecord).validate_python(record)


PROCESSING = {"state": "processing", "due_at": "2026-03-03T10:00:00+07:00", "appointment_at": "2026-03-03T10:00:00+07:00",
              "timeliness": None, "open_state": "within_deadline"}


@pytest.mark.parametrize("old, new, cause, triggers", [
    (None, PROCESSING, "dossier.received", ["received"]),
    (PROCESSING, PROCESSING | {"state": "awaiting_supplement"}, "dossier.supplement_requested",
     ["supplement_requested"]),
    (PROCESSING, PROCESSING | {"state": "resolved"}, "dossier.resolved", ["resolved"]),
    (PROCESSING | {"state": "resolved"}, PROCESSING | {"state": "returned"}, "dossier.returned", ["returned"]),
    (PROCESSING, PROCESSING | {"appointment_at": "2026-03-06T17:00:00+07:00"}, "dossier.apology_issued", ["apology"]),
    (PROCESSING, PROCESSING | {"state": "paused"}, "dossier.obligation_requested", []),
    (PROCESSING, PROCESSING, "dossier.rated", []),
])
def test_which_sms_a_status_change_asks_for(old, new, cause, triggers):
    assert [w.trigger for w in wanted(status(old, new, cause))] == triggers


def test_the_same_step_has_the_same_message_id_and_due_soon_only_when_wanted():
    first, again = wanted(status(None, PROCESSING)), wanted(status(None, PROCESSING))
    assert first[0].message_id == again[0].message_id
    clock = status(PROCESSING, PROCESSING | {"open_state": "due_soon"}, "clock", "urn:dossier-tracker:metrics")
    assert wanted(clock) == [] and [w.trigger for w in wanted(clock, due_soon=True)] == ["due_soon"]


def test_the_default_templates_fit_two_parts_and_a_long_one_is_refused(tmp_path: Path):
    Templates.load()
    raw = yaml.safe_load(DEFAULT.read_text())
    raw["templates"]["received"]["text"] += " Chi tiết: " + "x" * 200
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ValueError, match="template received can need 3 parts"):
        Templates.load(path)
    raw = yaml.safe_load(DEFAULT.read_text())
    raw["brandname"] = "UBND-XA-BA-THUOC"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    with pytest.raises(ValueError, match="brandname"):
        Templates.load(path)


def test_a_ucs2_template_keeps_the_diacritics():
    default = Templates.load()
    templates = Templates(default.brandname, default.centre, 3, 60,
                          {"returned": Template(default.templates["returned"].text, ucs2=True)})
    encoded = templates.render("returned", "000.00.06.H56-231027-0361", "Xã Bá Thước", at("2026-03-03 10:00"))
    assert encoded.coding == "ucs2" and "Hồ sơ" in encoded.text and encoded.parts == 2


@given(st.text(max_size=500), st.sampled_from(["supplement_requested", "received", "apology"]), st.booleans())
def test_any_unicode_in_a_reason_renders_within_the_parts_checked(missing, trigger, ucs2):
    default = Templates.load()
    parts = 3 if ucs2 else default.max_parts  # the default texts take 3 parts with diacritics
    templates = Templates(default.brandname, default.centre, parts, default.missing_max,
                          {trigger: Template(default.templates[trigger].text, ucs2=ucs2)})
    templates.check()
    encoded = templates.render(trigger, "000.00.06.H56-231027-0361", "Xã Bá Thước", at("2026-03-03 10:00"), missing)
    assert encoded.parts <= parts


def test_kannel_is_asked_only_for_the_reports_that_move_a_message():
    """Each report Kannel makes is a request to the service: with every type asked for (dlr-mask 31) a
    message cost three (submitted, buffered, delivered), a fifth of the service's time in a burst."""
    at = datetime(2026, 3, 2, 12, tzinfo=VN)
    message = Message("a" * 32, "step", "code", "14923", "received", at, at, "kannel")

    async def sent() -> list[Asked]:
        async with recording_gateway(202) as gateway:
            kannel = Kannel(NotificationsSettings(environment="local", notifications_kannel_url=gateway.url))
            await kannel.send(message, Body(message.id, "+84912345678", "Ho so", at), "UBND-XA")
            await kannel.close()
            return gateway.asked

    mask = int(asyncio.run(sent())[0].query["dlr-mask"])
    assert [bit for bit in (1, 2, 4, 8, 16) if mask & bit] == [1, 2, 16]
    assert {Kannel.report_status(bit) for bit in (1, 2, 16)} == {MessageStatus.DELIVERED, MessageStatus.FAILED}


@pytest.mark.parametrize(("provider", "set_to", "calls"), [("kannel", None, 100), ("http", None, 40), ("log", None, 40),
                                                            ("kannel", 12, 12), ("http", 150, 150)])
def test_the_calls_at_once_to_the_gateway_are_the_providers_unless_set(provider, set_to, calls):
    """100 at once let a morning burst through Kannel reach ~1,500 SMS/s (40: ~1,050); an aggregator's API,
    whose limits on connections are its own, keeps the 40 it had."""
    settings = NotificationsSettings(environment="local", notifications_provider=provider,
                                     notifications_gateway_concurrency=set_to)
    assert settings.gateway_concurrency() == calls


def test_no_calls_at_once_to_the_gateway_is_refused_at_start():
    """0 made a semaphore no send ever passed."""
    with pytest.raises(ValueError):
        NotificationsSettings(environment="local", notifications_gateway_concurrency=0)
