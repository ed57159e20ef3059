"""A city administrator in the console, by the keyboard only, in Bahasa Indonesia: a budget for
one year of one worker allocated, two workers ready for designation chosen from the list and
designated in one request: the first is designated (the counters follow), the second refused
with the budget's numbers. The same form sent again records nothing twice; the designations are
checked through the verification API."""

from __future__ import annotations

import asyncio
import io
import random

import httpx
import pytest
from openpyxl import load_workbook
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
ROLE = "city_admin"
DECREE = "Keputusan Wali Kota Pekalongan 400/regular/2024"


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


def designate(browser: WebDriver, *workers: str) -> dict[str, str]:
    """Choose ``workers`` in the list of cases ready for designation, by the keyboard, and
    send the form; what the form sent, to send it again."""
    for worker in workers:
        ui.tab_to(browser, browser.find_element(By.ID, f"choose-{worker}"))
        press(browser, Keys.SPACE)
    ui.type_into(browser, "cover_months", "12")
    ui.type_into(browser, "coverage_start", "01-11-2024")
    ui.type_into(browser, "decree_ref", DECREE)
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/designations']")
    sent = {
        name: str(form.find_element(By.NAME, name).get_attribute("value"))
        for name in ("csrf", "form_key", "fiscal_year", "page")
    }
    ui.activate(browser, browser.find_element(By.ID, "designate"))
    return sent


def counter(browser: WebDriver, column: str) -> str:
    return str(browser.find_element(By.CSS_SELECTOR, f"#counter-regular .{column}").text)


def walk(browser: WebDriver, base: str, first: str, second: str) -> tuple[str, dict[str, str]]:
    ui.sign_in(browser, base, ROLE)
    ui.follow(browser, "/city")
    ui.type_into(browser, "budget-amount", f"Rp{12 * ui.PREMIUM:,}".replace(",", "."))
    ui.activate(browser, browser.find_element(By.ID, "allocate"))
    assert browser.find_element(By.ID, "notice").text == (
        "Rp201.600 dialokasikan untuk kelompok reguler."
    )
    ready = browser.find_element(By.ID, "ready").text
    assert "Warga" in ready, ready
    # The counters are the live ones: one place fewer once a worker is chosen, and the budget
    # their cover commits gone from what is left.
    places = int(counter(browser, "quota-left").replace(".", ""))
    sent = designate(browser, first, second)
    assert browser.find_element(By.ID, "notice").text == (
        "1 dari 2 pekerja ditetapkan ke kelompok reguler."
    )
    assert int(counter(browser, "quota-left").replace(".", "")) == places - 1
    assert counter(browser, "budget-left") == "Rp0"
    regular = browser.find_element(By.XPATH, "//table[@id='counters']//tr[th='reguler']").text
    assert "Rp201.600" in regular, regular
    # The one designated has left the list; the one refused waits in it still.
    assert not browser.find_elements(By.ID, f"choose-{first}")
    assert browser.find_elements(By.ID, f"choose-{second}")
    ui.shot(browser, ROLE, "refused")
    ui.accessible(browser, "city")
    ui.phone_shot(browser, ROLE, "city")
    assert not browser.find_elements(By.ID, f"refused-{first}")
    refusal = browser.find_element(By.ID, f"refused-{second}").text
    # What was typed stays, to correct and send again.
    assert browser.find_element(By.ID, "decree_ref").get_attribute("value") == DECREE
    return refusal, sent


async def test_a_city_administrator_designates_within_the_budget(
    world: World, console: str, browser: WebDriver
) -> None:
    serial = random.randint(1000, 4000)
    async with httpx.AsyncClient() as api:
        first = await validated(api, serial)
        second = await validated(api, serial + 1)
        refusal, sent = await asyncio.to_thread(
            ui.walked, browser, ROLE, lambda: walk(browser, console, first, second)
        )
        assert "Biaya kepesertaan Rp201.600 (12 bulan x Rp16.800)" in refusal, refusal
        assert "tinggal Rp0" in refusal, refusal
        cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())

        # The same form sent again (a double click, the browser's resubmission) answers as the
        # first time and records nothing twice.
        again = await api.post(
            f"{console}/designations",
            data=sent
            | {
                "cohort": "regular",
                "worker_id": [first, second],
                "cover_months": "12",
                "coverage_start": "01-11-2024",
                "decree_ref": DECREE,
            },
            headers={"Cookie": cookies},
        )
        assert again.status_code == 200, again.text[:300]
        assert "1 dari 2 pekerja ditetapkan ke kelompok reguler." in again.text
        listed = await api.get(
            f"{URLS['verification']}/designations",
            params={"fiscal_year": 2024, "cohort": "regular"},
            headers=bearer(ROLE),
        )
        assert [w["worker_id"] for w in listed.json()["workers"]] == [first]
        counted = await api.get(
            f"{URLS['verification']}/designations/2024/counters", headers=bearer(ROLE)
        )
        [regular] = [c for c in counted.json()["cohorts"] if c["cohort"] == "regular"]
        assert (regular["designated"], regular["committed"]) == (1, 12 * ui.PREMIUM)
        ready = await api.get(f"{URLS['verification']}/worklists/city/33.75", headers=bearer(ROLE))
        assert [c["worker_id"] for c in ready.json()["cases"]] == [second]

        # The decree annex, as the signed-in administrator downloads it: names and NIK.
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
