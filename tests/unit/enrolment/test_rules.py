"""Enrolment's checks on identity, age, occupation and residence."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.policy import policy_book
from contract.policy.eligibility import age_on, check_age, coverage_age_limit_end
from services.enrolment.rules import (
    check_kelurahan,
    check_nik,
    check_occupation,
    membership_number,
)

pytestmark = pytest.mark.unit
BOOK = policy_book()
POLICY_2024 = BOOK.in_force(date(2024, 6, 1))
POLICY_2022 = BOOK.in_force(date(2022, 9, 1))


def nik(day: int, month: int, year: int, serial: int = 1) -> str:
    return f"337501{day:02d}{month:02d}{year % 100:02d}{serial:04d}"


def test_a_man_s_nik_encodes_his_birth_date() -> None:
    assert check_nik(nik(5, 7, 1980), date(1980, 7, 5), "M") == []


def test_a_woman_born_on_the_31st_has_day_71() -> None:
    assert check_nik(nik(71, 1, 1975), date(1975, 1, 31), "F") == []


def test_day_72_is_no_day_at_all() -> None:
    [problem] = check_nik(nik(72, 1, 1975), date(1975, 1, 31), "F")
    assert problem.field == "nik"
    assert "women 41-71" in problem.message


def test_31_april_is_not_a_real_date() -> None:
    [problem] = check_nik(nik(31, 4, 1980), date(1980, 4, 30), "M")
    assert "not a real date" in problem.message


def test_29_february_exists_only_in_leap_years() -> None:
    assert check_nik(nik(69, 2, 1984), date(1984, 2, 29), "F") == []
    [problem] = check_nik(nik(29, 2, 1983), date(1983, 3, 1), "M")
    assert "not a real date" in problem.message


def test_serial_0000_is_refused() -> None:
    [problem] = check_nik(nik(5, 7, 1980, serial=0), date(1980, 7, 5), "M")
    assert "0000" in problem.message


def test_the_nik_must_agree_with_declared_sex_and_birth_date() -> None:
    problems = check_nik(nik(45, 7, 1980), date(1980, 7, 6), "M")
    assert {p.field for p in problems} == {"birth_date", "sex"}


@pytest.mark.parametrize("value", ["337501050780000", "33750105078000012", "3375010507800O01"])
def test_a_nik_is_16_digits(value: str) -> None:
    [problem] = check_nik(value, date(1980, 7, 5), "M")
    assert problem.message == "must be exactly 16 digits"


def test_turning_18_on_the_day_of_registration_is_old_enough() -> None:
    assert check_age(date(2006, 3, 10), date(2024, 3, 10), POLICY_2024) == []
    [problem] = check_age(date(2006, 3, 11), date(2024, 3, 10), POLICY_2024)
    assert "age 17" in problem.message


def test_65_is_the_last_eligible_age_and_66_is_too_old() -> None:
    assert check_age(date(1958, 3, 11), date(2024, 3, 10), POLICY_2024) == []
    assert check_age(date(1958, 3, 10), date(2024, 3, 10), POLICY_2024) != []


def test_someone_born_on_29_february_ages_on_1_march_in_common_years() -> None:
    assert age_on(date(2004, 2, 29), date(2022, 2, 28)) == 17
    assert age_on(date(2004, 2, 29), date(2022, 3, 1)) == 18


def test_the_catalogue_grew_from_11_to_21_categories_in_2023() -> None:
    assert len(POLICY_2022.occupations) == 11
    assert len(POLICY_2024.occupations) == 21
    assert check_occupation("buruh_batik", POLICY_2024) == []
    [problem] = check_occupation("buruh_batik", POLICY_2022)
    assert "policy 2022.1, 11 categories" in problem.message


def test_only_the_27_kelurahan_of_kota_pekalongan() -> None:
    assert len(BOOK.kelurahan) == 27
    assert BOOK.kelurahan["33.75.01.1004"].name == "Sapuro Kebulen"
    assert BOOK.kelurahan["33.75.04.1010"].kecamatan_name == "Pekalongan Selatan"
    assert check_kelurahan("33.75.01.1004", BOOK) == []
    assert check_kelurahan("33.75.01.1005", BOOK) != []


def test_coverage_ends_with_the_month_of_the_66th_birthday() -> None:
    assert coverage_age_limit_end(date(1960, 5, 14), 66) == date(2026, 5, 31)
    assert coverage_age_limit_end(date(1960, 2, 29), 66) == date(2026, 2, 28)


def test_the_monthly_premium_is_16800_split_10000_and_6800() -> None:
    premium = POLICY_2024.monthly_premium
    assert (premium.total, premium.jkk, premium.jkm) == (16_800, 10_000, 6_800)


def test_membership_numbers_have_11_digits_and_a_luhn_check_digit() -> None:
    number = membership_number(7992739871)
    assert number == "79927398713"
    assert len(membership_number(1)) == 11


def reference_nik_ok(value: str, birth: date, sex: str) -> bool:
    """An independent statement of the NIK rules, for the property below."""
    if len(value) != 16 or not value.isdigit():
        return False
    day, month, year, serial = int(value[6:8]), int(value[8:10]), int(value[10:12]), int(value[12:])
    female = day > 40
    real_day = day - 40 if female else day
    try:
        date(birth.year, month, real_day)
    except ValueError:
        return False
    return (
        serial > 0
        and (real_day, month, year) == (birth.day, birth.month, birth.year % 100)
        and ("F" if female else "M") == sex
    )


@given(
    st.dates(min_value=date(1940, 1, 1), max_value=date(2010, 12, 31)),
    st.sampled_from(["M", "F"]),
    st.integers(0, 80),
    st.integers(0, 13),
    st.integers(0, 3),
)
def test_nik_validation_agrees_with_the_reference(
    birth: date, sex: str, day: int, month: int, serial: int
) -> None:
    value = f"337501{day:02d}{month:02d}{birth.year % 100:02d}{serial:04d}"
    assert (check_nik(value, birth, sex) == []) == reference_nik_ok(value, birth, sex)


def reference_accepts(value: str, birth_date: date, sex: str) -> bool:
    """The brief's NIK rule, written out plainly: 16 ASCII digits PP KK CC DD MM YY SSSS, the
    day plus 40 for a woman, a real date equal to the declared birth date, serial not 0000."""
    if len(value) != 16 or any(c not in "0123456789" for c in value):
        return False
    encoded_day, month, year = int(value[6:8]), int(value[8:10]), int(value[10:12])
    woman = encoded_day > 40
    if value[12:] == "0000" or sex != ("F" if woman else "M") or birth_date.year % 100 != year:
        return False
    try:
        return date(birth_date.year, month, encoded_day - 40 * woman) == birth_date
    except ValueError:
        return False


@st.composite
def identities(draw: st.DrawFn) -> tuple[str, date, str]:
    """A declared person and a NIK: often theirs, often theirs with one thing changed."""
    birth = draw(st.dates(date(1940, 1, 1), date(2010, 12, 31)))
    sex = draw(st.sampled_from(["M", "F"]))
    day = birth.day + (40 if sex == "F" else 0)
    value = f"{draw(st.from_regex(r'33750[1-4]', fullmatch=True))}{day:02d}{birth:%m%y}"
    value += f"{draw(st.integers(0, 9999)):04d}"
    mutation = draw(st.integers(0, 5))
    if mutation == 1:  # another sex or birth date declared
        sex = "F" if sex == "M" else "M"
    elif mutation == 2:
        birth = draw(st.dates(date(1940, 1, 1), date(2010, 12, 31)))
    elif mutation in (3, 4):  # one character replaced, by any digit or letter of any script
        at = draw(st.integers(0, 15))
        # Digits of other scripts and superscripts, which str.isdigit and a Unicode \d accept.
        lookalikes = st.sampled_from("0123456789²٣３߃")
        other = draw(st.one_of(lookalikes, st.characters(categories=["Nd", "No", "L"])))
        value = value[:at] + other + value[at + 1 :]
    elif mutation == 5:
        value = value[: draw(st.integers(0, 17))]
    return value, birth, sex


@given(identities())
def test_nik_check_agrees_with_the_reference_rule(identity: tuple[str, date, str]) -> None:
    value, birth, sex = identity
    assert (check_nik(value, birth, sex) == []) == reference_accepts(value, birth, sex)
