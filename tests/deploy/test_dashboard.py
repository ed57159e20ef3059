"""The Grafana dashboard charts every metric the services export, and nothing they do not; the
alert rules read only real metrics, and each is explained in the runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import shared.telemetry  # noqa: F401  (registers the metrics)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "berlian-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def exported_metrics() -> set[str]:
    return {m.name for m in REGISTRY.collect() if m.name.startswith("berlian_")}


def metrics_in(expressions: list[str]) -> set[str]:
    names = {n for e in expressions for n in re.findall(r"\bberlian_[a-z_]+", e)}
    return {next((n.removesuffix(s) for s in SUFFIXES if n.endswith(s)), n) for n in names}


def charted_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return metrics_in([t["expr"] for panel in dashboard["panels"] for t in panel["targets"]])


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


def test_every_alert_reads_real_metrics_and_is_explained_in_the_runbook() -> None:
    rules = [r for group in yaml.safe_load(ALERTS.read_text())["groups"] for r in group["rules"]]
    runbook = (ROOT / "docs" / "runbook.md").read_text()

    assert metrics_in([r["expr"] for r in rules]) <= exported_metrics()
    for rule in rules:
        assert f"`{rule['alert']}`" in runbook, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
