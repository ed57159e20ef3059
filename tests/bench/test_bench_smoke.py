"""Every benchmark at a tiny size, on the real stack: the suite keeps working (its figures at
this size mean nothing and are not checked against the goals)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report import GOALS, markdown
from bench.suite import SIZES, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_the_suite_runs_every_measurement_and_records_it(tmp_path: Path) -> None:
    document = tmp_path / "benchmarks.md"
    document.write_text("before\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n")

    figures = await run(SIZES["smoke"], tmp_path / "results", document)

    size = SIZES["smoke"]
    assert figures["log"]["events"] == size.log_workers * 10
    assert figures["ceiling_consume"]["records"] == figures["log"]["events"]
    assert figures["replay"]["records"] == figures["replay_two_processes"]["records"] > 0
    assert [g["events"] for g in figures["growth"]] == [
        *(w * 10 for w in size.growth_workers),
        figures["log"]["events"],
    ]
    assert figures["audit"]["events"] == figures["log"]["events"]
    assert figures["import"]["registered"] == size.import_rows
    assert figures["http"]["failed"] == 0
    assert figures["freshness"]["commands"] == int(size.freshness_rate * size.freshness_seconds)
    assert figures["machine"]["cores"] > 0
    (saved,) = (tmp_path / "results").iterdir()
    assert json.loads(saved.read_text())["replay"] == figures["replay"]
    text = document.read_text()
    assert text.startswith("before\n")
    assert text.endswith("after\n")
    assert "old" not in text
    assert markdown(figures) in text
    assert all(what in text for what, *_ in GOALS)
