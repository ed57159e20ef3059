"""Every benchmark at a tiny size, on the real stack: the suite keeps working (its figures at
this size mean nothing and are not checked against the goals, only that each goal is there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report import markdown
from bench.suite import SIZES, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_the_suite_runs_every_measurement_and_records_it(tmp_path: Path) -> None:
    document = tmp_path / "benchmarks.md"
    document.write_text("before\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")
    capacity = tmp_path / "capacity.md"
    capacity.write_text("# Plan\n<!-- capacity:start -->\nold\n<!-- capacity:end -->\nkept\n")

    figures = await run(SIZES["smoke"], tmp_path / "results", document)

    size = SIZES["smoke"]
    events = size.log_workers * 10
    assert figures["log"]["events"] == events
    assert figures["ceiling_consume"]["records"] == events
    assert figures["replay"]["events"] == figures["replay_one_process"]["events"] == events
    assert figures["replay"]["records"] == figures["replay_one_process"]["records"] > events
    assert [g["events"] for g in figures["growth"]] == sorted(
        [events, *(w * 10 for w in size.growth_workers)]
    )
    assert figures["audit"]["events"] == events
    assert [(i["rows"], i["measured"], i["registered"]) for i in figures["imports"]] == [
        (rows, True, rows) for rows in size.import_rows
    ]
    assert all(i["service_peak_mb"] > 0 for i in figures["imports"])
    assert figures["http"]["failed"] == figures["http_bare"]["failed"] == 0
    assert figures["http"]["commands"] == figures["http_bare"]["commands"] == size.http_commands
    assert figures["command_path"]["commands"] == size.http_commands
    assert figures["command_path"]["statements_per_command"] > 0
    assert figures["billing"]["lines"] == figures["billing"]["workers"] == size.billing_workers
    assert figures["freshness"]["commands"] == int(size.freshness_rate * size.freshness_seconds)
    assert figures["machine"]["cores"] > 0
    goals = figures["goals"]
    assert len(goals) == 9
    for goal in goals:
        assert set(goal) == {"measure", "goal", "measured", "met", "detail"}
        assert isinstance(goal["met"], bool)
        assert isinstance(goal["measured"], float)
    (saved,) = (tmp_path / "results").iterdir()
    assert json.loads(saved.read_text())["goals"] == goals
    text = document.read_text()
    assert text.startswith("before\n")
    assert text.endswith("after\n")
    assert "old" not in text
    assert markdown(figures) in text
    assert all(goal["measure"] in text for goal in goals)
    plan = capacity.read_text()
    assert plan.startswith("# Plan\n")
    assert plan.endswith("kept\n")
    assert "old" not in plan
    assert "10,000,000 workers" in plan
