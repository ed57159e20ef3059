"""The programme's rules as versioned data with effective dates (``programme.json``).

Every decision looks up the policy in force on its business date and records its version on the
event, so a replay judges old events by the rules that applied then.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from shared.decisions import UnjudgeableError

DATA = Path(__file__).resolve().parent / "programme.json"


class CohortRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    min_months: int
    max_months: int
    default_quota: int


class Premium(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int
    jkk: int
    jkm: int


class SchoolLevel(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: str
    per_year: int
    max_years: int


class Benefits(BaseModel):
    """Benefit figures of the brief (section 3); JKK cash benefits are multiples of income."""

    model_config = ConfigDict(frozen=True)

    jkm_lump_sum: int
    jkm_periodic_months: int
    jkm_periodic_monthly: int
    funeral: int
    jkk_death_income_multiple: int
    jkk_death_minimum: int
    jkk_periodic: int
    disability_income_multiple_tenths: int  # 70% x 80 = 56.0 -> 560 tenths
    incapacity_full_months: int
    incapacity_after_percent: int
    jkk_lapse_years: int
    scholarship_max_children: int
    scholarship_min_paid_months_after_jkm_death: int
    scholarship_age_limit: int
    scholarship_schedule: tuple[SchoolLevel, ...]


class Policy(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: str
    effective_from: date
    legal_reference: str
    min_age: int
    max_age: int
    coverage_age_limit: int
    insured_income: int
    jkk_rate_per_mille: int
    jkm_premium: int
    grace_months: int
    cohorts: dict[str, CohortRule]
    occupations: dict[str, str]
    benefits: Benefits

    @property
    def monthly_premium(self) -> Premium:
        """JKK is a rate of the insured income; JKM is flat (Rp10,000 + Rp6,800 = Rp16,800)."""
        jkk = self.insured_income * self.jkk_rate_per_mille // 1000
        return Premium(total=jkk + self.jkm_premium, jkk=jkk, jkm=self.jkm_premium)

    @model_validator(mode="after")
    def _jkk_is_whole_rupiah(self) -> Policy:
        if self.insured_income * self.jkk_rate_per_mille % 1000:
            raise ValueError("the JKK premium must be a whole number of rupiah")
        return self


class Kelurahan(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    name: str
    kecamatan_code: str
    kecamatan_name: str


class NoPolicyInForceError(UnjudgeableError, LookupError):
    """A date before the programme's first policy: nothing can be judged or priced on it."""


class PolicyBook(BaseModel):
    """All policy versions, oldest first, and the places of Kota Pekalongan."""

    model_config = ConfigDict(frozen=True)

    policies: tuple[Policy, ...]
    kelurahan: dict[str, Kelurahan]

    def in_force(self, on: date) -> Policy:
        applicable = [p for p in self.policies if p.effective_from <= on]
        if not applicable:
            first = self.policies[0].effective_from
            raise NoPolicyInForceError(
                f"no programme policy was in force on {on} (the first is from {first})"
            )
        return applicable[-1]

    def governing(self, day: date) -> Policy:
        """The policy for judging something that happened on ``day``; before the programme
        began, its first rules (nothing was covered then, but deadlines still apply)."""
        return self.in_force(max(day, self.policies[0].effective_from))

    def by_version(self, version: str) -> Policy:
        for policy in self.policies:
            if policy.version == version:
                return policy
        raise LookupError(f"unknown policy version {version!r}")


@cache
def policy_book() -> PolicyBook:
    raw = json.loads(DATA.read_text())
    places = raw["places"]
    kelurahan = {
        f"{kecamatan_code}.{suffix}": Kelurahan(
            code=f"{kecamatan_code}.{suffix}",
            name=name,
            kecamatan_code=kecamatan_code,
            kecamatan_name=kecamatan["name"],
        )
        for kecamatan_code, kecamatan in places["kecamatan"].items()
        for suffix, name in kecamatan["kelurahan"].items()
    }
    policies = tuple(sorted((Policy(**p) for p in raw["policies"]), key=lambda p: p.effective_from))
    return PolicyBook(policies=policies, kelurahan=kelurahan)
