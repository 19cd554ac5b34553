"""Prometheus' console pages in the repo are what deploy/prometheus/consoles.py generates from the
Grafana boards' panels, and every panel's query is on its page."""

import runpy
from pathlib import Path

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
consoles = runpy.run_path(str(PROMETHEUS / "consoles.py"))


def test_the_committed_consoles_are_generated():
    rendered = consoles["rendered"]()
    committed = {str(p.relative_to(PROMETHEUS)) for folder in ("consoles", "console_libraries")
                 for p in (PROMETHEUS / folder).iterdir()}
    assert committed == set(rendered)
    for path, text in rendered.items():
        assert (PROMETHEUS / path).read_text() == text, "run: python deploy/prometheus/consoles.py"


def test_every_grafana_panel_is_on_its_console_page_with_the_same_queries():
    for name, board in consoles["boards"]().items():
        page = (PROMETHEUS / "consoles" / f"{name}.html").read_text()
        for panel in board.panels:
            assert f"<h2>{consoles['text'](panel.title)}</h2>" in page
            for expr, _ in panel.targets:
                assert f"`{expr.replace('$__rate_interval', consoles['RATE_INTERVAL'])}`" in page
