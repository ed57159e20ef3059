"""The suite's figures as JSON (``bench/results/``) and as the tables of ``docs/benchmarks.md``,
each goal beside its measured figure."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import capacity

START, END = "<!-- results:start -->", "<!-- results:end -->"

# (what, goal in words, figure, met?)
Goal = tuple[str, str, Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], bool]]
GOALS: list[Goal] = [
    (
        "Replay, one process (records/s)",
        ">= 50,000",
        lambda f: f"{f['replay']['records_per_s']:,.0f}",
        lambda f: f["replay"]["records_per_s"] >= 50_000,
    ),
    (
        "Replay / raw consume of the same run",
        ">= 0.50",
        lambda f: f"{replay_ratio(f):.2f}",
        lambda f: replay_ratio(f) >= 0.5,
    ),
    (
        "Replay peak resident memory (MB)",
        "< 500",
        lambda f: f"{f['replay']['peak_rss_mb']:,.0f}",
        lambda f: f["replay"]["peak_rss_mb"] < 500,
    ),
    (
        "Bulk import, end to end (events/s)",
        ">= 10,000",
        lambda f: f"{f['import']['events_per_s']:,.0f}",
        lambda f: f["import"]["events_per_s"] >= 10_000,
    ),
    (
        "Enrolment service peak memory through the bulk import (MB; its pod limit is 512 MiB)",
        "< 450",
        lambda f: f"{f['import'].get('service_peak_mb', float('nan')):,.0f}",
        lambda f: f["import"].get("service_peak_mb", 10**9) < 450,
    ),
    (
        "HTTP registrations, 32 clients (commands/s)",
        ">= 1,000",
        lambda f: f"{f['http']['commands_per_s']:,.0f}",
        lambda f: f["http"]["commands_per_s"] >= 1_000,
    ),
    (
        "HTTP p99 latency (ms)",
        "< 50",
        lambda f: f"{f['http']['p99_ms']:,.1f}",
        lambda f: f["http"]["p99_ms"] < 50,
    ),
    (
        "Freshness p99 at 500 commands/s (ms)",
        "< 250",
        lambda f: f"{f['freshness']['p99_ms']:,.0f}",
        lambda f: f["freshness"]["p99_ms"] < 250,
    ),
    (
        "audit verify (events/s)",
        ">= 100,000",
        lambda f: f"{f['audit']['events_per_s']:,.0f}",
        lambda f: f["audit"]["events_per_s"] >= 100_000,
    ),
]


def replay_ratio(figures: dict[str, Any]) -> float:
    return float(figures["replay"]["records_per_s"] / figures["ceiling_consume"]["records_per_s"])


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(f: dict[str, Any]) -> str:
    m = f["machine"]
    parts = [
        f"Run of {f['started']} at size `{f['size']['name']}`, {f['seconds'] / 60:.1f} minutes "
        f"in all, on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), {m['os']}; "
        f"Apache Kafka {m['kafka']} (one KRaft broker), PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}; everything on the same machine.",
        "### Goals",
        _table(
            ["measure", "goal", "measured", "met"],
            [
                [what, goal, figure(f), "yes" if met(f) else "**no**"]
                for what, goal, figure, met in GOALS
            ],
        ),
        "### Raw Kafka ceiling (same run, same records)",
        _table(
            ["client", "records", "mean bytes", "records/s"],
            [
                [
                    "aiokafka producer (acks=all, idempotent)",
                    f"{f['ceiling_produce']['records']:,}",
                    str(f["ceiling_produce"]["mean_bytes"]),
                    f"{f['ceiling_produce']['records_per_s']:,.0f}",
                ],
                [
                    "aiokafka consumer (read_committed)",
                    f"{f['ceiling_consume']['records']:,}",
                    "",
                    f"{f['ceiling_consume']['records_per_s']:,.0f}",
                ],
                [
                    "log writer (envelopes built, hashed, produced)",
                    f"{f['log']['events']:,}",
                    "",
                    f"{f['log']['events_per_s']:,.0f}",
                ],
            ],
        ),
        "### Replay and growth",
        "Every projection of every service rebuilt from the topics into empty tables. A "
        "projection reads all of its source topics, so the records read exceed the events in "
        "the log.",
        _table(
            [
                "events in the log",
                "processes",
                "records read",
                "seconds",
                "records/s",
                "peak RSS MB",
            ],
            [
                [
                    f"{g['events']:,}",
                    str(g["processes"]),
                    f"{g['records']:,}",
                    f"{g['seconds']:.1f}",
                    f"{g['records_per_s']:,.0f}",
                    f"{g['peak_rss_mb']:,.0f}",
                ]
                for g in [*f["growth"], {"events": f["log"]["events"], **f["replay_two_processes"]}]
            ],
        ),
        "### Replay by projection (one process)",
        _table(
            ["projection", "records read", "applied", "seconds", "records/s"],
            [
                [
                    name,
                    f"{p['records']:,}",
                    f"{p['applied']:,}",
                    f"{p['seconds']:.1f}",
                    f"{p['records'] / p['seconds']:,.0f}" if p["seconds"] else "-",
                ]
                for name, p in f["replay"]["projections"].items()
            ],
        ),
        "### Ingestion and freshness (services as real processes)",
        _table(
            ["measure", "figures"],
            [
                [
                    "bulk import",
                    f"{f['import']['registered']:,} of {f['import']['rows']:,} rows "
                    f"registered in {f['import']['seconds']:.1f} s: "
                    f"{f['import']['events_per_s']:,.0f} events/s",
                ],
                [
                    "bulk import memory",
                    f"a {f['import'].get('file_mb', 0):.1f} MB file; the enrolment service "
                    f"held {f['import'].get('service_rss_before_mb', 0):,.0f} MB before it and "
                    f"{f['import'].get('service_peak_mb', 0):,.0f} MB at its peak",
                ],
                [
                    "HTTP",
                    f"{f['http']['commands']:,} commands, {f['http']['clients']} clients, "
                    f"{f['http']['failed']} failed: {f['http']['commands_per_s']:,.0f}/s, "
                    f"p50 {f['http']['p50_ms']:.1f} ms, p99 {f['http']['p99_ms']:.1f} ms",
                ],
                [
                    "freshness",
                    f"{f['freshness']['commands']:,} commands at "
                    f"{f['freshness']['achieved_per_s']:,.0f}/s (target "
                    f"{f['freshness']['target_per_s']}): p50 {f['freshness']['p50_ms']:.0f} ms, "
                    f"p99 {f['freshness']['p99_ms']:.0f} ms, max {f['freshness']['max_ms']:.0f} ms",
                ],
                [
                    "audit verify",
                    f"{f['audit']['events']:,} events in {f['audit']['seconds']:.1f} s: "
                    f"{f['audit']['events_per_s']:,.0f} events/s",
                ],
            ],
        ),
    ]
    return "\n\n".join(parts)


def write_results(figures: dict[str, Any], results: Path, document: Path | None) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    stamp = figures["started"].replace(":", "").replace("-", "")
    path = results / f"{stamp}-{figures['size']['name']}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    if document is not None:
        text = document.read_text()
        pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
        replaced = f"{START}\n{markdown(figures)}\n{END}"
        document.write_text(pattern.sub(lambda _: replaced, text))
        (document.parent / "capacity.md").write_text(capacity.markdown(figures))
    return path
