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
    """Per scenario: how many long runs and how many passed, and the last run's figures (lines
    from before the open-loop load carry no load figures: shown as a dash)."""
    total = Counter(r["scenario"] for r in runs)
    passed = Counter(r["scenario"] for r in runs if r.get("passed", True))
    last = {r["scenario"]: r for r in runs}
    columns = (
        "scenario",
        "long runs (passed)",
        "last run at",
        "faults injected in it",
        "load offered (s at cmd/s)",
        "commands acknowledged (imports: rows)",
        "shed; refused or unanswered",
        "p50 / p99 ms",
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
            f"| {offered(r)} | {acknowledged(r)} | {not_acknowledged(r)} | {latency(r)} "
            f"| {r['events_checked']:,} | {r['lost']} | {r['duplicated']} | {findings} |"
        )
    return "\n".join(lines)


def offered(run: dict[str, Any]) -> str:
    if "offered_rate" not in run:
        return "—"
    return f"{run['load_seconds']:,} s at {run['offered_rate']:,}"


def acknowledged(run: dict[str, Any]) -> str:
    kinds = run.get("acknowledged_by_kind")
    if kinds is None:
        return f"{run['acknowledged']:,}"
    return f"{run['acknowledged']:,} ({kinds.get('import', 0):,}: {run['imported_rows']:,})"


def not_acknowledged(run: dict[str, Any]) -> str:
    if "shed" not in run:
        return "—"
    reasons = "".join(f"; {n} {reason}" for reason, n in run["refused"].items())
    return f"{run['shed']:,}; {run['refused_total']:,}{reasons}"


def latency(run: dict[str, Any]) -> str:
    if run.get("p99_ms") is None:
        return "—"
    return f"{run['p50_ms']:,.0f} / {run['p99_ms']:,.0f}"


def write(document: Path, history: Path) -> None:
    text = document.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    replaced = f"{START}\n{table(read_lines(history))}\n{END}"
    document.write_text(pattern.sub(lambda _: replaced, text))
