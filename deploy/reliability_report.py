"""``berlian reliability``: the fault scenarios at their long size, and their figures written
into docs/reliability.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def latest(figures: Path) -> list[dict[str, Any]]:
    """The last figures of each scenario."""
    lines = [json.loads(line) for line in figures.read_text().splitlines() if line.strip()]
    return list({line["scenario"]: line for line in lines}.values())


def table(rows: list[dict[str, Any]]) -> str:
    columns = (
        "scenario",
        "run at",
        "faults injected",
        "commands acknowledged",
        "events checked",
        "lost",
        "duplicated",
        "other findings",
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        findings = "; ".join(r["problems"]) or "none"
        lines.append(
            f"| {r['scenario']} | {r['at']}{' (long)' if r['long'] else ''} | {r['faults']} | "
            f"{r['acknowledged']:,} | {r['events_checked']:,} | {r['lost']} | {r['duplicated']} "
            f"| {findings} |"
        )
    return "\n".join(lines)


def write(document: Path, figures: Path) -> None:
    text = document.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    replaced = f"{START}\n{table(latest(figures))}\n{END}"
    document.write_text(pattern.sub(lambda _: replaced, text))
