"""Each scenario's figures, appended to test-artifacts/reliability/figures.jsonl, from which
``./berlian reliability`` writes the table of docs/reliability.md."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from deploy.local.paths import REPO_ROOT
from tests.reliability.checker import Verdict

FIGURES = REPO_ROOT / "test-artifacts" / "reliability" / "figures.jsonl"


def record(scenario: str, faults: str, acknowledged: int, verdict: Verdict) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "scenario": scenario,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "long": os.environ.get("RELIABILITY_LONG") == "1",
        "faults": faults,
        "acknowledged": acknowledged,
        "events_checked": verdict.events_checked,
        "lost": len(verdict.lost),
        "duplicated": len(verdict.duplicated),
        "problems": verdict.problems[:5],
    }
    with FIGURES.open("a") as out:
        out.write(json.dumps(line) + "\n")
