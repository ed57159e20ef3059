"""Who may be registered: the checks on identity, age, occupation and residence.

Each check returns field-level problems (field, message) instead of raising, so a registration
form or an imported CSV row gets every reason at once.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from contract.policy import Policy, PolicyBook
from shared.decisions import Problem

NIK_LENGTH = 16
WOMEN_DAY_OFFSET = 40


@dataclass(frozen=True)
class NikParts:
    region: str  # PP KK CC: province, regency/city, kecamatan of first issue
    birth_day: int  # as encoded: +40 for women
    birth_month: int
    birth_year_2digits: int
    serial: int

    @property
    def sex(self) -> str:
        return "F" if self.birth_day > WOMEN_DAY_OFFSET else "M"

    @property
    def day_of_month(self) -> int:
        return (
            self.birth_day - WOMEN_DAY_OFFSET
            if self.birth_day > WOMEN_DAY_OFFSET
            else self.birth_day
        )


def parse_nik(nik: str) -> NikParts | None:
    # ASCII digits only: str.isdigit also takes other scripts' digits and superscripts.
    if len(nik) != NIK_LENGTH or not (nik.isascii() and nik.isdigit()):
        return None
    return NikParts(
        region=nik[:6],
        birth_day=int(nik[6:8]),
        birth_month=int(nik[8:10]),
        birth_year_2digits=int(nik[10:12]),
        serial=int(nik[12:]),
    )


def check_nik(nik: str, birth_date: date, sex: str) -> list[Problem]:
    """NIK ``PP KK CC DDMMYY SSSS``: a real encoded birth date (day + 40 for women) that agrees
    with the declared birth date and sex, and a non-zero serial."""
    parts = parse_nik(nik)
    if parts is None:
        return [Problem("nik", f"must be exactly {NIK_LENGTH} digits")]
    problems = []
    if not 1 <= parts.birth_month <= 12:
        problems.append(Problem("nik", f"encodes month {parts.birth_month:02d}, not 01 to 12"))
    day = parts.day_of_month
    if not (
        1 <= parts.birth_day <= 31
        or WOMEN_DAY_OFFSET + 1 <= parts.birth_day <= WOMEN_DAY_OFFSET + 31
    ):
        problems.append(
            Problem("nik", f"encodes day {parts.birth_day:02d}: men 01-31, women 41-71")
        )
    elif 1 <= parts.birth_month <= 12:
        year = (
            birth_date.year
            if birth_date.year % 100 == parts.birth_year_2digits
            else 2000 + parts.birth_year_2digits
        )
        days_in_month = calendar.monthrange(year, parts.birth_month)[1]
        if day > days_in_month:
            problems.append(
                Problem(
                    "nik",
                    f"encodes {day:02d}/{parts.birth_month:02d}/{parts.birth_year_2digits:02d}, "
                    "not a real date",
                )
            )
    if parts.serial == 0:
        problems.append(Problem("nik", "serial (last four digits) must not be 0000"))
    if problems:
        return problems
    encoded = (day, parts.birth_month, parts.birth_year_2digits)
    declared = (birth_date.day, birth_date.month, birth_date.year % 100)
    if encoded != declared:
        problems.append(
            Problem(
                "birth_date",
                f"{birth_date.isoformat()} disagrees with the NIK, which encodes "
                f"{day:02d}-{parts.birth_month:02d}-..{parts.birth_year_2digits:02d}",
            )
        )
    if parts.sex != sex:
        problems.append(Problem("sex", f"declared {sex}, but the NIK encodes {parts.sex}"))
    return problems


def check_occupation(code: str, policy: Policy) -> list[Problem]:
    if code not in policy.occupations:
        return [
            Problem(
                "occupation_code",
                f"{code!r} is not in the catalogue in force (policy {policy.version}, "
                f"{len(policy.occupations)} categories)",
            )
        ]
    return []


def check_kelurahan(code: str, book: PolicyBook) -> list[Problem]:
    if code not in book.kelurahan:
        return [
            Problem("kelurahan_code", f"{code!r} is not one of the 27 kelurahan of Kota Pekalongan")
        ]
    return []


def membership_number(sequence: int) -> str:
    """An 11-digit membership number: 10 digits of sequence and a Luhn check digit."""
    if not 0 < sequence < 10**10:
        raise ValueError("membership sequence out of range")
    body = f"{sequence:010d}"
    total = 0
    for index, digit in enumerate(reversed(body)):
        value = int(digit) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)
