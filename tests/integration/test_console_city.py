"""A city administrator in the console, by the keyboard only, in Bahasa Indonesia: a budget for
one year of one worker allocated, that worker designated (the counters follow), a second one
refused with the budget's numbers; the designations checked through the verification API."""

from __future__ import annotations

import asyncio
import io
import random

import httpx
import pytest
from openpyxl import load_workbook
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration import console_browsing as ui
from tests.integration.browsing import browser
from tests.integration.console_browsing import console
from tests.integration.programme_world import URLS, World, world
from tests.tokens import bearer

__all__ = ["browser", "console", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLE = "city_admin"


async def validated(api: httpx.AsyncClient, serial: int) -> str:
    worker = await ui.verified_at_kelurahan(api, serial)
    officer = bearer("kecamatan_officer", ui.PEKALONGAN_BARAT)
    for _ in range(120):
        passed = await api.post(
            f"{URLS['verification']}/cases/{worker}/verify", json={}, headers=officer
        )
        if passed.status_code == 200:
            return worker
        await asyncio.sleep(0.5)
    raise AssertionError(passed.text)


def designate(browser: WebDriver, worker: str) -> None:
    ui.type_into(browser, "worker_id", worker)
    ui.type_into(browser, "cover_months", "12")
    ui.type_into(browser, "coverage_start", "01-11-2024")
    ui.type_into(browser, "decree_ref", "Keputusan Wali Kota Pekalongan 400/regular/2024")
    ui.activate(browser, browser.find_element(By.ID, "designate"))


def counter(browser: WebDriver, column: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f"#counter-regular .{column}").text)


def walk(browser: WebDriver, base: str, first: str, second: str) -> str:
    ui.sign_in(browser, base, ROLE)
    ui.follow(browser, "/city")
    ui.type_into(browser, "budget-amount", f"Rp{12 * ui.PREMIUM:,}".replace(",", "."))
    ui.activate(browser, browser.find_element(By.ID, "allocate"))
    assert browser.find_element(By.ID, "notice").text == (
        "Rp201.600 dialokasikan untuk kelompok reguler."
    )
    # The counters are the live ones: one place fewer once a worker is chosen, and the budget
    # their cover commits gone from what is left.
    places = int(counter(browser, "quota-left").replace(".", ""))
    designate(browser, first)
    assert browser.find_element(By.ID, "notice").text == f"Pekerja {first[:8]} ditetapkan."
    assert int(counter(browser, "quota-left").replace(".", "")) == places - 1
    assert counter(browser, "budget-left") == "Rp0"
    regular = browser.find_element(By.XPATH, "//table[@id='counters']//tr[th='reguler']").text
    assert "Rp201.600" in regular, regular
    ui.shot(browser, ROLE, "designated")
    ui.accessible(browser, "city")
    ui.phone_shot(browser, ROLE, "city")
    designate(browser, second)
    refusal = browser.find_element(By.ID, "form-errors").text
    ui.shot(browser, ROLE, "refused")
    assert browser.find_element(By.ID, "worker_id").get_attribute("value") == second
    return refusal


async def test_a_city_administrator_designates_within_the_budget(
    world: World, console: str, browser: WebDriver
) -> None:
    serial = random.randint(1000, 4000)
    async with httpx.AsyncClient() as api:
        first = await validated(api, serial)
        second = await validated(api, serial + 1)
        refusal = await asyncio.to_thread(
            ui.walked, browser, ROLE, lambda: walk(browser, console, first, second)
        )
        assert "Biaya kepesertaan Rp201.600 (12 bulan x Rp16.800)" in refusal, refusal
        assert "tinggal Rp0" in refusal, refusal
        listed = await api.get(
            f"{URLS['verification']}/designations",
            params={"fiscal_year": 2024, "cohort": "regular"},
            headers=bearer(ROLE),
        )
        assert [w["worker_id"] for w in listed.json()["workers"]] == [first]

        # The decree annex, as the signed-in administrator downloads it: names and NIK.
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
        for kind, starts in (("pdf", b"%PDF"), ("xlsx", b"PK")):
            annex = await api.get(
                f"{console}/decree-annex.{kind}",
                params={"year": 2024, "cohort": "regular"},
                headers={"Cookie": cookies},
            )
            assert annex.status_code == 200, annex.text[:300]
            assert annex.content.startswith(starts)
        sheet = load_workbook(io.BytesIO(annex.content)).worksheets[0]
        rows = [[str(v) for v in r] for r in sheet.iter_rows(values_only=True)]
        assert rows[0][:3] == ["No.", "Nama", "NIK"]
        assert rows[1][1] == f"Warga {serial}"
        assert rows[1][2] == f"337501450780{serial:04d}"
