"""The hash chain: recomputable by any JCS implementation, and every tampering is reported."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from shared.audit.chain import Location, check_chains
from shared.hashing import canonical_json, compute_hash
from tests.unit.chains import in_partition, sealed_chain

pytestmark = pytest.mark.unit


def test_hash_is_sha256_of_prev_hash_then_the_jcs_of_the_envelope_without_hash() -> None:
    envelope = {
        "prev_hash": "0" * 64,
        "b": [1, None, True],
        "a": "Pekalongan é",
        "c": {"z": 1, "y": 2},
    }

    expected = hashlib.sha256(
        b"0" * 64
        + b'{"a":"Pekalongan \xc3\xa9","b":[1,null,true],"c":{"y":2,"z":1},"prev_hash":"'
        + b"0" * 64
        + b'"}'
    ).hexdigest()

    assert compute_hash(envelope) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_canonical_json_agrees_with_the_reference_jcs_implementation(value: dict[str, Any]) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(st.floats(allow_nan=False, allow_infinity=False), st.text(alphabet="𝔸𝔹abc", max_size=3))
def test_floats_and_astral_keys_take_the_reference_path(number: float, key: str) -> None:
    value = {key: number, "b": 1}
    assert canonical_json(value) == rfc8785.dumps(value)


def test_an_untouched_log_has_no_findings() -> None:
    log = in_partition(sealed_chain("budget-2024", 5) + sealed_chain("budget-2025", 3))

    assert check_chains(log) == []


def test_a_republished_duplicate_is_not_a_finding() -> None:
    chain = sealed_chain("budget-2024", 3)

    assert check_chains(in_partition([*chain, chain[1], chain[2]])) == []


def test_altered_data_is_reported_at_its_location() -> None:
    chain = sealed_chain("budget-2024", 4)
    chain[2] = {**chain[2], "data": {**chain[2]["data"], "amount": 999_999_999}}

    [finding] = check_chains(in_partition(chain))

    assert finding.kind == "hash_mismatch"
    assert finding.location == Location("t", 0, 2)
    assert (finding.stream_id, finding.stream_version) == ("budget-2024", 3)


def test_altered_data_with_a_recomputed_hash_breaks_the_next_link() -> None:
    chain = sealed_chain("budget-2024", 4)
    forged = {k: v for k, v in chain[1].items() if k != "hash"}
    forged["data"] = {**forged["data"], "amount": 1}
    chain[1] = {**forged, "hash": compute_hash(forged)}

    [finding] = check_chains(in_partition(chain))

    assert finding.kind == "broken_link"
    assert finding.location == Location("t", 0, 2)
    assert finding.stream_version == 3


def test_a_deleted_event_is_reported_as_a_gap_where_the_stream_resumes() -> None:
    chain = sealed_chain("budget-2024", 5)
    del chain[2]

    [finding] = check_chains(in_partition(chain))

    assert finding.kind == "gap"
    assert finding.location == Location("t", 0, 2)
    assert finding.stream_version == 4
    assert "version 3 missing" in finding.detail


def test_two_reordered_events_are_reported() -> None:
    chain = sealed_chain("budget-2024", 4)
    chain[1], chain[2] = chain[2], chain[1]

    [finding] = check_chains(in_partition(chain))

    assert finding.kind == "out_of_order"
    assert finding.location == Location("t", 0, 2)
    assert finding.stream_version == 2


def test_two_events_claiming_one_version_conflict() -> None:
    chain = sealed_chain("budget-2024", 2)
    rival = sealed_chain("budget-2024", 2, amount=7)[1]

    [finding] = check_chains(in_partition([*chain, rival]))

    assert finding.kind == "conflicting_version"
    assert finding.stream_version == 2


@given(st.integers(0, 4), st.integers(1, 10**9))
def test_any_change_to_any_amount_is_detected(index: int, amount: int) -> None:
    chain = sealed_chain("budget-2024", 5)
    if chain[index]["data"]["amount"] == amount:
        return
    chain[index] = {**chain[index], "data": {**chain[index]["data"], "amount": amount}}

    findings = check_chains(in_partition(chain))

    assert [f.kind for f in findings] == ["hash_mismatch"]
