"""The auditor's command line on the real stack after a demo run: a worker's history, the
programme as known before and after a late payment, the difference explained by the payments,
and a fiscal year's report whose figures agree with the topics."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploy.demo import programme
from deploy.local.paths import REPO_ROOT
from tests.integration.programme_world import SIZE, URLS, World, envelopes, environment, world

__all__ = ["world"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
PREMIUM = 16_800


def audit(world: World, *args: str) -> Any:
    """``berlian audit ...`` as an auditor runs it, its JSON output parsed."""
    kafka, database, _ = world
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "audit", *args, "--json"],
        cwd=REPO_ROOT,
        env=environment(kafka, database),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


async def test_history_as_of_diff_and_report_after_a_demo(world: World, tmp_path: Path) -> None:
    result = await programme(SIZE, URLS)
    claims = {row["label"]: row for row in result["claims"]}
    in_arrears = claims["JKM death during arrears"]["worker_id"]

    history = await asyncio.to_thread(audit, world, "history", in_arrears)
    kinds = [e["event_type"] for e in history]
    assert kinds[0] == "WorkerRegistered"
    assert kinds.index("CoverageStarted") < kinds.index("ClaimFiled") < kinds.index("ClaimPaid")
    late = [e for e in history if e["event_type"] == "PremiumPaid" and e["on"] == "2025-03-20"]
    assert [e["details"]["period"] for e in late] == ["2025-01", "2025-02"]
    assert all(e["details"].get("personal") in (None, "(sealed)") for e in history)
    claim_filed = next(e for e in history if e["event_type"] == "ClaimFiled")
    assert claim_filed["details"]["claimant"] == "(sealed)"

    # Just before the late payments (of every worker on those invoices) and just after them.
    kafka = world[0]
    late_paid = [
        datetime.fromisoformat(e["recorded_at"])
        for e in await envelopes(kafka, "billing")
        if e["event_type"] == "PremiumPaid" and e["data"]["paid_on"] == "2025-03-20"
    ]
    before = (min(late_paid) - timedelta(microseconds=1)).isoformat()
    after = max(late_paid).isoformat()
    state_before = await asyncio.to_thread(
        audit, world, "as-of", "--known-at", before, "--label", "b"
    )
    state_after = await asyncio.to_thread(
        audit, world, "as-of", "--known-at", after, "--label", "a"
    )
    arrears_before = arrears(state_before)
    arrears_after = arrears(state_after)
    assert arrears_before > arrears_after
    assert state_before["offsets"] == state_after["offsets"]

    diff = await asyncio.to_thread(
        audit, world, "diff", "--from-known-at", before, "--to-known-at", after
    )
    changed = {(c["question"], tuple(c["key"])) for c in diff["changes"]}
    assert ("premiums due and paid", (2024, "regular")) in changed
    paid = [e for e in diff["events"] if e["event_type"] == "PremiumPaid"]
    # Every worker of the regular cohort paid late for January and February, in this window.
    assert {e["data"]["period"] for e in paid} == {"2025-01", "2025-02"}
    assert sum(e["data"]["amount"]["total"] for e in paid) == arrears_before - arrears_after
    assert in_arrears in {e["worker_id"] for e in paid}

    output = tmp_path / "report.html"
    report = await asyncio.to_thread(
        audit, world, "report", "--fiscal-year", "2024", "--output", str(output)
    )
    budget = report["figures"]["premiums against the budget"]
    premiums = {row[0]: dict(zip(budget["columns"], row, strict=True)) for row in budget["rows"]}
    assert premiums["regular"]["invoiced"] == SIZE.regular * 12 * PREMIUM
    assert premiums["regular"]["unpaid"] == 0
    assert premiums["regular"]["paid_late"] > 0
    claims_figure = report["figures"]["claims filed, decided and paid"]
    paid_amount = sum(row[-1] for row in claims_figure["rows"])
    claims_paid, premiums_paid = report["figures"]["loss ratio"]["rows"][0]
    assert paid_amount == claims_paid > 0
    assert report["loss_ratio"] == pytest.approx(claims_paid / premiums_paid)
    html = output.read_text()
    assert "<svg" in html
    assert report["known_at"] in html or report["known_at"].replace(" ", "T") in html
    for where in report["offsets"]:
        assert where in html
    for figure in report["figures"].values():
        assert figure["query"].split(" FROM ")[0][:40] in html.replace("&#39;", "'")


def arrears(state: dict[str, Any]) -> int:
    figure = state["figures"]["premiums due and paid"]
    column = figure["columns"].index("arrears")
    return sum(row[column] for row in figure["rows"])
