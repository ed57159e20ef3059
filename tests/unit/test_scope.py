"""Who reaches which places: exact codes from the role and the token's area, never prefixes."""

from __future__ import annotations

import pytest

from shared.auth import Principal, Role
from shared.scope import AreaClaimError, AreaScope, OutsideAreaError

pytestmark = pytest.mark.unit
SAPURO, MEDONO, KRAPYAK = "33.75.01.1004", "33.75.01.1002", "33.75.03.1002"
BARAT = "33.75.01"


def scope(role: Role, area: object) -> AreaScope:
    return AreaScope.of(Principal("someone", role, area))  # type: ignore[arg-type]


def test_a_kelurahan_officer_reaches_exactly_their_kelurahan() -> None:
    officer = scope("kelurahan_officer", SAPURO)
    assert officer.allows(SAPURO)
    assert not officer.allows(MEDONO)  # same kecamatan, another kelurahan
    assert not officer.allows(KRAPYAK)
    assert not officer.allows(SAPURO + "0")  # the code followed by more digits
    assert not officer.allows(None)
    assert officer.covers(SAPURO)
    assert not officer.covers(BARAT)  # not the whole kecamatan


def test_a_kecamatan_officer_reaches_the_kelurahan_of_their_kecamatan_by_parsed_code() -> None:
    officer = scope("kecamatan_officer", BARAT)
    assert officer.allows(SAPURO)
    assert officer.allows(MEDONO)
    assert not officer.allows(KRAPYAK)
    assert not officer.allows("33.75.010.1004")  # a prefix match would take this
    assert not officer.allows(BARAT)  # a kecamatan is not a kelurahan
    assert officer.covers(BARAT)
    assert officer.covers(SAPURO)
    assert not officer.covers("33.75.03")


@pytest.mark.parametrize("role", ["city_admin", "billing_officer", "claims_officer", "auditor"])
def test_the_city_roles_reach_the_whole_city(role: Role) -> None:
    city = scope(role, None)
    assert city.level == "city"
    assert city.allows(SAPURO)
    assert city.allows(KRAPYAK)
    assert city.covers(BARAT)
    assert city.sql_filter(1, "kelurahan_code", "kecamatan_code").condition == "TRUE"


@pytest.mark.parametrize(
    ("role", "area"),
    [
        ("kelurahan_officer", ""),
        ("kelurahan_officer", "33.75"),
        ("kelurahan_officer", BARAT),  # a kecamatan code for a kelurahan officer
        ("kelurahan_officer", "33.75.01.100"),
        ("kelurahan_officer", "33.75.01.1004 "),
        ("kelurahan_officer", "33.75.01.1٠٠4"),  # Arabic-Indic digits
        ("kelurahan_officer", None),
        ("kelurahan_officer", 33750110),
        ("kelurahan_officer", [SAPURO]),
        ("kecamatan_officer", SAPURO),
        ("kecamatan_officer", "33.75"),
        ("kecamatan_officer", ""),
        ("kecamatan_officer", {"kecamatan": BARAT}),
        ("city_admin", BARAT),  # city roles carry no area
        ("auditor", ""),
    ],
)
def test_an_area_that_does_not_fit_the_role_is_refused(role: Role, area: object) -> None:
    with pytest.raises(AreaClaimError):
        scope(role, area)


def test_an_unknown_role_has_no_scope() -> None:
    with pytest.raises(AreaClaimError, match="no area of work"):
        AreaScope.of(Principal("x", "mayor", None))  # type: ignore[arg-type]


def test_acting_outside_the_area_names_both_places() -> None:
    with pytest.raises(OutsideAreaError) as refused:
        scope("kelurahan_officer", SAPURO).require(KRAPYAK, "register a worker")
    assert KRAPYAK in str(refused.value)
    assert SAPURO in str(refused.value)


def test_acting_on_something_out_of_reach_answers_as_if_it_did_not_exist() -> None:
    missing = LookupError("no worker 42")
    with pytest.raises(LookupError) as refused:
        scope("kelurahan_officer", SAPURO).hide_outside(KRAPYAK, missing)
    assert refused.value is missing
    scope("kecamatan_officer", BARAT).hide_outside(SAPURO, missing)
    scope("city_admin", None).hide_outside(KRAPYAK, missing)


def test_the_sql_filter_compares_whole_codes_in_bind_arguments() -> None:
    kelurahan = scope("kelurahan_officer", SAPURO).sql_filter(3, "kelurahan_code", "c.kecamatan")
    assert (kelurahan.condition, kelurahan.args) == ("kelurahan_code = $3", (SAPURO,))
    kecamatan = scope("kecamatan_officer", BARAT).sql_filter(1, "kelurahan_code", "c.kecamatan")
    assert (kecamatan.condition, kecamatan.args) == ("c.kecamatan = $1", (BARAT,))
    with pytest.raises(ValueError, match="not a column"):
        scope("kecamatan_officer", BARAT).sql_filter(1, "k; DROP TABLE x", "kecamatan_code")


def test_rows_recorded_in_a_scope_are_found_by_its_filter_only() -> None:
    officer = scope("kelurahan_officer", SAPURO)
    assert officer.row_codes() == (SAPURO, BARAT)
    assert scope("kecamatan_officer", BARAT).row_codes() == (None, BARAT)
    assert scope("city_admin", None).row_codes() == (None, None)


@pytest.mark.parametrize(
    ("role", "area", "acts"),
    [
        ("kelurahan_officer", SAPURO, True),
        ("kecamatan_officer", BARAT, True),
        ("city_admin", None, True),
        ("claims_officer", None, True),
        ("billing_officer", None, False),
        ("auditor", None, False),
    ],
)
def test_only_roles_acting_on_people_see_them(role: Role, area: str | None, acts: bool) -> None:
    assert scope(role, area).acts_on_people is acts
