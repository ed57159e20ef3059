"""The suite's figures as JSON (``bench/results/``) and as the tables of ``docs/benchmarks.md``,
each goal beside its measured figure.

The goals are those of the write-and-rebuild issue: where the machines differ by up to four
times, a goal is a ratio to the raw Kafka ceiling measured in the same run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench import capacity

START, END = "<!-- results:start -->", "<!-- results:end -->"
GROWTH_LINEARITY = 1.15  # time per log event on the largest log / on the smallest, at most


def _goal(
    measure: str, goal: str, measured: float | None, met: bool, detail: str
) -> dict[str, Any]:
    return {"measure": measure, "goal": goal, "measured": measured, "met": met, "detail": detail}


def imports_by_rows(f: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(f["imports"], key=lambda i: int(i["rows"]))


def goals(f: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal with its figure from this run: ``measure``, ``goal``, ``measured`` (a
    number, or None where it could not be measured), ``met`` and a ``detail`` in words."""
    consume = f["ceiling_consume"]["records_per_s"]
    produce = f["ceiling_produce"]["records_per_s"]
    rebuild, audit, http, bare = f["replay"], f["audit"], f["http"], f["http_bare"]
    first, *larger = imports_by_rows(f)
    largest = larger[-1] if larger else first
    peaks = [i["service_peak_mb"] for i in (first, largest) if i["measured"]]
    memory_detail = " -> ".join(
        f"{i['rows']:,} rows: {i['service_peak_mb']:,.0f} MB"
        if i["measured"]
        else f"{i['rows']:,} rows: not measured ({i['reason']})"
        for i in (first, largest)
    )
    smallest, biggest = f["growth"][0], f["growth"][-1]
    linearity = (biggest["seconds"] / biggest["events"]) / (
        smallest["seconds"] / smallest["events"]
    )
    rebuild_peak = max(g["peak_rss_mb"] for g in [*f["growth"], f["replay_one_process"]])
    billing = f["billing"]
    return [
        _goal(
            f"Full rebuild of every projection, {rebuild['events']:,} log events "
            "(log events/s / raw consume)",
            ">= 0.25 (>= 50,000 log events/s on the faster machine)",
            rebuild["log_events_per_s"] / consume,
            rebuild["log_events_per_s"] / consume >= 0.25,
            f"{rebuild['seconds']:,.1f} s: {rebuild['log_events_per_s']:,.0f} log events/s; "
            f"raw consume {consume:,.0f} records/s",
        ),
        _goal(
            f"Bulk import of {first['rows']:,} rows, end to end (rows/s / raw produce)",
            ">= 0.2 (>= 10,000 rows/s on the faster machine)",
            first["rows_per_s"] / produce,
            first["rows_per_s"] / produce >= 0.2,
            f"{first['rows_per_s']:,.0f} rows/s; raw produce {produce:,.0f} records/s",
        ),
        _goal(
            f"Enrolment service peak memory, imports of {first['rows']:,} and "
            f"{largest['rows']:,} rows (MB)",
            "< 300 at both (flat)",
            max(peaks) if len(peaks) == 2 else None,
            len(peaks) == 2 and max(peaks) < 300,
            memory_detail,
        ),
        _goal(
            f"HTTP registrations, {http['clients']} clients (commands/s)",
            ">= 1,000",
            http["commands_per_s"],
            http["commands_per_s"] >= 1000,
            f"a bare FastAPI endpoint {bare['commands_per_s']:,.0f}/s on the same run: "
            f"{http['commands_per_s'] / bare['commands_per_s']:.2f} of it",
        ),
        _goal(
            f"HTTP registrations, {http['clients']} clients, p99 (ms)",
            "< 50",
            http["p99_ms"],
            http["p99_ms"] < 50,
            f"p50 {http['p50_ms']:.1f} ms; bare endpoint p99 {bare['p99_ms']:.1f} ms",
        ),
        _goal(
            f"audit verify, {audit['events']:,} events (events/s / raw consume)",
            ">= 0.5 (>= 100,000 events/s on the faster machine)",
            audit["events_per_s"] / consume,
            audit["events_per_s"] / consume >= 0.5,
            f"{audit['events_per_s']:,.0f} events/s; raw consume {consume:,.0f} records/s",
        ),
        _goal(
            f"Billing run, {billing['workers']:,} covered workers (s)",
            "< 10 (on the faster machine)",
            billing["seconds"],
            billing["seconds"] < 10,
            f"answered in {billing['answer_seconds']:,.1f} s; its {billing['events']:,} events "
            f"on the topic after {billing['seconds']:,.1f} s",
        ),
        _goal(
            "Rebuild peak resident memory, any log size (MB)",
            "< 500",
            rebuild_peak,
            rebuild_peak < 500,
            f"largest log {biggest['events']:,} events",
        ),
        _goal(
            f"Growth: rebuild time per log event, {biggest['events']:,} / "
            f"{smallest['events']:,} events",
            f"<= {GROWTH_LINEARITY:.2f} (linear within 15%)",
            linearity,
            linearity <= GROWTH_LINEARITY,
            f"{smallest['seconds']:,.1f} s and {biggest['seconds']:,.1f} s",
        ),
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _figure(measured: float | None) -> str:
    if measured is None:
        return "not measured"
    return f"{measured:,.2f}" if measured < 10 else f"{measured:,.0f}"


def _import_row(i: dict[str, Any]) -> list[str]:
    if not i["measured"]:
        return [f"bulk import, {i['rows']:,} rows", f"not measured: {i['reason']}"]
    return [
        f"bulk import, {i['rows']:,} rows",
        f"{i['registered']:,} registered in {i['seconds']:.1f} s: {i['rows_per_s']:,.0f} rows/s; "
        f"a {i['file_mb']:.1f} MB file; the enrolment service held "
        f"{i['service_rss_before_mb']:,.0f} MB before it and {i['service_peak_mb']:,.0f} MB at "
        f"its peak ({i['peak_from']})",
    ]


def _http_row(what: str, h: dict[str, Any]) -> list[str]:
    return [
        what,
        f"{h['commands']:,} requests, {h['clients']} clients, {h['failed']} failed: "
        f"{h['commands_per_s']:,.0f}/s, p50 {h['p50_ms']:.1f} ms, p99 {h['p99_ms']:.1f} ms",
    ]


def _command_row(c: dict[str, Any]) -> list[str]:
    return [
        "registrations through the command handler, no HTTP (the load generator's core)",
        f"{c['commands']:,} commands, {c['clients']} tasks: {c['commands_per_s']:,.0f}/s, "
        f"p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms; "
        f"{c['statements_per_command']:.0f} statements to PostgreSQL each",
    ]


def markdown(f: dict[str, Any]) -> str:
    m = f["machine"]
    cores = f["cores"]
    parts = [
        f"Run of {f['started']} at size `{f['size']['name']}`, {f['seconds'] / 60:.1f} minutes "
        f"in all, on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), {m['os']}; "
        f"Apache Kafka {m['kafka']} (one KRaft broker), PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}; everything on the same machine.",
        "### Goals",
        _table(
            ["measure", "goal", "measured", "met", "figures"],
            [
                [
                    g["measure"],
                    g["goal"],
                    _figure(g["measured"]),
                    "yes" if g["met"] else "**no**",
                    g["detail"],
                ]
                for g in f["goals"]
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
        "### Rebuild and growth",
        "Every projection of every service rebuilt from the topics into empty tables; the time "
        "is the wall time until the last is done, the rate the events in the log over it. A "
        "projection reads all of its source topics, so the records read exceed the events.",
        _table(
            [
                "events in the log",
                "processes",
                "seconds",
                "log events/s",
                "/ raw consume",
                "records read",
                "peak RSS MB",
            ],
            [
                [
                    f"{g['events']:,}",
                    str(g["processes"]),
                    f"{g['seconds']:.1f}",
                    f"{g['log_events_per_s']:,.0f}",
                    f"{g['log_events_per_s'] / f['ceiling_consume']['records_per_s']:.2f}",
                    f"{g['records']:,}",
                    f"{g['peak_rss_mb']:,.0f}",
                ]
                for g in [*f["growth"], f["replay_one_process"]]
            ],
        ),
        "### Rebuild by projection",
        "The projections are rebuilt together (each topic read once for all of them), so "
        "their time is the rebuild's: what each read and applied.",
        _table(
            ["projection", "records read", "applied"],
            [
                [name, f"{p['records']:,}", f"{p['applied']:,}"]
                for name, p in f["replay"]["projections"].items()
            ],
        ),
        "### Services as real processes",
        f"The load generator is a process of its own kept to core(s) "
        f"{', '.join(map(str, cores['load_generator']))}, the measured server (the enrolment "
        f"service, the bare endpoint) to {', '.join(map(str, cores['server']))}; Kafka, "
        "PostgreSQL and the verification service are not kept to any.",
        _table(
            ["measure", "figures"],
            [
                _command_row(f["command_path"]),
                _http_row("HTTP registrations", f["http"]),
                _http_row("bare FastAPI endpoint, same body", f["http_bare"]),
                [
                    "freshness",
                    f"{f['freshness']['commands']:,} commands at "
                    f"{f['freshness']['achieved_per_s']:,.0f}/s (target "
                    f"{f['freshness']['target_per_s']}): p50 {f['freshness']['p50_ms']:.0f} ms, "
                    f"p99 {f['freshness']['p99_ms']:.0f} ms, max {f['freshness']['max_ms']:.0f} ms",
                ],
                *(_import_row(i) for i in imports_by_rows(f)),
                [
                    "billing run",
                    f"{f['billing']['lines']:,} lines for {f['billing']['workers']:,} covered "
                    f"workers: answered in {f['billing']['answer_seconds']:.1f} s, its "
                    f"{f['billing']['events']:,} events on the topic after "
                    f"{f['billing']['seconds']:.1f} s",
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


def _between_markers(document: Path, start: str, end: str, text: str) -> None:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    replaced = f"{start}\n{text}\n{end}"
    document.write_text(pattern.sub(lambda _: replaced, document.read_text()))


def write_results(figures: dict[str, Any], results: Path, document: Path | None) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    stamp = figures["started"].replace(":", "").replace("-", "")
    path = results / f"{stamp}-{figures['size']['name']}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    if document is not None:
        _between_markers(document, START, END, markdown(figures))
        _between_markers(
            document.parent / "capacity.md",
            capacity.START,
            capacity.END,
            capacity.markdown(figures),
        )
    return path
