"""The Grafana dashboard charts every metric the services export, and nothing they do not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import shared.telemetry  # noqa: F401  (registers the metrics)

pytestmark = pytest.mark.unit
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "berlian-dashboard.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def exported_metrics() -> set[str]:
    return {m.name for m in REGISTRY.collect() if m.name.startswith("berlian_")}


def charted_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = {n for e in expressions for n in re.findall(r"\bberlian_[a-z_]+", e)}
    return {next((n.removesuffix(s) for s in SUFFIXES if n.endswith(s)), n) for n in names}


def test_every_exported_metric_is_charted_and_every_chart_reads_a_real_metric() -> None:
    assert charted_metrics() == exported_metrics()


def test_panels_use_the_datasource_variable_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        cell = (grid["x"], grid["y"])
        assert cell not in cells, panel["title"]
        cells.add(cell)
