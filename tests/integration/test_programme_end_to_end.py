"""The whole programme, end to end: the four services as real processes, a smaller demo through
their HTTP APIs, the figures checked on the topics and in every projection, every projection
rebuilt from the topics and found identical, and the log verified."""

from __future__ import annotations

from collections import Counter

import asyncpg
import httpx
import pytest

from deploy.demo import programme
from services.catalog import migrate_all
from services.restore import restore_service
from shared.audit.verify import verify_topics
from shared.projection.replay import rows_differing
from shared.settings import SERVICES, DatabaseSettings, KafkaSettings
from tests.integration.programme_world import (
    PORTS,
    SIZE,
    World,
    envelopes,
    projections_differing,
    stop,
    world,
)

__all__ = ["world"]  # the fixture, used by name

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PREMIUM = 16_800
SERIES = (
    "berlian_commands_total",
    "berlian_command_duration_seconds_bucket",
    "berlian_events_appended_total",
    "berlian_outbox_backlog",
    "berlian_outbox_publish_duration_seconds_bucket",
    "berlian_events_consumed_total",
    "berlian_projection_lag_records",
    "berlian_projection_lag_seconds",
)


async def test_the_programme_end_to_end(
    world: World,
) -> None:
    kafka, database, processes = world
    result = await programme(SIZE, {s: f"http://127.0.0.1:{p}" for s, p in PORTS.items()})

    # Every service, still running, answers its health probes and exports its series.
    async with httpx.AsyncClient() as client:
        for service, port in PORTS.items():
            base = f"http://127.0.0.1:{port}"
            assert (await client.get(f"{base}/health/live")).status_code == 200
            assert (await client.get(f"{base}/health/ready")).json()["ready"] is True
            metrics = (await client.get(f"{base}/metrics")).text
            for series in SERIES:
                assert f"{series}{{" in metrics, (service, series)
            assert f'outcome="accepted",service="{service}"' in metrics

    # What the demo reports.
    assert result["imported"]["registered"] == 27 * SIZE.per_kelurahan - 27
    covered = Counter()
    for row in result["summary"]["workers"]:
        covered[(row["status"], row["cohort"])] += row["workers"]
    assert covered[("covered", "regular")] + covered[("ended", "regular")] == SIZE.regular
    assert covered[("covered", "incidental")] + covered[("ended", "incidental")] == SIZE.incidental
    incidental_months = sum(1 + i % 3 for i in range(SIZE.incidental))
    budget = {row["cohort"]: row for row in result["budget"]["cohorts"]}
    # FY2024 regular: the cohort, two of them renewed since 2022 (Aug 2024 - Jul 2025).
    # Three deaths in the regular cohort stop its later months (June 14: July to October; Feb 3:
    # March to October; May 21: June to October), invoiced and paid before: now owed back.
    stopped = {row["label"]: row for row in result["deaths"]}
    assert len(stopped["JKM death, active member"]["stopped"]) == 4
    assert len(stopped["JKM death during arrears"]["stopped"]) == 8
    assert len(stopped["work-accident death"]["stopped"]) == 5
    assert stopped["JKM death after 3 years of membership"]["stopped"] == []
    assert budget["regular"]["paid"] == SIZE.regular * 12 * PREMIUM
    assert budget["regular"]["invoiced"] == (SIZE.regular * 12 - 17) * PREMIUM
    assert (
        budget["incidental"]["invoiced"]
        == budget["incidental"]["paid"]
        == incidental_months * PREMIUM
    )
    claims = {row["label"]: row for row in result["claims"]}
    assert claims["JKM death, active member"]["now"] == "paid"
    assert (
        claims["JKM death during arrears"]["first"],
        claims["JKM death during arrears"]["now"],
    ) == ("pending", "paid")
    assert claims["work-accident death"]["total"] == 70_000_000
    assert claims["temporary incapacity, 14 months"]["total"] == 13_000_000
    assert claims["death after incidental cover ended"]["reasons"] == "not_covered"
    assert claims["JKM death after 3 years of membership"]["total"] == 42_000_000
    # Two children at SMP and SD: SMP 3 x Rp2M, SMA 3 x Rp3M, university until 23; SD on.
    # An award in yearly instalments: the school year in progress paid (SMP Rp2M, SD Rp1.5M),
    # the later years open on the award, each naming its child.
    grant = claims["scholarship for two children"]
    assert (grant["now"], grant["total"]) == ("paid", 2_000_000 + 1_500_000)
    assert sorted(i["child"] for i in grant["items"]) == ["child-1", "child-2"]
    assert {i["child"] for i in grant["open_instalments"]} == {"child-1", "child-2"}

    # The same figures on the topics.
    billing_events = await envelopes(kafka, "billing")
    paid = [e for e in billing_events if e["event_type"] == "PremiumPaid"]
    veteran_months = 2 * 36  # two workers covered from August 2022 to July 2025
    paid_total = sum(e["data"]["amount"]["total"] for e in paid)  # type: ignore[index]
    assert paid_total == ((SIZE.regular - 2) * 12 + incidental_months + veteran_months) * PREMIUM
    claim_events = await envelopes(kafka, "claims")
    claim_payments = [e["data"]["amount"] for e in claim_events if e["event_type"] == "ClaimPaid"]  # type: ignore[index]
    scholarship = claims["scholarship for two children"]["total"]
    assert sorted(claim_payments) == sorted(
        [13_000_000, 42_000_000, 42_000_000, 42_000_000, 70_000_000, scholarship]
    )
    enrolment_events = await envelopes(kafka, "enrolment")
    ended = [e["data"]["reason"] for e in enrolment_events if e["event_type"] == "CoverageEnded"]  # type: ignore[index]
    assert Counter(ended)["deceased"] == 4

    # Every projection of every service, rebuilt from the topics, equals the live one.
    assert await projections_differing(kafka, database, SERVICES) == []
    stop(processes.values())

    await restore_after_losing_the_database(kafka, database)
    report = await verify_topics(kafka, [kafka.events_topic(s) for s in SERVICES])
    assert report.ok, report.findings[:5]
    assert report.events == len(billing_events) + len(claim_events) + len(enrolment_events) + len(
        await envelopes(kafka, "verification")
    )


# What a restore brings back, table by table; "*" compares whole rows.
RESTORED = {
    "events": "event_id, stream_id, stream_version, event_type, schema_version, worker_id, "
    "recorded_at, hash, body",
    "streams": "*",
    "nik_index": "*",
    "designation_counts": "*",
    "invoices": "*",
    "invoice_lines": "*",
    "worker_claims": "*",
}
WRITE_SIDE = {
    "enrolment": ("nik_index",),
    "verification": ("designation_counts",),
    "billing": ("invoices", "invoice_lines"),
    "claims": ("worker_claims",),
}


async def restore_after_losing_the_database(
    kafka: KafkaSettings, database: DatabaseSettings
) -> None:
    """Every service schema set aside as if lost (the keystore, backed up apart, stays), then
    restored from the topics: the event stores and write sides equal the originals."""
    admin = await asyncpg.create_pool(database.database_url, min_size=1, max_size=2)
    try:
        for service in SERVICES:
            await admin.execute(f"ALTER SCHEMA {service} RENAME TO {service}_lost")
        await migrate_all(database)
        for service in SERVICES:
            restored = await restore_service(service, kafka, database)
            assert restored.store.events == await admin.fetchval(
                f"SELECT count(*) FROM {service}_lost.events"
            )
            for table in ("events", "streams", *WRITE_SIDE[service]):
                differs = await rows_differing(
                    admin, table, service, f"{service}_lost", RESTORED[table]
                )
                assert differs == 0, f"{service}.{table}"
            reactions = (
                "SELECT idempotency_key, stream_id, event_ids, first_version, last_version "
                "FROM {}.commands WHERE idempotency_key LIKE 'reaction:%' EXCEPT ALL "
                "SELECT idempotency_key, stream_id, event_ids, first_version, last_version "
                "FROM {}.commands"
            )
            assert await admin.fetch(reactions.format(f"{service}_lost", service)) == []
        sequence = "SELECT last_value FROM {}.membership_seq"
        assert await admin.fetchval(sequence.format("enrolment")) == await admin.fetchval(
            sequence.format("enrolment_lost")
        )
    finally:
        await admin.close()
