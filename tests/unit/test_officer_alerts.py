"""The officers' alerts (services/notifications/alerts.py): what an Alertmanager notification says,
the SMS text, the officers' setting, and any JSON refused as a ValueError (a 4xx), never anything else."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.notifications.alerts import AtRisk, Notification, at_risk, load_officers, text
from services.notifications.settings import NotificationsSettings
from services.notifications.sms import encode
from shared.communes import communes

CODES = [f"000.00.38.H56-260302-{n:04d}" for n in range(1, 8)]


def notification(status="firing", commune="14923", **annotations) -> dict:
    """A notification as Alertmanager sends it for the route of deploy/alertmanager/alertmanager.yml."""
    labels = {"alertname": "DossiersOverdue", "commune": commune, "severity": "warning"}
    return {"receiver": "commune-officers", "status": status, "version": "4",
            "groupKey": '{}/{alertname=~"^(?:DossiersOverdue|DossiersDueSoon)$"}:{alertname="DossiersOverdue", '
                        f'commune="{commune}"}}',
            "groupLabels": {"alertname": "DossiersOverdue", "commune": commune}, "commonLabels": labels,
            "commonAnnotations": annotations, "externalURL": "http://127.0.0.1:9093", "truncatedAlerts": 0,
            "alerts": [{"status": status, "labels": labels, "annotations": annotations,
                        "startsAt": "2026-03-02T09:00:00+07:00", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "0f1e2d3c4b5a6978"}]}


def parsed(payload: dict) -> AtRisk | None:
    return at_risk(Notification.model_validate_json(json.dumps(payload)))


def test_a_notification_gives_the_counts_and_the_first_five_codes_overdue_first():
    risk = parsed(notification(overdue="3", due_soon="2", dossiers=" ".join(CODES) + " "))
    assert risk == AtRisk("14923", 3, 2, CODES[:5])
    encoded = encode(text("Xã Bá Thước", risk))
    assert encoded.text == ("3 ho so qua han tai Xa Ba Thuoc, 2 sap den han trong 24 gio. Ma: "
                            + ", ".join(CODES[:5]) + ".")
    assert encoded.parts == 2


def test_due_soon_alone_and_no_code_read_as_well():
    risk = parsed(notification(overdue="0", due_soon="1e+00"))
    assert encode(text("Phường Hạc Thành", risk)).text == "1 ho so sap den han trong 24 gio tai Phuong Hac Thanh."


def test_a_resolved_group_asks_for_nothing():
    assert parsed(notification(status="resolved", overdue="3")) is None


@pytest.mark.parametrize("change", [
    lambda n: n.pop("groupKey"),
    lambda n: n.update(version="3"),
    lambda n: n.update(alerts=[]),
    lambda n: n["groupLabels"].pop("commune"),
    lambda n: n["groupLabels"].update(commune="99999"),  # not a commune
    lambda n: n["alerts"][0]["labels"].update(commune="14797"),  # not the group's
    lambda n: n["alerts"][0]["annotations"].update(overdue="-1"),
    lambda n: n["alerts"][0]["annotations"].update(overdue="2.5"),
    lambda n: n["alerts"][0]["annotations"].update(overdue="NaN"),
    lambda n: n["alerts"][0]["annotations"].update(overdue="0"),  # fires, counts nothing
    lambda n: n["alerts"][0]["annotations"].update(dossiers="0912345678"),
])
def test_what_is_not_one_communes_dossiers_at_risk_is_refused(change):
    payload = notification(overdue="1", dossiers=CODES[0])
    change(payload)
    with pytest.raises(ValueError):
        parsed(payload)


def test_the_longest_sms_takes_at_most_two_parts():
    longest = max((c.name for c in communes().values()), key=len)
    worst = AtRisk("14923", 99_999, 99_999, ["000.00.00.H00-000000-0000"] * 5)
    assert encode(text(longest, worst)).parts <= 2


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                    max_leaves=20)


def mutated(base: dict, path: list[str], value) -> dict:
    payload = json.loads(json.dumps(base))
    node = payload
    for key in path[:-1]:
        node = node[key] if not isinstance(node, list) else node[0]
    if isinstance(node, dict):
        node[path[-1]] = value
    return payload


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    JSON,
    st.binary(max_size=200),
    st.tuples(st.sampled_from([["status"], ["groupKey"], ["groupLabels", "commune"], ["alerts"],
                               ["alerts", "0", "labels"], ["alerts", "0", "annotations", "overdue"],
                               ["alerts", "0", "annotations", "dossiers"], ["version"]]), JSON)
    .map(lambda c: mutated(notification(overdue="2", dossiers=CODES[0]), *c)),
))
def test_any_json_or_bytes_is_a_notification_or_a_value_error(payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        parsed_ = at_risk(Notification.model_validate_json(body))
    except ValueError:
        return
    assert parsed_ is None or parsed_.commune_code in communes()


def officers(**values) -> NotificationsSettings:
    return NotificationsSettings(environment="local", **values)


def test_the_officers_setting_and_its_file_are_read_together_as_e164(tmp_path):
    listed = tmp_path / "officers.json"
    listed.write_text(json.dumps({"14923": ["+84 912 000 002"], "14797": ["0988000003"]}))
    found = load_officers(officers(notifications_officers={"14923": ["0912000001", "84912000001"]},
                                   notifications_officers_file=listed))
    assert found == {"14923": ["+84912000001", "+84912000002"], "14797": ["+84988000003"]}


@pytest.mark.parametrize("values", [{"99999": ["0912000001"]}, {"14923": ["12345"]}])
def test_an_unknown_commune_or_a_number_that_is_not_a_mobile_stops_the_service_without_showing_it(values):
    with pytest.raises(ValueError) as refused:
        load_officers(officers(notifications_officers=values))
    assert "12345" not in str(refused.value)


def test_outside_the_local_stack_officers_need_the_alert_secret():
    with pytest.raises(ValueError, match="DOSSIER_NOTIFICATIONS_ALERT_SECRET"):
        NotificationsSettings(environment="production", notifications_officers={"14923": ["0912000001"]},
                              notifications_dlr_secret=SecretStr("x" * 24), lookup_secret=SecretStr("y" * 24))
