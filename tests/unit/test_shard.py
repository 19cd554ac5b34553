"""Which provinces a metrics replica answers for (services/metrics/shard.py)."""

from services.metrics.settings import MetricsSettings
from services.metrics.shard import Shard


def test_a_replica_of_every_province_owns_every_commune_even_one_missing_from_the_list():
    shard = Shard()
    assert shard.owns("38") and shard.owns_commune("14923") and shard.owns_commune("99999")
    assert shard.owns_commune(None) and shard.misdirected("38") is None


def test_a_replica_of_some_provinces_owns_their_communes_only_and_names_the_owner_of_the_others():
    shard = Shard(frozenset({"38"}), {"25": "http://metrics-north-0.metrics-north:8003"})
    assert shard.owns_commune("14923") and not shard.owns_commune("08152")  # Bá Thước (38), Thanh Ba (25)
    assert not shard.owns_commune("99999") and not shard.owns_commune(None)
    assert shard.misdirected("38") is None
    assert shard.misdirected("25") == ("province 25 is not one of this replica's (38): "
                                       "ask http://metrics-north-0.metrics-north:8003")
    assert shard.misdirected("01") == "province 01 is not one of this replica's (38)"


def test_provinces_are_set_as_the_chart_writes_them_or_by_hand(monkeypatch):
    monkeypatch.setenv("DOSSIER_METRICS_SESSION_SECRET", "a-deployments-own-session-key")
    monkeypatch.setenv("DOSSIER_METRICS_SCRAPE_TOKEN", "a-deployments-own-scrape-token")
    for value in ('["38", "25"]', "38,25", " 38 , 25 "):
        monkeypatch.setenv("DOSSIER_METRICS_PROVINCES", value)
        assert MetricsSettings().metrics_provinces == ["38", "25"]
    monkeypatch.setenv("DOSSIER_METRICS_PROVINCES", "")
    assert MetricsSettings().metrics_provinces == []
