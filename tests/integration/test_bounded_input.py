"""Bounded input through the services' APIs on the real stack: what would once have stopped a
topic (a 1 MB heir name, a CSV row, a claim's documents) is refused with 422 naming the field
and nothing is stored; made-up methods add no metric series; ``berlian import`` goes through
the API as the officer whose token it sends."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from bench.ingestion import free_port
from deploy.cli import app as cli
from services.claims import wiring as claims_wiring
from services.enrolment import wiring as enrolment_wiring
from services.enrolment.import_jobs import ImportJobs
from services.enrolment.imports import COLUMNS, MAX_CELL_CHARS
from shared.auth import AuthSettings
from shared.bounds import NAME_CHARS
from shared.eventstore import EventStore, NewEvent
from shared.eventstore.store import CommandContext
from shared.runtime import ServiceProcess
from shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.producers import producers_in_process
from tests.integration.sandbox import isolated, running
from tests.tokens import bearer, token_for

pytestmark = pytest.mark.integration

SAPURO = "33.75.01.1004"
NIK = "3375014507800003"  # a woman born on 5 July 1980
HEADER = ",".join(COLUMNS)
WIDEST = "\U0001d400"  # four bytes in UTF-8
WIDE = WIDEST * 120_000
MEGABYTE = WIDEST * 250_000


def registration(**changes: Any) -> dict[str, Any]:
    return {
        "nik": NIK,
        "full_name": "Siti Aminah",
        "birth_date": "1980-07-05",
        "sex": "F",
        "occupation_code": "buruh_batik",
        "kelurahan_code": SAPURO,
        "address": "Gang Sapuro 3",
        "heirs": [{"name": "Darno", "relationship": "spouse"}],
        **changes,
    }


def csv_row(nik: str = NIK, full_name: str = "Siti Aminah", heir: str = "Darno") -> str:
    return f"{nik},{full_name},1980-07-05,F,buruh_batik,{SAPURO},Gang Sapuro 3,,{heir},spouse"


def refused_fields(answer: httpx.Response) -> list[str]:
    """The fields a 422 names, as dotted paths inside the body."""
    assert answer.status_code == 422, answer.text
    return [problem["field"].removeprefix("body.") for problem in answer.json()["problems"]]


async def stored_events(process: ServiceProcess) -> int:
    return int(await process.pool.fetchval(f"SELECT count(*) FROM {process.name}.events"))


async def reported(api: httpx.AsyncClient, location: str) -> list[dict[str, str]]:
    """The report of an import once its job is done (the bound only ends a broken run)."""
    officer = bearer("kelurahan_officer", SAPURO)
    for _ in range(2400):
        if (await api.get(location, headers=officer)).json()["state"] == "done":
            report = await api.get(f"{location}/report.csv", headers=officer)
            return list(csv.DictReader(io.StringIO(report.text)))
        await asyncio.sleep(0.05)
    raise AssertionError("the import never finished")


@pytest.fixture
async def enrolment(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> AsyncIterator[tuple[ServiceProcess, httpx.AsyncClient]]:
    kafka = await isolated(kafka_settings, separate_database, "bounds")
    process, service = await enrolment_wiring.build(kafka, separate_database, AuthSettings())
    async with running(process, [ImportJobs(service, poll_seconds=0.1).job()]) as api:
        yield process, api


async def test_registrations_that_would_have_stopped_the_topic_are_refused_naming_the_field(
    enrolment: tuple[ServiceProcess, httpx.AsyncClient],
) -> None:
    process, api = enrolment
    officer = bearer("kelurahan_officer", SAPURO)
    cases = {
        # 1 MB in UTF-8, inside the request's size limit: sealed, 1.3 MB, over a record's.
        "heirs.0.name": registration(heirs=[{"name": MEGABYTE, "relationship": "spouse"}]),
        "full_name": registration(full_name="Siti \u202enimA"),
        "address": registration(address="Gang\x00Sapuro"),
        "heirs.0.nik": registration(
            heirs=[{"name": "Darno", "relationship": "spouse", "nik": "٣٣٧٥٠١٤٥٠٧٨٠٠٠٠٣"}]
        ),
        "phone": registration(phone="0812\x1b[2J"),
        "heirs": registration(heirs=[{"name": "Darno", "relationship": "child"}] * 21),
    }
    for field, body in cases.items():
        answer = await api.post("/workers", json=body, headers=officer)
        assert refused_fields(answer) == [field], field
    assert await stored_events(process) == 0

    accepted = await api.post("/workers", json=registration(), headers=officer)
    assert accepted.status_code == 201, accepted.text


async def test_an_import_refuses_rows_beyond_their_bounds_and_files_with_a_doubled_column(
    enrolment: tuple[ServiceProcess, httpx.AsyncClient],
) -> None:
    process, api = enrolment
    sender = {**bearer("kelurahan_officer", SAPURO), "content-type": "text/csv"}
    rows = [
        HEADER,
        # Three cells of 480 kB each (a CSV field may hold 131,072 characters): a 1.9 MB
        # sealed registration, which would have held up the topic.
        csv_row(full_name=WIDE, heir=WIDE).replace("Gang Sapuro 3", WIDE),
        csv_row(nik="3375014507800011", heir="x" * (NAME_CHARS + 1)),
        csv_row(nik="3375014507800029", full_name="Siti\u200b"),
        "",
        csv_row(nik="3375014507800037"),
        "",
    ]
    answer = await api.post("/imports", content="\n".join(rows).encode(), headers=sender)
    assert answer.status_code == 202, answer.text
    result = await reported(api, answer.headers["location"])
    assert [(r["row"], r["outcome"]) for r in result] == [
        ("2", "refused"),
        ("3", "refused"),
        ("4", "refused"),
        ("6", "registered"),
    ]  # the blank lines 5 and 7 are no rows
    assert result[0]["reasons"].split("; ") == [
        "row: over 4,000 characters",
        *(
            f"{column}: over {MAX_CELL_CHARS:,} characters"
            for column in ("full_name", "address", "heir_name")
        ),
    ]
    assert result[1]["reasons"] == f"heir_name: should have at most {NAME_CHARS} characters"
    assert result[2]["reasons"].startswith("full_name: contains the format character")
    assert await stored_events(process) == 1

    doubled = "\n".join([HEADER + ",full_name", csv_row(nik="3375014507800045") + ",Other"])
    answer = await api.post("/imports", content=doubled.encode(), headers=sender)
    assert answer.status_code == 422
    assert "column 'full_name' twice (columns 2 and 11)" in answer.json()["detail"]
    assert await stored_events(process) == 1


async def test_a_claim_whose_documents_would_have_stopped_the_topic_is_refused(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "claimbounds")
    process, _ = await claims_wiring.build(
        kafka, separate_database, AuthSettings(), await producers_in_process(separate_database)
    )
    claim = {
        "worker_id": str(uuid.uuid4()),
        "benefit": "JKM",
        "kind": "death",
        "incident_date": "2025-01-10",
        "claimant": {"name": "Darno", "relationship": "spouse"},
    }
    # Filing a claim moves money, so it needs a key; the bodies are refused before it is kept.
    officer = bearer("claims_officer") | {"Idempotency-Key": str(uuid.uuid4())}
    async with running(process) as api:
        # Fifty documents of 20 kB each: 1 MB in one ClaimFiled event, with the claimant over
        # a record's limit.
        large = await api.post(
            "/claims", json={**claim, "documents": [WIDEST * 5_000] * 50}, headers=officer
        )
        many = await api.post(
            "/claims", json={**claim, "documents": ["akta kematian"] * 51}, headers=officer
        )
        hidden = await api.post(
            "/claims", json={**claim, "documents": ["akta\u2066kematian"]}, headers=officer
        )
        assert refused_fields(large) == [f"documents.{n}" for n in range(20)]  # the first 20
        assert large.json()["errors"] == 50
        assert refused_fields(many) == ["documents"]
        assert refused_fields(hidden) == ["documents.0"]
        assert await stored_events(process) == 0


def command_labels(service: str) -> set[str]:
    exposition = generate_latest().decode()
    return set(
        re.findall(
            rf'^berlian_commands_total\{{command="([^"]*)",outcome="[a-z]+",service="{service}"\}}',
            exposition,
            re.MULTILINE,
        )
    )


async def test_made_up_methods_and_paths_add_no_metric_series(
    enrolment: tuple[ServiceProcess, httpx.AsyncClient],
) -> None:
    _, api = enrolment
    for n in range(20):
        await api.request(f"BREW{n}", "/workers")
        await api.request(f"PROPFIND{n}", f"/made-up/{uuid.uuid4()}")
        await api.get(f"/made-up-{n}/{uuid.uuid4()}")

    labels = command_labels("enrolment")
    assert {"OTHER /workers", "OTHER unmatched", "GET unmatched"} <= labels
    assert not [label for label in labels if "BREW" in label or "made-up" in label]
    method = r"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|OTHER)"
    assert all(re.fullmatch(rf"{method} (/\S*|unmatched)", label) for label in labels), labels


async def test_berlian_import_goes_through_the_api_as_the_officer_whose_token_it_sends(
    kafka_settings: KafkaSettings, separate_database: DatabaseSettings, tmp_path: Path
) -> None:
    kafka = await isolated(kafka_settings, separate_database, "importcli")
    process, _ = await enrolment_wiring.build(kafka, separate_database, AuthSettings())
    port = free_port()
    stop = asyncio.Event()
    serving = asyncio.create_task(process.run(stop, "127.0.0.1", port))
    url = f"http://127.0.0.1:{port}"
    listing = tmp_path / "sapuro.csv"
    listing.write_text("\n".join([HEADER, csv_row()]) + "\n")
    report = tmp_path / "report.csv"

    def berlian_import(token: str | None, *extra: str) -> Any:
        env = {"BERLIAN_TOKEN": token} if token is not None else {}
        return CliRunner().invoke(
            cli, ["import", str(listing), "--api", url, *extra], env=env, catch_exceptions=False
        )

    try:
        async with httpx.AsyncClient(base_url=url) as probe:
            for _ in range(300):
                try:
                    if (await probe.get("/health/live")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        siti = token_for("kelurahan_officer", SAPURO, subject="siti")
        other_area = token_for("kelurahan_officer", "33.75.02.1001", subject="budi")

        anonymous = await asyncio.to_thread(berlian_import, "not-a-token")
        elsewhere = await asyncio.to_thread(berlian_import, other_area)
        imported = await asyncio.to_thread(berlian_import, siti, "--report", str(report))
        without = await asyncio.to_thread(berlian_import, None)
    finally:
        stop.set()
        await serving
        bodies = await process.pool.fetch("SELECT body FROM enrolment.events")
        await process.close()

    assert anonymous.exit_code == 1
    assert "(401)" in anonymous.output
    assert elsewhere.exit_code == 0, elsewhere.output
    assert "0 registered, 0 already registered, 1 refused" in elsewhere.output
    assert imported.exit_code == 0, imported.output
    assert "1 registered, 0 already registered, 0 refused" in imported.output
    assert report.read_text().splitlines()[1].startswith("2,registered,")
    assert without.exit_code != 0  # no token, no import
    actors = [orjson.loads(row["body"])["actor"] for row in bodies]
    assert actors == [{"id": subject_of(siti), "role": "kelurahan_officer"}]


def subject_of(token: str) -> str:
    """Who the token names (read, not verified: the service verified it)."""
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def test_readiness_reports_parked_events(
    enrolment: tuple[ServiceProcess, httpx.AsyncClient],
) -> None:
    process, api = enrolment
    # Around the store's check, as a record written by earlier code would be.
    bypass = EventStore(process.pool, "enrolment", "enrolment", max_envelope_bytes=64 * 2**20)
    oversized = NewEvent("CoverageEnded", {"note": "x" * 1_300_000}, datetime.now(UTC))
    await bypass.append("oversized", 0, [oversized], CommandContext("ops", "system", uuid.uuid4()))

    for _ in range(300):
        ready = await api.get("/health/ready")
        if ready.json()["warnings"]:
            break
        await asyncio.sleep(0.2)
    assert ready.status_code == 200  # the API still works: the service stays ready
    assert ready.json()["warnings"] == [
        "outbox: 1 event(s) parked, refused by the broker for good (0 waiting)"
    ]
