"""Field types shared by the events: codes, money, periods and premiums (sealed personal data is
the platform's, ``shared.sealing.SealedPersonal``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Rupiah = Annotated[int, Field(ge=0, description="Whole rupiah; money is never a float.")]
Period = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
KelurahanCode = Annotated[str, Field(pattern=r"^33\.75\.0[1-4]\.[0-9]{4}$")]
KecamatanCode = Annotated[str, Field(pattern=r"^33\.75\.0[1-4]$")]
MembershipNo = Annotated[str, Field(pattern=r"^[0-9]{11}$")]
FiscalYear = Annotated[int, Field(ge=2022, le=2100)]
Cohort = Literal["regular", "incidental"]
Sex = Literal["M", "F"]
Programme = Literal["JKK", "JKM"]


class Contract(BaseModel):
    """Base of every event's data: immutable; building one with an unknown field is an error.

    Producers are strict through these models; consumers read tolerantly (they ignore fields
    they do not know, see ``shared.catalogue.EventCatalogue.parse_data``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Premium(Contract):
    """A monthly premium and its split between the two programmes."""

    total: Rupiah
    jkk: Rupiah
    jkm: Rupiah

    @model_validator(mode="after")
    def _split_adds_up(self) -> Premium:
        if self.jkk + self.jkm != self.total:
            raise ValueError(f"JKK {self.jkk} + JKM {self.jkm} does not equal total {self.total}")
        return self
