"""The event contract in code: committed schemas, compatibility, upcasting, validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from shared.events.enrolment import WorkerRegistered
from shared.events.hashing import compute_hash
from shared.events.registry import InvalidEventError, UnknownEventError, parse, upcast
from shared.events.schemas import breaking_changes, committed_schemas, generated_schemas, render
from tests.unit.chains import sealed_chain

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"


def test_committed_schemas_are_what_the_code_generates() -> None:
    committed = committed_schemas()
    generated = generated_schemas()

    assert set(committed) == set(generated), "run: python -m shared.events.schemas"
    for name, schema in generated.items():
        assert render(committed[name]) == render(schema), (
            f"{name} differs from the code: run python -m shared.events.schemas"
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
        upcast("WorkerRegistered", 7, {})


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


def test_an_unknown_field_in_data_is_refused() -> None:
    envelope = sealed_chain("s", 1)[0]
    envelope["data"] = {**envelope["data"], "bonus": 1}

    with pytest.raises(InvalidEventError, match="bonus"):
        parse(envelope)
