"""The worked examples of ``docs/benefits.md``, computed by the claims rules themselves.

``python -m services.claims.worked_examples`` writes them between the document's markers; a unit
test fails when the document's amounts differ from what the rules decide.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

from contract.policy import policy_book
from services.claims.benefits import Child, rupiah
from services.claims.domain import Approved, Claim, Death, Decision, Facts, decide_claim

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "benefits.md"
START, END = "<!-- worked-examples:start -->", "<!-- worked-examples:end -->"
WORKER = uuid.UUID(int=1)
ACTIVE = Facts("ACTIVE", 12, (), None)


def _claim(**fields: object) -> Claim:
    base: dict[str, object] = {
        "claim_id": uuid.UUID(int=2),
        "worker_id": WORKER,
        "benefit": "JKM",
        "kind": "death",
        "incident_date": date(2025, 6, 14),
        "filed_on": date(2025, 7, 1),
    }
    return Claim(**(base | fields))  # type: ignore[arg-type]


EXAMPLES: list[tuple[str, str, Claim, Facts]] = [
    (
        "Santunan kematian (JKM death, not caused by work)",
        "Pak Slamet, a becak driver covered since November 2024 with every month paid, dies of "
        "illness on 14 June 2025.",
        _claim(),
        ACTIVE,
    ),
    (
        "Kematian akibat kecelakaan kerja (JKK death, work accident)",
        "Bu Sri, a street vendor, dies on 21 May 2025 when a truck hits her stall.",
        _claim(benefit="JKK", incident_date=date(2025, 5, 21)),
        ACTIVE,
    ),
    (
        "Santunan sementara tidak mampu bekerja, STMB (temporary incapacity)",
        "Pak Joko, a day labourer, breaks his leg at work on 2 April 2025 and cannot work for "
        "14 months.",
        _claim(
            benefit="JKK",
            kind="accident",
            accident_benefit="temporary_incapacity",
            months_incapacitated=14,
            incident_date=date(2025, 4, 2),
        ),
        ACTIVE,
    ),
    (
        "Cacat total tetap (total permanent disability)",
        "Bu Ani, a blind masseuse, loses the use of both arms in a work accident on 3 March 2025.",
        _claim(
            benefit="JKK",
            kind="accident",
            accident_benefit="total_permanent_disability",
            incident_date=date(2025, 3, 3),
        ),
        ACTIVE,
    ),
    (
        "Perawatan medis (medical care)",
        "Pak Budi is treated in hospital after a work accident on 9 January 2025; the bill is "
        "Rp2,500,000.",
        _claim(
            benefit="JKK",
            kind="accident",
            accident_benefit="medical",
            medical_costs=2_500_000,
            incident_date=date(2025, 1, 9),
        ),
        ACTIVE,
    ),
    (
        "Beasiswa (scholarship)",
        "After Pak Darto's death (36 months paid since August 2022), his widow files on "
        "1 August 2025 for their children: one born 2 May 2012 in SMP (junior high) and one born "
        "14 September 2016 in SD (primary). The 2025/2026 school year has begun in July.",
        _claim(
            kind="scholarship",
            incident_date=date(2025, 7, 20),
            filed_on=date(2025, 8, 1),
            children=(
                Child("child-1", date(2012, 5, 2), "SMP"),
                Child("child-2", date(2016, 9, 14), "SD"),
            ),
        ),
        Facts("ACTIVE", 36, (), Death("JKM", date(2025, 7, 20))),
    ),
]


def _decision(decision: Decision) -> list[str]:
    assert isinstance(decision, Approved), decision
    lines = ["| item | amount |", "|---|---:|"]
    lines += [f"| {item.description} | {rupiah(item.amount)} |" for item in decision.items]
    lines.append(f"| **paid with the approval** | **{rupiah(decision.total)}** |")
    if decision.open_instalments:
        later = decision.open_instalments
        lines += [
            "",
            "Open on the award (each paid once its school year begins, if the child is "
            "still eligible):",
            "",
            "| child | school years | amount |",
            "|---|---|---:|",
        ]
        for child in sorted({i.child or "" for i in later}):
            years = [i for i in later if i.child == child]
            span = f"{years[0].school_year} to {years[-1].school_year} ({len(years)})"
            lines.append(f"| {child} | {span} | {rupiah(sum(i.amount for i in years))} |")
        award = decision.total + sum(i.amount for i in later)
        lines.append(f"| **the whole award** | | **{rupiah(award)}** |")
    return lines


def render() -> str:
    book = policy_book()
    out = []
    for title, story, claim, facts in EXAMPLES:
        out += [f"### {title}", "", story, "", *_decision(decide_claim(claim, facts, book)), ""]
    return "\n".join(out).strip("\n")


def section(document: str) -> str:
    """The document's worked examples, between the markers."""
    return document.split(START, 1)[1].split(END, 1)[0].strip("\n")


def write(path: Path = DOCUMENT) -> None:
    text = path.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f"{head}{START}\n{render()}\n{END}{tail}")


if __name__ == "__main__":
    write()
    print(f"wrote the worked examples into {DOCUMENT}")
