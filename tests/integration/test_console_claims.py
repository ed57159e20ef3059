"""A claims officer in the console, by the keyboard only, in Bahasa Indonesia: a death claim for
a covered worker filed with its documents, its decision shown with the items in plain words,
and (approved) its payment recorded; checked through the claims API."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from services.console.i18n import rupiah
from tests.integration import console_browsing as ui
from tests.integration.browsing import browser, press
from tests.integration.console_browsing import console
from tests.integration.programme_world import URLS, World, world
from tests.tokens import bearer

__all__ = ["browser", "console", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLE = "claims_officer"


def file_claim(browser: WebDriver, base: str, worker: str) -> str:
    ui.sign_in(browser, base, ROLE)
    ui.follow(browser, "/claims")
    ui.type_into(browser, "worker_id", worker)
    ui.type_into(browser, "incident_date", "20-11-2024")
    ui.type_into(browser, "claimant_name", "Budi Santoso")
    for document in ("doc-1", "doc-2"):
        ui.tab_to(browser, browser.find_element(By.ID, document))
        press(browser, Keys.SPACE)
    ui.shot(browser, ROLE, "file")
    ui.accessible(browser, "claims")
    ui.phone_shot(browser, ROLE, "claims")
    ui.activate(browser, browser.find_element(By.ID, "file-claim"))
    decision = browser.find_element(By.ID, "decision").text
    ui.shot(browser, ROLE, "decision")
    ui.accessible(browser, "decision")
    return decision


def pay(browser: WebDriver, claim: str) -> str:
    ui.type_into(browser, f"{claim}-ref", "BPJS 2024/11/001")
    ui.type_into(browser, f"{claim}-on", "01-12-2024")
    form = browser.find_element(By.ID, f"claim-{claim}")
    ui.activate(browser, form.find_element(By.CSS_SELECTOR, "button"))
    ui.shot(browser, ROLE, "paid")
    return str(browser.find_element(By.ID, "notice").text)


def award(browser: WebDriver, claim: str) -> str:
    """The claim's own page: what its approval pays, and no school year to come."""
    listed = browser.find_element(By.ID, f"claim-{claim}")
    ui.activate(browser, listed.find_element(By.CSS_SELECTOR, f"a[href='/claims/{claim}']"))
    ui.shot(browser, ROLE, "award")
    ui.accessible(browser, "award")
    approved = browser.find_element(By.ID, "approved").text
    return f"{approved}\n{browser.find_element(By.ID, 'none-to-come').text}"


async def test_a_claims_officer_files_a_death_claim_and_records_its_payment(
    world: World, console: str, browser: WebDriver
) -> None:
    async with httpx.AsyncClient() as api:
        worker = await ui.covered_worker(api)
        decision = await asyncio.to_thread(
            ui.walked, browser, ROLE, lambda: file_claim(browser, console, worker)
        )
        [claim] = (
            await api.get(
                f"{URLS['claims']}/claims", params={"worker_id": worker}, headers=bearer(ROLE)
            )
        ).json()
        shown = {"approved": "disetujui", "pending": "menunggu", "rejected": "ditolak"}
        assert decision.startswith(f"Keputusan: {shown[claim['status']]}"), decision
        if claim["status"] == "approved":
            assert "Santunan kematian, dibayar sekaligus" in decision
            assert rupiah(claim["total"], "id") in decision
            notice = await asyncio.to_thread(
                ui.walked, browser, ROLE, lambda: pay(browser, claim["claim_id"])
            )
            assert notice == f"Pembayaran klaim {claim['claim_id'][:8]} tercatat."
            paid = (
                await api.get(f"{URLS['claims']}/claims/{claim['claim_id']}", headers=bearer(ROLE))
            ).json()
            assert (paid["status"], paid["payment_ref"]) == ("paid", "BPJS 2024/11/001")
            shown_award = await asyncio.to_thread(
                ui.walked, browser, ROLE, lambda: award(browser, claim["claim_id"])
            )
            assert "Santunan kematian, dibayar sekaligus" in shown_award, shown_award
            assert "Tidak ada lagi tahun ajaran yang perlu disetujui." in shown_award
