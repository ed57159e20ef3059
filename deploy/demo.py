"""The main job: the whole system with a demo of the Pekalongan programme, through the public
HTTP APIs only, left running for the user to explore."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from contract.policy import policy_book
from deploy.keys_cli import sign_stream_heads
from deploy.local import services
from deploy.local.keycloak import LocalProvider
from services.catalog import migrate_all
from services.enrolment.imports import COLUMNS
from shared.audit.checkpoints import CheckpointSettings
from shared.auth import Role
from shared.settings import DatabaseSettings

# Wide enough for exact rupiah amounts side by side, also when the output is not a terminal.
console = Console(width=max(Console().width, 130))
FISCAL_YEAR = 2024
START = date(2024, 11, 1)


@dataclass(frozen=True)
class DemoSize:
    per_kelurahan: int = 105
    regular: int = 1000
    incidental: int = 1700


MAX_DESIGNATIONS = 5000  # the most workers one bulk designation names


def retry_key() -> dict[str, str]:
    """A fresh Idempotency-Key: a request sent again under it changes nothing."""
    return {"Idempotency-Key": str(uuid.uuid4())}


IDENTITY = LocalProvider(prefix="demo")


async def answered(
    send: Callable[[], Awaitable[httpx.Response]], also: frozenset[int] = frozenset()
) -> httpx.Response:
    """The answer to a request sent again (under its key) while it is refused with 503 (a
    producer's outbox or a projection catching up: nothing was decided) or with one of
    ``also``; the last answer after 20 tries."""
    for _ in range(20):
        response = await send()
        if response.status_code != 503 and response.status_code not in also:
            break
        await asyncio.sleep(0.5)
    return response


def headers(role: Role, area: str | None = None) -> Mapping[str, str]:
    """A caller's headers, with a token from the local provider that is renewed as needed."""
    return IDENTITY.caller(role, area)


async def imported_list(
    enrolment: httpx.AsyncClient, officer: Mapping[str, str], content: bytes
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A list imported as its officer: the job once it is done, and its report's rows."""
    response = await enrolment.post(
        "/imports", content=content, headers={**officer, "content-type": "text/csv", **retry_key()}
    )
    response.raise_for_status()
    while True:
        job = (await enrolment.get(response.headers["location"], headers=officer)).json()
        if job["state"] in ("done", "failed"):
            break
        await asyncio.sleep(0.2)
    if job["state"] == "failed":
        raise RuntimeError(f"the import of a kelurahan list failed: {job['failure']}")
    report = await enrolment.get(job["report"], headers=officer)
    report.raise_for_status()
    return job, list(csv.DictReader(io.StringIO(report.text)))


def kelurahan_list(code: str, index: int, rows: int) -> bytes:
    """A kelurahan's CSV list, as it arrives: mostly good rows, one with a bad NIK."""
    occupations = list(policy_book().in_force(START).occupations)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in range(rows):
        n = index * 1000 + row
        birth = date(1962 + n % 40, 1 + n % 12, 1 + n % 28)
        sex = "F" if n % 3 == 0 else "M"
        day = birth.day + (40 if sex == "F" else 0)
        serial = 0 if row == rows - 1 else 1 + n % 9998  # the last row of each list is bad
        region = code[:8].replace(".", "")  # province, city and kecamatan of first issue
        nik = f"{region}{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"
        writer.writerow(
            [
                nik,
                f"Warga {n}",
                birth.isoformat(),
                sex,
                occupations[n % len(occupations)],
                code,
                f"RT {row % 9 + 1} RW {row % 5 + 1}",
                "",
                f"Ahli waris {n}",
                "spouse",
            ]
        )
    return out.getvalue().encode()


async def programme(size: DemoSize, urls: dict[str, str]) -> dict[str, Any]:
    book = policy_book()
    city = headers("city_admin")
    limits = httpx.Limits(max_connections=32)
    async with (
        httpx.AsyncClient(base_url=urls["enrolment"], timeout=120, limits=limits) as enrolment,
        httpx.AsyncClient(
            base_url=urls["verification"], timeout=120, limits=limits
        ) as verification,
        httpx.AsyncClient(base_url=urls["billing"], timeout=60, limits=limits) as billing,
    ):
        premium = book.in_force(START).monthly_premium.total
        for year in VETERAN_YEARS[:-1]:
            body = {
                "fiscal_year": year,
                "source": "APBD",
                "cohort": "regular",
                "amount": VETERANS * 12 * premium,
            }
            (
                await billing.post("/budgets", json=body, headers={**city, **retry_key()})
            ).raise_for_status()
        for cohort, source, amount in (
            ("regular", "APBD", size.regular * 12 * premium),
            ("incidental", "APBD", size.incidental * premium * 2),
            ("incidental", "APBD-P", size.incidental * premium),
        ):
            response = await billing.post(
                "/budgets",
                json={
                    "fiscal_year": FISCAL_YEAR,
                    "source": source,
                    "cohort": cohort,
                    "amount": amount,
                },
                headers={**city, **retry_key()},
            )
            response.raise_for_status()
        console.print("budget allocated (APBD and APBD-P)")

        imported: Counter[str] = Counter()
        workers: list[tuple[str, str, str]] = []
        for index, (code, place) in enumerate(sorted(book.kelurahan.items())):
            officer = headers("kelurahan_officer", code)
            result, rows = await imported_list(
                enrolment, officer, kelurahan_list(code, index, size.per_kelurahan)
            )
            imported.update({k: result[k] for k in ("registered", "already_registered", "refused")})
            workers += [
                (r["worker_id"], code, place.kecamatan_code)
                for r in rows
                if r["worker_id"] and r["outcome"] != "refused"
            ]
        console.print(f"imported 27 kelurahan lists: {dict(imported)}")

        gate = asyncio.Semaphore(16)
        outcomes: Counter[str] = Counter()

        async def post(
            client: httpx.AsyncClient,
            path: str,
            body: dict[str, Any],
            auth: Mapping[str, str],
            label: str,
        ) -> bool:
            async with gate:  # 404: verification's cases catching up with new registrations
                response = await answered(
                    lambda: client.post(path, json=body, headers=auth), frozenset({404})
                )
            outcomes[f"{label} {response.status_code}"] += 1
            return response.status_code == 200

        async def through_verification(i: int, worker: str, kelurahan: str, kecamatan: str) -> None:
            if i % 97 == 5:
                await post(
                    verification,
                    f"/cases/{worker}/reject",
                    {"reasons": ["documents_incomplete"]},
                    headers("kelurahan_officer", kelurahan),
                    "kelurahan reject",
                )
                return
            if not await post(
                verification,
                f"/cases/{worker}/verify",
                {},
                headers("kelurahan_officer", kelurahan),
                "kelurahan verify",
            ):
                return
            if i % 89 == 7:
                await post(
                    verification,
                    f"/cases/{worker}/reject",
                    {"reasons": ["not_resident"]},
                    headers("kecamatan_officer", kecamatan),
                    "kecamatan reject",
                )
                return
            await post(
                verification,
                f"/cases/{worker}/verify",
                {},
                headers("kecamatan_officer", kecamatan),
                "kecamatan verify",
            )

        await asyncio.gather(*(through_verification(i, *w) for i, w in enumerate(workers)))
        console.print("kelurahan and kecamatan steps done")

        ready = [w for i, w in enumerate(workers) if i % 97 != 5 and i % 89 != 7]
        # The regular cohort's quota includes the workers renewed since 2022.
        designations = [("regular", 12)] * (size.regular - VETERANS) + [
            ("incidental", 1 + i % 3) for i in range(size.incidental)
        ]

        async def designate(cohort: str, months: int, worker_ids: list[str]) -> None:
            """The city's decree for a cohort and cover: its workers in one bulk designation."""
            body = {
                "cohort": cohort,
                "cover_months": months,
                "coverage_start": START.isoformat(),
                "fiscal_year": FISCAL_YEAR,
                "decree_ref": f"Keputusan Wali Kota Pekalongan 400/{cohort}/{FISCAL_YEAR}",
                "worker_ids": worker_ids,
            }
            key = {**city, **retry_key()}
            response = await answered(
                lambda: verification.post("/cases/designate", json=body, headers=key)
            )
            response.raise_for_status()
            outcomes.update(
                f"designate {cohort} {outcome['status'] or 200}"
                for outcome in response.json()["outcomes"]
            )

        by_decree: dict[tuple[str, int], list[str]] = {}
        for (worker_id, *_), decree in zip(ready, designations, strict=False):
            by_decree.setdefault(decree, []).append(worker_id)
        for (cohort, months), worker_ids in by_decree.items():
            for start in range(0, len(worker_ids), MAX_DESIGNATIONS):
                await designate(cohort, months, worker_ids[start : start + MAX_DESIGNATIONS])
        if len(ready) < len(designations) + VETERANS:
            raise ValueError(
                f"{len(ready)} workers passed verification, fewer than the "
                f"{len(designations) + VETERANS} the demo designates: register more per kelurahan"
            )
        veterans = [w[0] for w in ready[len(designations) : len(designations) + VETERANS]]
        for year in VETERAN_YEARS:
            for veteran in veterans:
                body = {
                    "cohort": "regular",
                    "cover_months": 12,
                    "coverage_start": f"{year}-08-01",
                    "fiscal_year": year,
                    "decree_ref": f"Keputusan Wali Kota Pekalongan 400/regular/{year}",
                }
                await post(
                    verification, f"/cases/{veteran}/designate", body, city, "designate since 2022"
                )
        for worker, *_ in ready[len(designations) + VETERANS :]:
            await post(
                verification,
                f"/cases/{worker}/reject",
                {"reasons": ["already_covered"]},
                city,
                "city reject",
            )
        console.print("designations done")

        for _ in range(120):
            summary = (await enrolment.get("/summary", headers=city)).json()
            covered = sum(r["workers"] for r in summary["workers"] if r["status"] == "covered")
            if covered >= min(len(ready), len(designations)):
                break
            await asyncio.sleep(0.5)
        for veteran in veterans:  # renewals become coverage a moment after the designation
            for _ in range(120):
                coverage = await enrolment.get(
                    f"/workers/{veteran}/coverage", params={"on": "2025-06-01"}, headers=city
                )
                if coverage.status_code == 200 and coverage.json()["covered"]:
                    break
                await asyncio.sleep(0.5)
        new_regular = size.regular - VETERANS
        regular = [w[0] for w in ready[:new_regular]]
        incidental = [w[0] for w in ready[new_regular : new_regular + size.incidental]]
        async with httpx.AsyncClient(base_url=urls["claims"], timeout=60) as claims:
            claim_results = await billing_and_claims(billing, claims, regular, incidental, veterans)
        deaths = await stopped_premiums(billing, enrolment, claim_results)
        budget = (await billing.get(f"/budgets/{FISCAL_YEAR}", headers=city)).json()
        summary = (await enrolment.get("/summary", headers=city)).json()
        return {
            "imported": imported,
            "outcomes": outcomes,
            "summary": summary,
            "budget": budget,
            "claims": claim_results,
            "deaths": deaths,
        }


# A few workers covered since the programme began (2022), renewed every fiscal year.
VETERANS = 2
VETERAN_YEARS = (2022, 2023, 2024)
PERIODS = [f"{i // 12}-{i % 12 + 1:02d}" for i in range(2022 * 12 + 7, 2025 * 12 + 10)]
# The city's budget is late in January: January and February are paid together in March.
LATE = ("2025-01", "2025-02")


async def billing_and_claims(
    billing: httpx.AsyncClient,
    claims: httpx.AsyncClient,
    regular: list[str],
    incidental: list[str],
    veterans: list[str],
) -> list[dict[str, Any]]:
    officer = headers("billing_officer")
    invoices: dict[str, list[dict[str, Any]]] = {}
    for period in PERIODS:
        run_key = {**officer, **retry_key()}  # one key for the run, however often it is retried
        run = partial(billing.post, "/billing-runs", json={"period": period}, headers=run_key)
        response = await answered(run)  # 422: nothing to bill
        if response.status_code == 201:
            invoices[period] = [response.json()]

    async def pay(period: str, paid_on: str) -> None:
        for invoice in invoices.get(period, []):
            body = {
                "payment_ref": f"SP2D {period}/{invoice['invoice_id'][:6]}",
                "paid_on": paid_on,
                "amount": invoice["total"],
            }
            (
                await billing.post(
                    f"/invoices/{invoice['invoice_id']}/payments",
                    json=body,
                    headers={**officer, **retry_key()},
                )
            ).raise_for_status()

    for period in PERIODS:
        if period not in LATE:
            year, month = (int(p) for p in period.split("-"))
            await pay(period, date(year + month // 12, month % 12 + 1, 10).isoformat())
    console.print(f"billed {len(invoices)} months; paid on time except {', '.join(LATE)}")

    clerk = headers("claims_officer")
    heir = {"name": "Ahli waris", "relationship": "spouse", "bank_account": "BRI"}
    filed = []

    async def file(label: str, worker: str, **claim: Any) -> None:
        body = {
            "worker_id": worker,
            "benefit": "JKM",
            "kind": "death",
            "claimant": heir,
            "documents": ["akta kematian", "kartu keluarga"],
        } | claim
        claim_key = {**clerk, **retry_key()}
        response = await answered(lambda: claims.post("/claims", json=body, headers=claim_key))
        response.raise_for_status()
        answer = response.json()
        filed.append({"label": label, "worker_id": worker, **claim, **answer})

    await file("JKM death, active member", regular[0], incident_date="2025-06-14")
    await file("JKM death during arrears", regular[1], incident_date="2025-02-03")
    await file("work-accident death", regular[2], benefit="JKK", incident_date="2025-05-21")
    await file(
        "temporary incapacity, 14 months",
        regular[3],
        benefit="JKK",
        kind="accident",
        accident_benefit="temporary_incapacity",
        months_incapacitated=14,
        incident_date="2025-04-02",
    )
    await file("death after incidental cover ended", incidental[0], incident_date="2025-06-20")
    for period in LATE:
        await pay(period, "2025-03-20")
    console.print(f"{', '.join(LATE)} paid late, on 2025-03-20")
    # After three years of paid contributions, a death brings a scholarship for two children.
    await file("JKM death after 3 years of membership", veterans[0], incident_date="2025-07-20")
    children = [
        {"name": "Anak pertama", "birth_date": "2012-05-02", "school_level": "SMP"},
        {"name": "Anak kedua", "birth_date": "2016-09-14", "school_level": "SD"},
    ]
    await file(
        "scholarship for two children",
        veterans[0],
        kind="scholarship",
        incident_date="2025-07-20",
        children=children,
    )
    results = []
    for claim in filed:
        for _ in range(60):
            response = await claims.get(f"/claims/{claim['claim_id']}", headers=clerk)
            current = response.json()
            # The claims list is a projection: a claim just filed shows there a moment later.
            if response.status_code == 200 and current["status"] == claim["status"] != "pending":
                break
            if response.status_code == 200 and current["status"] not in ("pending", "rejected"):
                break
            await asyncio.sleep(0.5)
        if current["status"] == "approved":
            body = {
                "payment_ref": f"BPJS-{claim['claim_id'][:8]}",
                "paid_on": "2025-07-01",
                "amount": current["total"],
            }
            (
                await claims.post(
                    f"/claims/{claim['claim_id']}/payments",
                    json=body,
                    headers={**clerk, **retry_key()},
                )
            ).raise_for_status()
            current["status"] = "paid"
        results.append(
            {
                "label": claim["label"],
                "worker_id": claim["worker_id"],
                "first": claim["status"],
                "now": current["status"],
                "total": current["total"],
                "reasons": current["reasons"],
                "items": claim.get("items") or [],
                "open_instalments": claim.get("open_instalments") or [],
                "incident_date": claim["incident_date"],
            }
        )
    return results


async def stopped_premiums(
    billing: httpx.AsyncClient, enrolment: httpx.AsyncClient, claims: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """For each approved death: where the coverage ended, and the premiums the death stopped."""
    city = headers("city_admin")
    deaths = []
    for claim in claims:
        if claim["now"] != "paid" or not claim["label"].startswith(("JKM death", "work-acc")):
            continue
        worker = claim["worker_id"]
        for _ in range(60):
            premiums = (await billing.get(f"/workers/{worker}/premiums", headers=city)).json()
            stopped = [p for p in premiums if p["cancelled"]]
            if stopped or claim["incident_date"] >= max(p["period"] for p in premiums):
                break
            await asyncio.sleep(0.5)
        deaths.append(
            {
                "label": claim["label"],
                "died_on": claim["incident_date"],
                "stopped": [p["period"] for p in stopped],
                "owed_back": sum(p["amount"] for p in stopped if p["refund_due"]),
            }
        )
    return deaths


def print_summary(result: dict[str, Any]) -> None:
    table = Table("status", "cohort", "workers", title="Workers")
    for row in result["summary"]["workers"]:
        table.add_row(row["status"], row["cohort"], str(row["workers"]))
    console.print(table)
    decisions = Table("decision", "HTTP status", "count", title="Verification decisions")
    for key, count in sorted(result["outcomes"].items()):
        label, status = key.rsplit(" ", 1)
        decisions.add_row(label, status, str(count))
    console.print(decisions)
    columns = ("allocated", "committed", "invoiced", "paid", "remaining")
    budget = Table("cohort", *columns, title=f"Budget {FISCAL_YEAR}")
    for row in result["budget"]["cohorts"]:
        budget.add_row(row["cohort"], *(f"Rp{row[c]:,}" for c in columns))
    console.print(budget)
    claims = Table("claim", "at filing", "now", "amount", "reasons", title="Claims")
    for row in result["claims"]:
        amount = f"Rp{row['total']:,}" if row["total"] else "-"
        claims.add_row(row["label"], row["first"], row["now"], amount, row["reasons"] or "")
    console.print(claims)
    deaths = Table("death", "died on", "premiums stopped", "owed back", title="Deaths end cover")
    for row in result["deaths"]:
        stopped = row["stopped"]
        months = f"{stopped[0]} to {stopped[-1]} ({len(stopped)} months)" if stopped else "none"
        deaths.add_row(row["label"], row["died_on"], months, f"Rp{row['owed_back']:,}")
    console.print(deaths)
    award = Table("child", "school year", "level", "amount", "status", title="Scholarship award")
    for row in result["claims"]:
        for item in row["items"]:
            if item.get("child"):
                level = item["code"].removeprefix("SCHOLARSHIP_")
                amount = f"Rp{item['amount']:,}"
                award.add_row(item["child"], item["school_year"], level, amount, "paid")
        for child in sorted({i["child"] for i in row["open_instalments"]}):
            years = [i for i in row["open_instalments"] if i["child"] == child]
            amount = f"Rp{sum(i['amount'] for i in years):,}"
            span = f"{years[0]['school_year']} to {years[-1]['school_year']}"
            award.add_row(child, span, f"{len(years)} years", amount, "open")
    console.print(award)
    console.print(
        "\nThe system keeps running. Explore:\n"
        "  API docs     "
        + "  ".join(f"{services.url(name)}/docs" for name in services.PORTS)
        + "\n"
        "  a token      ./berlian token --role city_admin\n"
        "  the log      ./berlian audit verify\n"
        "  a rebuild    ./berlian replay --service enrolment --projection workers\n"
        "  stop it all  ./berlian services down && ./berlian stack down"
    )


def run_demo(size: DemoSize) -> None:
    asyncio.run(migrate_all(DatabaseSettings()))
    urls = services.up()
    console.print(f"services: {urls}")
    print_summary(asyncio.run(programme(size, urls)))
    # The local checkpoint signer's turn, so that `audit verify` finds the demo's heads signed.
    signed = asyncio.run(sign_stream_heads(DatabaseSettings(), CheckpointSettings().signing_key()))
    console.print(f"checkpoint {signed.sequence} signed the stream heads")
    print_console_users()


# Who signs in to the demo's console, one user per role (officers in Sapuro Kebulen and its
# kecamatan, Pekalongan Barat).
CONSOLE_USERS: tuple[tuple[Role, str | None], ...] = (
    ("kelurahan_officer", "33.75.01.1004"),
    ("kecamatan_officer", "33.75.01"),
    ("city_admin", None),
    ("billing_officer", None),
    ("claims_officer", None),
    ("auditor", None),
)


def print_console_users() -> None:
    table = Table(title=f"The officers' console: {services.CONSOLE_URL}")
    for column in ("role", "area", "user", "password"):
        table.add_column(column)
    for role, area in CONSOLE_USERS:
        user, password = IDENTITY.credentials(role, area, f"demo-{role}")
        table.add_row(role, area or "city", user, password)
    console.print(table)
