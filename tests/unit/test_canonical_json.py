"""The canonical-JSON fast path: orjson's sorted output is taken only where it is byte for byte
what the RFC 8785 reference writes, and an envelope as the services write it always takes it."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.hashing import canonical_json, orjson_canonical

pytestmark = pytest.mark.unit

SAFE = 2**53 - 1
# Every character of the BMP but the surrogates (not encodable, so never in a decoded string):
# control characters, quotes and backslashes to escape, and keys that sort differently by
# UTF-16 code units and by bytes only when a character outside the BMP is involved.
bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=12)
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)

safe_values = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE, SAFE) | bmp_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(bmp_text, children, max_size=4)
    ),
    max_leaves=20,
)
uuids = st.uuids().map(str)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30))]
)
instants = st.datetimes(timezones=zones).map(lambda at: at.isoformat())
hashes = st.binary(min_size=32, max_size=32).map(bytes.hex)

envelopes = st.fixed_dictionaries(
    {
        "event_id": uuids,
        "event_type": bmp_text,
        "schema_version": st.integers(1, SAFE),
        "stream_id": bmp_text,
        "stream_version": st.integers(1, SAFE),
        "worker_id": st.none() | uuids,
        "occurred_at": instants,
        "recorded_at": instants,
        "producer": bmp_text,
        "actor": st.fixed_dictionaries({"id": bmp_text, "role": bmp_text}),
        "correlation_id": uuids,
        "causation_id": st.none() | uuids,
        "policy_version": st.none() | bmp_text,
        "prev_hash": hashes,
        "data": st.dictionaries(bmp_text, safe_values, max_size=8),
    }
)

# Anything JSON decodes to: floats, integers beyond JCS's domain, characters outside the BMP.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(envelopes)
def test_an_envelope_takes_the_fast_path_and_it_writes_exactly_rfc_8785(
    envelope: dict[str, Any],
) -> None:
    fast = orjson_canonical(envelope)

    assert fast is not None
    assert fast == rfc8785.dumps(envelope)


@settings(deadline=None)
@given(json_values)
def test_whatever_the_fast_path_writes_is_rfc_8785(value: Any) -> None:
    fast = orjson_canonical(value)

    if fast is not None:
        assert fast == rfc8785.dumps(value)


# Keys where the two orders part: U+1D538 is D835 DD38 in UTF-16, before U+FB00 and U+FFFF.
@settings(deadline=None)
@given(st.dictionaries(st.text(alphabet="𝔸ﬀ\uffffa", max_size=3), st.integers(0, 3)))
def test_keys_sorted_by_utf16_units_never_take_orjsons_order(value: dict[str, int]) -> None:
    fast = orjson_canonical(value)

    if fast is not None:
        assert fast == rfc8785.dumps(value)


@settings(deadline=None)
@given(json_values)
def test_canonical_json_is_rfc_8785_or_refuses_like_it(value: Any) -> None:
    try:
        expected = rfc8785.dumps({"value": value})
    except rfc8785.CanonicalizationError:
        with pytest.raises(rfc8785.CanonicalizationError):
            canonical_json({"value": value})
    else:
        assert canonical_json({"value": value}) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1.0},
        {"a": [1, {"b": -0.0}]},
        {"a": 1e20},
        {"a": 5e-324},
        {"a\\": 'x"', "b": 2.5},  # escapes: the strings cut out exactly
        {"𝔸": 1, "ﬀ": 2},  # JCS puts U+1D538 (UTF-16 D835 DD38) before U+FB00
        {"a": 2**53},
        1.5,
    ],
)
def test_floats_astral_characters_and_large_integers_leave_the_fast_path(value: Any) -> None:
    assert orjson_canonical(value) is None


@pytest.mark.parametrize(
    "value",
    [
        {"recorded_at": "2026-12-01T03:00:00.123456Z", "policy_version": "2025.1"},
        {"note": "1.5e3 [1.0] true false", "flag": True, "off": False, "n": 15},
        {"quoted": 'a "1.5" \\ b', "n": -7},
    ],
)
def test_strings_that_look_like_floats_stay_on_the_fast_path(value: Any) -> None:
    assert orjson_canonical(value) == rfc8785.dumps(value)
