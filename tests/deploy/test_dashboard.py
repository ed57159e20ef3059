"""The Grafana dashboards chart every metric the services export, and nothing they do not; the
programme's dashboard reads only the programme's figures; the alert rules read only real
metrics, cover the guarantees, and each opens its own section of the runbook."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import shared.telemetry  # noqa: F401  (registers the metrics)
from services.figures import FIGURES

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
TECHNICAL = ROOT / "deploy" / "grafana" / "berlian-dashboard.json"
PROGRAMME = ROOT / "deploy" / "grafana" / "berlian-programme.json"
DASHBOARDS = (TECHNICAL, PROGRAMME)
RULES = ROOT / "deploy" / "k8s" / "base" / "alerts.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://git.example.org/pekalongan/berlian/blob/main/docs/runbook.md#"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
# What a person could be found by: no figure may carry it as a label.
PERSONAL = {
    "worker_id",
    "nik",
    "name",
    "full_name",
    "address",
    "phone",
    "membership_no",
    "claim_id",
}


def exported_metrics() -> set[str]:
    return {m.name for m in REGISTRY.collect() if m.name.startswith("berlian_")}


def metrics_in(expressions: list[str]) -> set[str]:
    names = {n for e in expressions for n in re.findall(r"\bberlian_[a-z_]+", e)}
    return {next((n.removesuffix(s) for s in SUFFIXES if n.endswith(s)), n) for n in names}


def panels(dashboard: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(dashboard.read_text())["panels"]
    return found


def charted_metrics(dashboard: Path) -> set[str]:
    return metrics_in([t["expr"] for panel in panels(dashboard) for t in panel["targets"]])


def programme_figures() -> set[str]:
    return {figure.gauge._name for figures in FIGURES.values() for figure in figures}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert document["kind"] == "PrometheusRule"
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def anchors(markdown: str) -> set[str]:
    """The section anchors a Git forge gives the headings (lowercase, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_exported_metric_is_charted_and_every_chart_reads_a_real_metric() -> None:
    assert set.union(*(charted_metrics(d) for d in DASHBOARDS)) == exported_metrics()


def test_the_programme_dashboard_charts_every_programme_figure_and_nothing_else() -> None:
    assert charted_metrics(PROGRAMME) == programme_figures()
    assert not charted_metrics(TECHNICAL) & programme_figures()


def test_no_programme_figure_carries_personal_data() -> None:
    for figures in FIGURES.values():
        for figure in figures:
            assert not set(figure.gauge._labelnames) & PERSONAL, figure.gauge._name


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda d: d.stem)
def test_panels_use_the_datasource_variable_and_do_not_overlap(dashboard: Path) -> None:
    cells = set()
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}"
        grid = panel["gridPos"]
        cell = (grid["x"], grid["y"])
        assert cell not in cells, panel["title"]
        cells.add(cell)


def test_every_alert_reads_real_metrics_and_opens_its_runbook_section() -> None:
    sections = anchors(RUNBOOK.read_text())

    assert metrics_in([r["expr"] for r in rules()]) <= exported_metrics()
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_URL), rule["alert"]
        assert url.removeprefix(RUNBOOK_URL) in sections, rule["alert"]
        assert url.removeprefix(RUNBOOK_URL) == rule["alert"].lower()
        assert "runbook" not in rule["annotations"], "the conventional name is runbook_url"


def test_the_alerts_cover_the_guarantees() -> None:
    watched = {rule["alert"]: rule["expr"] for rule in rules()}

    # Tamper evidence: the nightly verification failing, or not having run for 26 hours.
    assert "kube_job_status_failed" in watched["BerlianAuditVerifyFailed"]
    assert "26 * 3600" in watched["BerlianAuditVerifyNotRun"]
    assert "berlian_checkpoint_age_seconds" in watched["BerlianCheckpointStale"]
    # Delivery: a stream parked behind a dead letter, an outbox that does not drain.
    assert "berlian_parked_streams" in watched["BerlianStreamsParked"]
    assert "berlian_outbox_backlog" in watched["BerlianOutboxNotDraining"]
    assert "berlian_outbox_publish_duration_seconds_count" in watched["BerlianOutboxNotDraining"]


def test_the_loose_rule_file_is_gone_so_the_rules_have_one_source() -> None:
    assert not (ROOT / "deploy" / "prometheus").exists()
