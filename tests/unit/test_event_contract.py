"""The event contract in code: committed schemas, compatibility, upcasting, validation."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError, create_model

from contract.events.enrolment import CoverageStarted, WorkerRegistered
from contract.events.registry import CATALOGUE, parse
from contract.events.schemas import (
    breaking_changes,
    committed_schemas,
    generated_schemas,
    reader_schema,
    render,
)
from contract.events.types import Contract
from shared.catalogue import InvalidEventError, UnknownEventError
from shared.hashing import compute_hash
from shared.projection.decode import StreamPosition, UnprocessableRecordError, decode
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"


def test_committed_schemas_are_what_the_code_generates() -> None:
    committed = committed_schemas()
    generated = generated_schemas()

    assert set(committed) == set(generated), "run: python -m contract.events.schemas"
    for name, schema in generated.items():
        assert render(committed[name]) == render(schema), (
            f"{name} differs from the code: run python -m contract.events.schemas"
        )


def test_no_committed_version_is_broken_by_the_current_code() -> None:
    generated = generated_schemas()

    for name, old in committed_schemas().items():
        assert breaking_changes(old, generated[name]) == [], name


def test_a_removed_or_retyped_or_newly_required_field_is_a_breaking_change() -> None:
    old = committed_schemas()["CoverageStarted.v1.json"]
    removed = copy.deepcopy(old)
    del removed["properties"]["membership_no"]
    retyped = copy.deepcopy(old)
    retyped["properties"]["fiscal_year"] = {"type": "string"}
    required = copy.deepcopy(old)
    required["properties"]["note"] = {"type": "string"}
    required["required"] = [*old["required"], "note"]
    optional_added = copy.deepcopy(old)
    optional_added["properties"]["note"] = {"type": "string"}

    assert breaking_changes(old, removed) == ["field 'membership_no' was removed"]
    assert breaking_changes(old, retyped) == ["field 'fiscal_year' changed type"]
    assert breaking_changes(old, required) == ["field 'note' is now required"]
    assert breaking_changes(old, optional_added) == []


def test_a_stored_v1_worker_registration_reads_through_the_v2_model() -> None:
    stored = json.loads((FIXTURES / "WorkerRegistered.v1.json").read_text())

    envelope, data = parse(stored)

    assert compute_hash({k: v for k, v in stored.items() if k != "hash"}) == stored["hash"]
    assert envelope.schema_version == 1
    assert isinstance(data, WorkerRegistered)
    assert data.source.channel == "import"
    assert data.source.batch_id is None


def test_upcasting_an_unknown_version_names_it() -> None:
    with pytest.raises(UnknownEventError, match="WorkerRegistered has no schema version 7"):
        CATALOGUE.upcast("WorkerRegistered", 7, {})


def test_an_unknown_event_type_is_named() -> None:
    envelope = {**sealed_chain("s", 1)[0], "event_type": "WorkerTeleported"}

    with pytest.raises(UnknownEventError, match="WorkerTeleported"):
        parse(envelope)


def test_invalid_data_names_the_field_and_the_problem() -> None:
    envelope = sealed_chain("s", 1)[0]
    envelope["data"] = {**envelope["data"], "source": "DANA-DESA", "amount": -5}

    with pytest.raises(InvalidEventError) as raised:
        parse(envelope)

    assert "source" in str(raised.value)
    assert "amount" in str(raised.value)


def newer_coverage_started(**added: Any) -> type[BaseModel]:
    """CoverageStarted as a newer producer might define it, with fields ``added`` to it."""
    return create_model("CoverageStartedNewer", __base__=CoverageStarted, **added)


def without(field: str, **retyped: Any) -> type[BaseModel]:
    """CoverageStarted with ``field`` removed and ``retyped`` fields given new types."""
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in CoverageStarted.model_fields.items()
    }
    del fields[field]
    fields.update(retyped)
    return create_model("CoverageStartedChanged", __base__=Contract, **fields)


def coverage_envelope(data: dict[str, Any]) -> bytes:
    envelope = {
        **sealed_chain("coverage-1", 1)[0],
        "event_type": "CoverageStarted",
        "producer": "enrolment",
        "data": data,
    }
    envelope.pop("hash")
    return orjson.dumps({**envelope, "hash": compute_hash(envelope)})


COVERAGE = {
    "worker_id": str(uuid.uuid4()),
    "coverage_id": str(uuid.uuid4()),
    "membership_no": "12345678901",
    "cohort": "regular",
    "fiscal_year": 2024,
    "programmes": ["JKK", "JKM"],
    "start_date": "2024-11-01",
    "end_date": "2025-10-31",
    "monthly_premium": {"total": 16800, "jkk": 10080, "jkm": 6720},
    "insured_income": 1_000_000,
    "decree_ref": "SK-1",
}


def test_a_consumer_reads_an_event_from_a_newer_producer_with_an_added_optional_field() -> None:
    newer = newer_coverage_started(channel_note=(str | None, None))
    written = newer.model_validate({**COVERAGE, "channel_note": "from the kelurahan desk"})
    data = written.model_dump(mode="json")
    data["monthly_premium"]["currency"] = "IDR"  # a new field in a nested object too

    consumed = decode(coverage_envelope(data), "t", 0, 0, "enrolment", CATALOGUE)

    assert breaking_changes(reader_schema(CoverageStarted), reader_schema(newer)) == []
    assert isinstance(consumed.data, CoverageStarted)
    assert consumed.data == CoverageStarted.model_validate(COVERAGE)
    assert consumed.envelope.data["channel_note"] == "from the kelurahan desk"  # kept, unread


def test_a_producer_still_refuses_a_field_the_contract_does_not_name() -> None:
    with pytest.raises(ValidationError, match="channel_note"):
        CoverageStarted.model_validate({**COVERAGE, "channel_note": "x"})
    with pytest.raises(ValidationError, match="currency"):
        CoverageStarted.model_validate(
            {**COVERAGE, "monthly_premium": {**COVERAGE["monthly_premium"], "currency": "IDR"}}
        )


def test_removing_or_retyping_a_field_without_a_new_version_is_refused_as_breaking() -> None:
    committed = committed_schemas()["CoverageStarted.v1.json"]
    removed = without("decree_ref")
    retyped = without("decree_ref", fiscal_year=(str, ...))

    assert breaking_changes(committed, reader_schema(removed)) == ["field 'decree_ref' was removed"]
    assert breaking_changes(committed, reader_schema(retyped)) == [
        "field 'decree_ref' was removed",
        "field 'fiscal_year' changed type",
    ]
    # And the current consumer could not read what such a producer writes.
    kept = {name: value for name, value in COVERAGE.items() if name != "decree_ref"}
    written = retyped.model_validate({**kept, "fiscal_year": "FY2024"}).model_dump(mode="json")
    with pytest.raises(UnprocessableRecordError, match="decree_ref") as refused:
        decode(coverage_envelope(written), "t", 0, 0, "enrolment", CATALOGUE)
    assert "fiscal_year" in str(refused.value)
    assert refused.value.stream == StreamPosition("coverage-1", 1)


def test_the_published_schemas_let_a_reader_meet_unknown_fields() -> None:
    for name, schema in committed_schemas().items():
        assert '"additionalProperties": false' not in render(schema), name
