"""Each scenario run's figures, one line per run, passed or failed, appended to
test-artifacts/reliability/figures.jsonl; ``./berlian reliability`` adds the long runs to
docs/reliability-runs.jsonl and writes the table of docs/reliability.md from it.

A test takes the ``figures`` fixture and records what its checker found; the line is written
when the test's outcome is known (tests/reliability/conftest.py), so a run that fails before
its checker (a client giving up, a fault that could not be injected) is counted too."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deploy.local.paths import REPO_ROOT
from shared.settings import DatabaseSettings, KafkaSettings
from tests.reliability.checker import Verdict, check
from tests.reliability.load import Load

FIGURES = REPO_ROOT / "test-artifacts" / "reliability" / "figures.jsonl"


@dataclass
class Figures:
    scenario: str
    found: dict[str, Any] = field(default_factory=dict)

    def record(self, faults: str, load: Load, verdict: Verdict) -> None:
        self.found = {
            "faults": faults,
            "acknowledged": load.acknowledged,
            **load.figures(),
            "events_checked": verdict.events_checked,
            "lost": len(verdict.lost),
            "duplicated": len(verdict.duplicated),
            "problems": verdict.problems[:5],
        }

    async def checked(
        self,
        kafka: KafkaSettings,
        database: DatabaseSettings,
        load: Load,
        faults: str,
        planted: frozenset[tuple[str, int, int]] = frozenset(),
    ) -> Verdict:
        """The checker's verdict on the run, recorded with ``faults`` and the load's figures; the
        run fails unless nothing was lost, doubled or out of place, and every command the load
        sent was acknowledged (each is valid, and sent again until answered)."""
        verdict = await check(kafka, database, load.registered, load.verified, planted)
        self.record(faults, load, verdict)
        assert verdict.ok, verdict
        assert not load.refused, load.refused
        return verdict

    def write(self, failure: str | None) -> None:
        line = {
            "scenario": self.scenario,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "long": os.environ.get("RELIABILITY_LONG") == "1",
            "passed": failure is None,
            "faults": "",
            "acknowledged": 0,
            "events_checked": 0,
            "lost": 0,
            "duplicated": 0,
            "problems": [],
            **self.found,
        }
        if failure is not None:
            line["problems"] = [*line["problems"], f"failed: {failure}"]
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES.open("a") as out:
            out.write(json.dumps(line) + "\n")
