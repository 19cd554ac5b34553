"""The Grafana dashboards in the repo are what deploy/grafana/dashboards.py generates."""

import importlib.util
from pathlib import Path

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"


def generator():
    spec = importlib.util.spec_from_file_location("dashboards", GRAFANA / "dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_dashboards_are_generated():
    rendered = generator().rendered()
    assert sorted(p.name for p in (GRAFANA / "dashboards").glob("*.json")) == sorted(rendered)
    for name, text in rendered.items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, "run: python deploy/grafana/dashboards.py"


def test_every_panel_has_a_title_a_description_a_query_and_a_place_of_its_own():
    for make in generator().DASHBOARDS.values():
        board = make()
        places = set()
        for panel in board["panels"]:
            assert panel["title"] and panel["description"] and panel["targets"]
            place = (panel["gridPos"]["x"], panel["gridPos"]["y"])
            assert place not in places and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
            places.add(place)
