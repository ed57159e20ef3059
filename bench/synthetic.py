"""A programme's log at any size, written straight onto the topics: what replay, audit and the
raw-Kafka ceiling are measured on.

Per worker, ten events valid under the contract, hash-chained per stream and written by each
topic's owner, exactly as the services would have published them: WorkerRegistered and
CoverageStarted (enrolment), three Verified (verification), three PremiumInvoiced and two
PremiumPaid (billing). Going through the services instead would measure ingestion, which is
measured on its own.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shared.envelope import GENESIS_HASH
from shared.eventstore.store import rfc3339
from shared.hashing import compute_hash
from shared.kafka_clients import producer_options
from shared.relay.outbox import record_headers, record_key
from shared.settings import KafkaSettings

EVENTS_PER_WORKER = 10
PREMIUM = {"total": 16_800, "jkk": 10_000, "jkm": 6_800}  # income Rp1,000,000
KELURAHAN, KECAMATAN = "33.75.03.1002", "33.75.03"
START = datetime(2025, 1, 2, 8, tzinfo=UTC)
NAMESPACE = uuid.UUID("0b6c1f0e-8d47-4a5e-9d1c-52b7a4f1c3e9")


def _sealed(worker: uuid.UUID) -> dict[str, str]:
    # Opaque to every projection; as long as a real sealed registration.
    blob = base64.b64encode(worker.bytes * 12).decode()
    return {"key_id": f"worker-{worker}", "alg": "AES-256-GCM", "ciphertext": blob}


class _Stream:
    """One stream's chain: each new envelope names the hash of the one before."""

    def __init__(self, producer: str, stream_id: str, worker: uuid.UUID) -> None:
        self.producer, self.stream_id, self.worker = producer, stream_id, worker
        self.version, self.last_hash = 0, GENESIS_HASH

    def next(self, event_type: str, data: dict[str, Any], at: datetime) -> dict[str, Any]:
        self.version += 1
        envelope: dict[str, Any] = {
            "event_id": str(uuid.uuid5(NAMESPACE, f"{self.stream_id}/{self.version}")),
            "event_type": event_type,
            "schema_version": 2 if event_type == "WorkerRegistered" else 1,
            "stream_id": self.stream_id,
            "stream_version": self.version,
            "worker_id": str(self.worker),
            "occurred_at": rfc3339(at),
            "recorded_at": rfc3339(at),
            "producer": self.producer,
            "actor": {"id": "bench", "role": "system"},
            "correlation_id": str(uuid.uuid5(NAMESPACE, str(self.worker))),
            "causation_id": None,
            "policy_version": "2025.1",
            "prev_hash": self.last_hash,
            "data": data,
        }
        envelope["hash"] = self.last_hash = compute_hash(envelope)
        return envelope


class WorkerHistory:
    """The ten events of the ``n``-th worker, one phase at a time, each stream chained."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.worker = uuid.uuid5(NAMESPACE, f"worker-{n}")
        self.case = uuid.uuid5(NAMESPACE, f"case-{n}")
        self.coverage = uuid.uuid5(NAMESPACE, f"coverage-{n}")
        self.enrolment = _Stream("enrolment", f"worker-{self.worker}", self.worker)
        self.verification = _Stream("verification", f"case-{self.worker}", self.worker)
        self.billing = _Stream("billing", f"premiums-{self.worker}", self.worker)

    def event(self, phase: int) -> tuple[str, dict[str, Any]]:
        """Phase 0 registers, 1-3 verify, 4 starts coverage, 5-7 invoice, 8-9 pay."""
        at = START + timedelta(days=phase, seconds=self.n)
        worker, n = str(self.worker), self.n
        if phase == 0:
            birth = date(1970 + n % 30, 1 + n % 12, 1 + n % 28)
            return "enrolment", self.enrolment.next(
                "WorkerRegistered",
                {
                    "worker_id": worker,
                    "personal": _sealed(self.worker),
                    "birth_date": birth.isoformat(),
                    "sex": "M",
                    "occupation_code": "tukang_becak",
                    "kelurahan_code": KELURAHAN,
                    "kecamatan_code": KECAMATAN,
                    "insured_income": 1_000_000,
                    "source": {"channel": "import", "batch_id": "bench", "row": n + 1},
                },
                at,
            )
        if phase in (1, 2):
            level = "kelurahan" if phase == 1 else "kecamatan"
            return "verification", self.verification.next(
                "Verified", {"worker_id": worker, "case_id": str(self.case), "level": level}, at
            )
        if phase == 3:
            return "verification", self.verification.next(
                "Verified",
                {
                    "worker_id": worker,
                    "case_id": str(self.case),
                    "level": "city",
                    "cohort": "regular",
                    "cover_months": 12,
                    "coverage_start": "2025-02-01",
                    "fiscal_year": 2025,
                    "decree_ref": "SK-2025-BENCH",
                },
                at,
            )
        if phase == 4:
            return "enrolment", self.enrolment.next(
                "CoverageStarted",
                {
                    "worker_id": worker,
                    "coverage_id": str(self.coverage),
                    "membership_no": f"{n + 1:010d}0",
                    "cohort": "regular",
                    "fiscal_year": 2025,
                    "programmes": ["JKK", "JKM"],
                    "start_date": "2025-02-01",
                    "end_date": "2026-01-31",
                    "monthly_premium": PREMIUM,
                    "insured_income": 1_000_000,
                    "decree_ref": "SK-2025-BENCH",
                },
                at,
            )
        if phase in (5, 6, 7):
            month = phase - 3
            return "billing", self.billing.next(
                "PremiumInvoiced",
                {
                    "worker_id": worker,
                    "invoice_id": str(uuid.uuid5(NAMESPACE, f"invoice-2025-{month:02d}")),
                    "period": f"2025-{month:02d}",
                    "coverage_id": str(self.coverage),
                    "cohort": "regular",
                    "fiscal_year": 2025,
                    "amount": PREMIUM,
                },
                at,
            )
        month = phase - 6
        return "billing", self.billing.next(
            "PremiumPaid",
            {
                "worker_id": worker,
                "period": f"2025-{month:02d}",
                "amount": PREMIUM,
                "invoice_id": str(uuid.uuid5(NAMESPACE, f"invoice-2025-{month:02d}")),
                "payment_ref": f"SP2D-2025-{month:02d}",
                "paid_on": f"2025-{month + 1:02d}-10",
                "payer": "BPKAD Kota Pekalongan",
                "cohort": "regular",
                "fiscal_year": 2025,
            },
            at,
        )


ENROLMENT_PHASES = (0, 4)  # registered, covered: what billing's coverages are made of


def programme_log(
    workers: int, phases: Sequence[int] = range(EVENTS_PER_WORKER)
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every worker's events, phase after phase, as a programme's history unfolds: all
    registrations, then the verifications, the coverages, the invoices, the payments (or only
    the ``phases`` named, each stream still chained)."""
    histories = [WorkerHistory(n) for n in range(workers)]
    for phase in phases:
        for history in histories:
            yield history.event(phase)


async def write_log(
    kafka: KafkaSettings,
    workers: int,
    progress: Callable[[int], None] = lambda _: None,
    phases: Sequence[int] = range(EVENTS_PER_WORKER),
) -> int:
    """Publish ``workers`` workers' events (of ``phases``) onto the prefix's topics; returns the
    event count."""
    producer = AIOKafkaProducer(**producer_options(kafka), linger_ms=20)
    await producer.start()
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for owner, envelope in programme_log(workers, phases):
            pending.append(
                await producer.send(
                    kafka.events_topic(owner),
                    value=orjson.dumps(envelope),
                    key=record_key(envelope),
                    headers=record_headers(envelope),
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                sent += len(pending)
                progress(len(pending))
                pending = []
        await asyncio.gather(*pending)
        sent += len(pending)
        progress(len(pending))
    finally:
        await producer.stop()
    return sent


def sample_records(count: int) -> list[bytes]:
    """Real envelopes, in the log's proportions, to cycle through when only sizes matter."""
    workers = max(1, count // EVENTS_PER_WORKER)
    return [orjson.dumps(envelope) for _, envelope in programme_log(workers)][:count]
