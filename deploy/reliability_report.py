"""``berlian reliability``: the fault scenarios at their long size; every long run's figures
kept in docs/reliability-runs.jsonl, and the table of docs/reliability.md written from them."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_long_runs(figures: Path, history: Path) -> None:
    """Add this run's long lines to the history."""
    with history.open("a") as out:
        for line in read_lines(figures):
            if line["long"]:
                out.write(json.dumps(line) + "\n")


def table(runs: list[dict[str, Any]]) -> str:
    """Per scenario: how many long runs and how many passed, and the last run's figures."""
    total = Counter(r["scenario"] for r in runs)
    passed = Counter(r["scenario"] for r in runs if r.get("passed", True))
    last = {r["scenario"]: r for r in runs}
    columns = (
        "scenario",
        "long runs (passed)",
        "last run at",
        "faults injected in it",
        "commands acknowledged",
        "events checked",
        "lost",
        "duplicated",
        "other findings",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for scenario, r in last.items():
        findings = "; ".join(r["problems"]) or "none"
        lines.append(
            f"| {scenario} | {total[scenario]} ({passed[scenario]}) | {r['at']} | {r['faults']} "
            f"| {r['acknowledged']:,} | {r['events_checked']:,} | {r['lost']} "
            f"| {r['duplicated']} | {findings} |"
        )
    return "\n".join(lines)


def write(document: Path, history: Path) -> None:
    text = document.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    replaced = f"{START}\n{table(read_lines(history))}\n{END}"
    document.write_text(pattern.sub(lambda _: replaced, text))
