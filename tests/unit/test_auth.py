import pytest

from shared.auth import ApiKeys, key_hash, may_send
from services.intake.settings import IntakeSettings
from shared.auth import ApiKey

PROVINCE_38 = ApiKey(name="thanh-hoa", key_sha256=key_hash("k38"), sources=["urn:motcua:38"])
ANY = ApiKey(name="national", key_sha256=key_hash("kall"), sources=["*"])


def test_a_bearer_key_is_identified_by_its_hash():
    keys = ApiKeys([PROVINCE_38, ANY])
    assert keys.identify("Bearer k38") == PROVINCE_38
    assert keys.identify("bearer   kall") == ANY


def test_missing_malformed_and_unknown_keys_identify_nobody():
    keys = ApiKeys([PROVINCE_38])
    for header in (None, "", "Bearer", "Bearer ", "Basic k38", "k38", "Bearer k39"):
        assert keys.identify(header) is None


def test_a_key_may_send_only_its_sources():
    assert may_send(PROVINCE_38, "urn:motcua:38")
    assert not may_send(PROVINCE_38, "urn:motcua:26")
    assert may_send(ANY, "urn:motcua:26")


def test_keys_come_from_settings_and_from_a_file(tmp_path):
    file = tmp_path / "keys.json"
    file.write_text(f'[{{"name": "file", "key_sha256": "{key_hash("kf")}", "sources": ["*"]}}]')
    settings = IntakeSettings(intake_api_keys=[PROVINCE_38], intake_api_keys_file=file,
                              personal_index_secret="the index secret")
    keys = ApiKeys.load(settings.intake_api_keys, settings.intake_api_keys_file)
    assert keys.identify("Bearer k38") == PROVINCE_38
    assert keys.identify("Bearer kf").name == "file"


def test_only_hashes_are_configured():
    assert "k38" not in PROVINCE_38.model_dump_json()


def test_a_presented_key_is_compared_with_every_key_in_constant_time(monkeypatch):
    import hmac

    compared, constant_time = [], hmac.compare_digest

    def counting(a, b):
        compared.append(b)
        return constant_time(a, b)

    monkeypatch.setattr("shared.auth.hmac.compare_digest", counting)
    other = ApiKey(name="other", key_sha256=key_hash("k99"), sources=["*"])
    keys = ApiKeys([PROVINCE_38, ANY, other])
    assert keys.identify("Bearer k38") == PROVINCE_38  # the first matches; the others are still compared
    assert compared == [PROVINCE_38.key_sha256, ANY.key_sha256, other.key_sha256]


@pytest.mark.parametrize("value", ["", "change-me", "dossier", " secret "])
def test_outside_the_local_stack_a_service_refuses_an_empty_or_well_known_secret(value):
    from pydantic import ValidationError

    from services.notifications.settings import NotificationsSettings

    with pytest.raises(ValidationError, match="DOSSIER_NOTIFICATIONS_DLR_SECRET"):
        NotificationsSettings(notifications_dlr_secret=value, lookup_secret="a-real-one-0123")
    NotificationsSettings(environment="local", notifications_dlr_secret=value)  # the local stack may


def test_secrets_are_read_from_the_secrets_folder(tmp_path, monkeypatch):
    from services.processing.settings import ProcessingSettings
    from shared.secrets import ensure

    ensure(tmp_path)
    monkeypatch.setenv("DOSSIER_SECRETS_DIR", str(tmp_path))
    settings = ProcessingSettings()  # production: the folder's secret is a real one
    assert settings.lookup_secret.get_secret_value() == (tmp_path / "dossier_lookup_secret").read_text()
    assert "dossier_lookup_secret" not in repr(settings) and settings.lookup_secret.get_secret_value() not in repr(settings)
