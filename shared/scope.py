"""What a caller may reach, decided in one place from their role and the area of their token.

A kelurahan officer reaches exactly one kelurahan (``NN.NN.NN.NNNN``), a kecamatan officer the
kelurahan of exactly one kecamatan (``NN.NN.NN``), and the city's roles the whole city. Codes are
parsed and compared part by part, never as string prefixes: ``33.75.01`` is not a kelurahan code,
and neither ``""`` nor ``33.75`` reaches anything. Services ask this object, and build their SQL
filters with it, instead of comparing codes themselves.

The same object says which data about the people in reach the role needs (docs/security.md,
"Areas and roles"): roles that neither act on a person nor need to find one by NIK see neither
their personal data nor the profile (birth date, sex, occupation) that tells disability or
extreme poverty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

Level = Literal["city", "kecamatan", "kelurahan"]

_KELURAHAN = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{2})\.([0-9]{4})", re.ASCII)
_KECAMATAN = re.compile(r"([0-9]{2})\.([0-9]{2})\.([0-9]{2})", re.ASCII)
_SQL_NAME = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", re.ASCII)

# The area each officer role works in; every other role works city-wide and carries no area.
OFFICER_LEVELS: dict[str, Level] = {
    "kelurahan_officer": "kelurahan",
    "kecamatan_officer": "kecamatan",
}
# The shape of each officer's area claim, as a pattern the identity provider checks when an
# administrator sets it (the same codes ``AreaScope.of`` parses).
AREA_PATTERNS: dict[str, str] = {
    "kelurahan_officer": _KELURAHAN.pattern.replace("(", "").replace(")", ""),
    "kecamatan_officer": _KECAMATAN.pattern.replace("(", "").replace(")", ""),
}
CITY_ROLES = frozenset({"city_admin", "billing_officer", "claims_officer", "auditor"})
# The profile fields withheld from roles that do not act on the person: the occupation can be
# specific data (disability, extreme poverty), and withholding only those codes would tell them.
PROFILE_FIELDS = frozenset({"birth_date", "sex", "occupation_code"})
# Roles that act on the person (register, verify, designate, decide claims): they see the
# person's personal data and profile, and may find a worker by NIK, each within their area.
ACTING_ROLES = frozenset({"kelurahan_officer", "kecamatan_officer", "city_admin", "claims_officer"})


class Caller(Protocol):
    """What the scope is derived from: the authenticated caller's role and area claim."""

    @property
    def role(self) -> str: ...

    @property
    def area(self) -> object: ...


class AreaClaimError(PermissionError):
    """The token's area does not fit its role: the token is refused as a whole."""


@dataclass(frozen=True)
class Claimed:
    """A role and an area as a token or an operator claims them, not yet checked."""

    role: str
    area: object


def is_area_code(text: str) -> bool:
    """Whether ``text`` is a kelurahan or a kecamatan code."""
    return KelurahanCode.parse(text) is not None or KecamatanCode.parse(text) is not None


class OutsideAreaError(PermissionError):
    """The caller's area does not reach the place of what they asked to act on."""


@dataclass(frozen=True)
class KecamatanCode:
    province: str
    city: str
    kecamatan: str

    @classmethod
    def parse(cls, text: str) -> KecamatanCode | None:
        match = _KECAMATAN.fullmatch(text)
        return cls(*match.groups()) if match else None

    def __str__(self) -> str:
        return f"{self.province}.{self.city}.{self.kecamatan}"


@dataclass(frozen=True)
class KelurahanCode:
    kecamatan: KecamatanCode
    kelurahan: str

    @classmethod
    def parse(cls, text: str) -> KelurahanCode | None:
        match = _KELURAHAN.fullmatch(text)
        if match is None:
            return None
        province, city, kecamatan, kelurahan = match.groups()
        return cls(KecamatanCode(province, city, kecamatan), kelurahan)

    def __str__(self) -> str:
        return f"{self.kecamatan}.{self.kelurahan}"


@dataclass(frozen=True)
class SqlFilter:
    """A WHERE condition and its arguments, numbered from the position it was built for."""

    condition: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class AreaScope:
    role: str
    level: Level
    kecamatan: KecamatanCode | None = None
    kelurahan: KelurahanCode | None = None

    @classmethod
    def of(cls, caller: Caller) -> AreaScope:
        """The scope of an authenticated caller, or AreaClaimError saying why their token's
        area does not fit their role."""
        role, area = caller.role, caller.area
        level = OFFICER_LEVELS.get(role)
        if level is None:
            if role not in CITY_ROLES:
                raise AreaClaimError(f"role {role!r} has no area of work")
            if area is not None:
                raise AreaClaimError(f"role {role} works city-wide; its token must carry no area")
            return cls(role, "city")
        if not isinstance(area, str):
            raise AreaClaimError(
                f"a {role}'s area must be their {level}'s code as text, not {type(area).__name__}"
            )
        if level == "kelurahan":
            kelurahan = KelurahanCode.parse(area)
            if kelurahan is None:
                raise AreaClaimError(
                    f"a {role}'s area must be a kelurahan code NN.NN.NN.NNNN, not {area[:40]!r}"
                )
            return cls(role, level, kelurahan.kecamatan, kelurahan)
        kecamatan = KecamatanCode.parse(area)
        if kecamatan is None:
            raise AreaClaimError(
                f"a {role}'s area must be a kecamatan code NN.NN.NN, not {area[:40]!r}"
            )
        return cls(role, level, kecamatan)

    @property
    def area(self) -> str:
        """The area as its code, or ``city``."""
        return str(self.kelurahan or self.kecamatan or "city")

    def allows(self, kelurahan_code: str | None) -> bool:
        """Whether a worker or case of this kelurahan is within reach."""
        if self.level == "city":
            return True
        place = KelurahanCode.parse(kelurahan_code or "")
        if place is None:
            return False
        if self.level == "kecamatan":
            return place.kecamatan == self.kecamatan
        return place == self.kelurahan

    def covers(self, area_code: str) -> bool:
        """Whether a whole area, a kelurahan or a kecamatan code, is within reach."""
        if self.level == "city":
            return True
        kecamatan = KecamatanCode.parse(area_code)
        if kecamatan is not None:
            return self.level == "kecamatan" and kecamatan == self.kecamatan
        return self.allows(area_code)

    def require(self, kelurahan_code: str | None, what: str) -> None:
        """OutsideAreaError unless a kelurahan is within reach; ``what`` says what the caller
        asked to do (``register a worker``)."""
        if not self.allows(kelurahan_code):
            raise OutsideAreaError(
                f"{self.role} may not {what}: {kelurahan_code} is outside {self.area}"
            )

    def hide_outside(self, kelurahan_code: str | None, missing: Exception) -> None:
        """Raise ``missing`` (what the caller gets for something that does not exist) unless
        the kelurahan is within reach: a write to a worker or case of another area answers as
        a read of it does, so ids cannot be tested for existing or for where they live."""
        if not self.allows(kelurahan_code):
            raise missing

    def sql_filter(self, first_arg: int, kelurahan_column: str, kecamatan_column: str) -> SqlFilter:
        """The condition keeping a query's rows within reach: equality with the kelurahan or
        the kecamatan column, whose argument is ``$first_arg``; nothing for city-wide roles."""
        for column in (kelurahan_column, kecamatan_column):
            if not _SQL_NAME.fullmatch(column):
                raise ValueError(f"not a column name: {column!r}")
        if self.kelurahan is not None:
            return SqlFilter(f"{kelurahan_column} = ${first_arg}", (str(self.kelurahan),))
        if self.kecamatan is not None:
            return SqlFilter(f"{kecamatan_column} = ${first_arg}", (str(self.kecamatan),))
        return SqlFilter("TRUE", ())

    def row_codes(self) -> tuple[str | None, str | None]:
        """The kelurahan and kecamatan codes to record on a row made in this scope (an import
        report), so that ``sql_filter`` finds it again in this scope and no narrower one."""
        return (
            str(self.kelurahan) if self.kelurahan else None,
            str(self.kecamatan) if self.kecamatan else None,
        )

    @property
    def acts_on_people(self) -> bool:
        """Whether the role sees the personal data (NIK, names, address, phone, heirs) and the
        profile (birth date, sex, occupation, which can tell disability or extreme poverty) of
        the workers in reach, and may find one by NIK."""
        return self.role in ACTING_ROLES
