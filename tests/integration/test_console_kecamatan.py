"""A kecamatan officer in the console, by the keyboard only, in Bahasa Indonesia: the validation
worklist shows what the kelurahan decided; one case approved, one rejected with a reason; both
checked through the verification API."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration import console_browsing as ui
from tests.integration.browsing import browser, press
from tests.integration.console_browsing import console
from tests.integration.programme_world import URLS, World, world
from tests.tokens import bearer

__all__ = ["browser", "console", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLE = "kecamatan_officer"


def walk(browser: WebDriver, base: str, approved: str, rejected: str) -> str:
    ui.sign_in(browser, base, ROLE, ui.PEKALONGAN_BARAT)
    assert "Kecamatan Pekalongan Barat" in browser.find_element(By.ID, "who").text
    ui.shot(browser, ROLE, "home")
    ui.follow(browser, "/worklist")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Daftar validasi"
    case = browser.find_element(By.ID, f"case-{approved}")
    assert "Keputusan kelurahan: terverifikasi" in case.text
    ui.shot(browser, ROLE, "worklist")
    ui.accessible(browser, "worklist")
    ui.phone_shot(browser, ROLE, "worklist")
    ui.activate(browser, case.find_element(By.CSS_SELECTOR, "button[value=verify]"))
    assert browser.find_element(By.ID, "notice").text == f"Berkas {approved[:8]} diverifikasi."

    case = browser.find_element(By.ID, f"case-{rejected}")
    reason = case.find_element(By.CSS_SELECTOR, "input[value=not_resident]")
    assert case.find_element(
        By.CSS_SELECTOR, f"label[for='{reason.get_attribute('id')}']"
    ).text == ("Bukan penduduk kelurahan ini")
    ui.tab_to(browser, reason)
    press(browser, Keys.SPACE)
    ui.activate(browser, case.find_element(By.CSS_SELECTOR, "button[value=reject]"))
    notice = browser.find_element(By.ID, "notice").text
    ui.shot(browser, ROLE, "rejected")
    return notice


async def test_a_kecamatan_officer_approves_one_case_and_rejects_another(
    world: World, console: str, browser: WebDriver
) -> None:
    first = random.randint(1000, 4000)
    async with httpx.AsyncClient() as api:
        approved = await ui.verified_at_kelurahan(api, first)
        rejected = await ui.verified_at_kelurahan(api, first + 1)
        notice = await asyncio.to_thread(
            ui.walked, browser, ROLE, lambda: walk(browser, console, approved, rejected)
        )
        assert notice == f"Berkas {rejected[:8]} ditolak."
        officer = bearer(ROLE, ui.PEKALONGAN_BARAT)
        for worker, outcome in ((approved, "verified"), (rejected, "rejected")):
            case = (await api.get(f"{URLS['verification']}/cases/{worker}", headers=officer)).json()
            assert (case["last_level"], case["last_outcome"]) == ("kecamatan", outcome)
        assert "not_resident" in str(
            (await api.get(f"{URLS['verification']}/cases/{rejected}", headers=officer)).json()[
                "reasons"
            ]
        )
