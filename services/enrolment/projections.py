"""Enrolment's read models: pure functions from an event to row changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.events.enrolment import (
    CoverageEnded,
    CoverageStarted,
    WorkerDetailsCorrected,
    WorkerRegistered,
)
from contract.readmodels.coverage import CoveragesProjection
from shared.eventstore.migrations import Migration
from shared.projection.changes import RowChange, Update, Upsert
from shared.projection.decode import ConsumedEvent

WORKERS_TABLE = Migration(
    "workers_v1",
    """
    CREATE TABLE {schema}.workers (
        worker_id        uuid PRIMARY KEY,
        kelurahan_code   text NOT NULL,
        kecamatan_code   text NOT NULL,
        occupation_code  text NOT NULL,
        birth_date       date NOT NULL,
        sex              char(1) NOT NULL,
        personal         jsonb NOT NULL,       -- sealed: readable only with the worker's key
        status           text NOT NULL,        -- registered, covered, ended
        registered_at    timestamptz NOT NULL,
        source_channel   text NOT NULL,
        source_batch     text,
        membership_no    text,
        cohort           text,
        coverage_start   date,
        coverage_end     date,
        end_reason       text
    );
    CREATE INDEX ON {schema}.workers (kelurahan_code, status);
    """,
)


@dataclass(frozen=True)
class WorkersProjection:
    """One row per worker: where they live, what they do, and their coverage now."""

    name: str = "workers"
    sources: Sequence[str] = ("enrolment",)
    event_types: frozenset[str] = frozenset(
        {"WorkerRegistered", "WorkerDetailsCorrected", "CoverageStarted", "CoverageEnded"}
    )
    migrations: Sequence[Migration] = (WORKERS_TABLE,)
    tables: Sequence[str] = ("workers",)

    def apply(self, event: ConsumedEvent) -> Sequence[RowChange]:
        data = event.data
        key = {"worker_id": event.envelope.worker_id}
        if isinstance(data, WorkerRegistered):
            return [
                Upsert(
                    "workers",
                    key,
                    {
                        "kelurahan_code": data.kelurahan_code,
                        "kecamatan_code": data.kecamatan_code,
                        "occupation_code": data.occupation_code,
                        "birth_date": data.birth_date,
                        "sex": data.sex,
                        "personal": data.personal.model_dump_json(),
                        "status": "registered",
                        "registered_at": event.envelope.recorded_at,
                        "source_channel": data.source.channel,
                        "source_batch": data.source.batch_id,
                    },
                )
            ]
        if isinstance(data, WorkerDetailsCorrected):
            corrected = data.model_dump(
                exclude={"worker_id", "reason", "personal"}, exclude_none=True
            )
            if data.personal is not None:
                corrected["personal"] = data.personal.model_dump_json()
            return [Update("workers", key, corrected)] if corrected else []
        if isinstance(data, CoverageStarted):
            return [
                Update(
                    "workers",
                    key,
                    {
                        "status": "covered",
                        "membership_no": data.membership_no,
                        "cohort": data.cohort,
                        "coverage_start": data.start_date,
                        "coverage_end": data.end_date,
                        "end_reason": None,
                    },
                )
            ]
        if isinstance(data, CoverageEnded):
            return [
                Update(
                    "workers",
                    key,
                    {"status": "ended", "coverage_end": data.end_date, "end_reason": data.reason},
                )
            ]
        return []


# Every coverage period (the expiry job ends each one), by the rules shared with billing and
# claims.
PROJECTIONS = (WorkersProjection(), CoveragesProjection())
