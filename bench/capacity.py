"""The capacity plan (``docs/capacity.md``), computed from a benchmark run's figures: every
number in it is either an assumption stated in the page or arithmetic on measured rates."""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import orjson

from bench.synthetic import programme_log

START, END = "<!-- capacity:start -->", "<!-- capacity:end -->"

# Events per worker and year, by topic: the programme's rhythm (see docs/capacity.md).
EVENTS_PER_WORKER_YEAR = {
    "enrolment": 1 * 0.25 + 2 + 0.05,  # a quarter are new registrations; start and end; fixes
    "verification": 3,  # kelurahan, kecamatan and city (the designation) each year
    "billing": 12 * 2,  # each month invoiced, then paid
    "claims": 0.015 * 3,  # 1.5% claim a year: filed, decided, paid
}
SCALES = {"province": 500_000, "country": 10_000_000}
PARTITIONS = {"province": 6, "country": 24}
# Live peak: the monthly billing run invoices every covered worker within this window.
BILLING_RUN_HOURS = 2


def mean_bytes_by_topic(workers: int = 200) -> dict[str, float]:
    sizes: dict[str, list[int]] = {}
    for owner, envelope in programme_log(workers):
        sizes.setdefault(owner, []).append(len(orjson.dumps(envelope)))
    sizes.setdefault("claims", sizes["billing"])  # no claims in the log: a billing-sized event
    return {topic: sum(s) / len(s) for topic, s in sizes.items()}


async def storage(database_url: str, workers: int) -> dict[str, float]:
    """Bytes per worker of each projection table rebuilt from the log, and per stored event."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT n.nspname || '.' || c.relname AS name, pg_total_relation_size(c.oid) AS bytes "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname LIKE 'bench\\_%' "
            "AND c.relname NOT IN ('schema_migrations', 'dead_letters')"
        )
        events = await conn.fetchrow(
            "SELECT count(*) AS n, pg_total_relation_size('enrolment.events') AS bytes "
            "FROM enrolment.events"
        )
    finally:
        await conn.close()
    per_worker = {row["name"]: row["bytes"] / workers for row in tables}
    assert events is not None  # an aggregate always returns its row
    per_event = events["bytes"] / events["n"] if events["n"] else 0.0
    return {"projection_bytes_per_worker": sum(per_worker.values()), "event_bytes": per_event}


def _gb(value: float) -> str:
    return f"{value / 1e9:,.1f} GB"


def _replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def markdown(figures: dict[str, Any]) -> str:
    """The computed part of the page (between its markers)."""
    rebuild_rate = figures["replay"]["log_events_per_s"]
    import_rate = sorted(figures["imports"], key=lambda i: int(i["rows"]))[0]["rows_per_s"]
    billing = figures["billing"]
    billing_per_worker = billing["seconds"] / billing["workers"]
    sizes = mean_bytes_by_topic()
    store = figures["storage"]
    lines = [
        "Computed by `./berlian bench` from the figures of its run (docs/benchmarks.md): change an "
        "assumption in `bench/capacity.py`, or run the benchmarks again, and this part follows.",
        "",
        "## Assumptions",
        "",
        "Per worker and year: enrolment "
        f"{EVENTS_PER_WORKER_YEAR['enrolment']:.2f} events (a quarter of the workers are new and "
        "registered, every coverage starts and ends, 5% corrections); verification 3 (three "
        "levels each year); billing 24 (each month invoiced, then paid); claims "
        f"{EVENTS_PER_WORKER_YEAR['claims']:.3f} (1.5% of workers claim: filed, decided, paid). "
        "A country of 10 million workers thus has 120 million premium invoices a year, and as "
        "many payments. Event sizes are those of the benchmark's log (mean bytes per topic: "
        + ", ".join(f"{t} {b:,.0f}" for t, b in sorted(sizes.items()))
        + "). A billing run's time grows with the workers it invoices (as measured for "
        f"{billing['workers']:,}), and a rebuild's with the events in the log (the growth "
        "measurement checks it).",
        "",
        f"Measured on the benchmark machine: a full rebuild of every projection takes in "
        f"{rebuild_rate:,.0f} log events/s; a bulk import registers {import_rate:,.0f} rows/s "
        f"end to end; a billing run invoices {billing['workers']:,} covered workers in "
        f"{billing['seconds']:,.1f} s; a stored event takes {store['event_bytes']:,.0f} bytes "
        "in PostgreSQL (row, body and indexes); all projections together take "
        f"{store['projection_bytes_per_worker']:,.0f} bytes per worker (measured with ten "
        "events a worker).",
    ]
    for scale, workers in SCALES.items():
        per_topic = {t: workers * n for t, n in EVENTS_PER_WORKER_YEAR.items()}
        total = sum(per_topic.values())
        peak = workers / (BILLING_RUN_HOURS * 3600)
        partitions = PARTITIONS[scale]
        run_hours = workers * billing_per_worker / 3600
        one = total / rebuild_rate
        lines += [
            "",
            f"## {scale.capitalize()}: {workers:,} workers",
            "",
            "| topic | events a year | bytes a year (before compression) |",
            "|---|---|---|",
            *(
                f"| {t} | {per_topic[t]:,.0f} = {workers:,} x {n:g} | "
                f"{_gb(per_topic[t] * sizes[t])} = {per_topic[t]:,.0f} x {sizes[t]:,.0f} B |"
                for t, n in EVENTS_PER_WORKER_YEAR.items()
            ),
            f"| all | {total:,.0f} | {_gb(sum(per_topic[t] * sizes[t] for t in per_topic))} |",
            "",
            f"- **Live load**: the busiest moment is the monthly billing run, {workers:,} "
            f"invoices within {BILLING_RUN_HOURS} h = {peak:,.0f} events/s at least, then as "
            f"many payments; the projections take in {rebuild_rate:,.0f} log events/s together "
            f"when rebuilding, so {_replicas(math.ceil(peak / rebuild_rate))} per projection "
            "keep up; more replicas serve availability, not throughput.",
            f"- **Billing run**: {workers:,} x {billing_per_worker * 1000:,.3f} ms = "
            f"{run_hours * 3600:,.0f} s ({run_hours:,.2f} h) in one process, as measured; "
            + (
                f"within its {BILLING_RUN_HOURS} h window."
                if run_hours <= BILLING_RUN_HOURS
                else f"over its {BILLING_RUN_HOURS} h window: split by kecamatan across "
                f"{_replicas(math.ceil(run_hours / BILLING_RUN_HOURS))} at least."
            ),
            f"- **Enrolment**: a first load of all {workers:,} workers by bulk import takes "
            f"{workers / import_rate / 3600:,.1f} h at {import_rate:,.0f} rows/s.",
            f"- **Partitions**: {partitions} per topic, so that up to {partitions} consumer "
            "replicas can share a rebuild (replicas never exceed partitions).",
            f"- **PostgreSQL**: event stores {_gb(total * store['event_bytes'])} a year "
            f"({total:,.0f} x {store['event_bytes']:,.0f} B); projections "
            f"{_gb(workers * store['projection_bytes_per_worker'])} "
            f"({workers:,} x {store['projection_bytes_per_worker']:,.0f} B, measured with five "
            "premium months per worker; each further month kept adds its rows).",
            f"- **Full rebuild of one year**: {total:,.0f} log events at {rebuild_rate:,.0f} "
            f"log events/s is {one / 3600:,.1f} h as measured on this machine; scaled by "
            f"partitions, {one / partitions / 3600:,.2f} h with {partitions} processes on "
            "cores of their own (PostgreSQL sized to match); each further year of history adds "
            "as much.",
        ]
    return "\n".join(lines)
