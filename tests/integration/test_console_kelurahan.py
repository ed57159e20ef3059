"""A kelurahan officer's day in the console, in headless Chromium, by the keyboard only, in Bahasa
Indonesia, on the real services and identity provider: sign in, register a worker (the NIK's
refusal shown next to its field, the typed input kept), verify the case from the worklist,
find the worker by NIK; the results checked through the services' APIs. Screenshots go to
test-artifacts/console/."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from services.enrolment.imports import COLUMNS
from tests.integration import console_browsing as ui
from tests.integration.browsing import browser, press
from tests.integration.console_browsing import console
from tests.integration.programme_world import URLS, World, world
from tests.tokens import bearer

__all__ = ["browser", "console", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
SAPURO_KEBULEN = "33.75.01.1004"
ROLE = "kelurahan_officer"


def register(browser: WebDriver, nik: str) -> None:
    """Fill the empty form, choosing the first sex offered (male), and send it."""
    ui.type_into(browser, "nik", nik)
    ui.type_into(browser, "full_name", "Siti Aminah")
    ui.type_into(browser, "birth_date", "18-11-1985")
    ui.tab_to(browser, browser.find_element(By.ID, "sex-m"))
    press(browser, Keys.SPACE)
    ui.tab_to(browser, browser.find_element(By.ID, "occupation_code"))
    press(browser, "Pedagang keliling")
    ui.type_into(browser, "address", "Jl. Sapuro No. 7")
    ui.activate(browser, browser.find_element(By.ID, "submit-registration"))


def import_list(registered_nik: str) -> Path:
    """A two-row list: a man of 1980 and a row whose NIK serial is 0000."""
    other = registered_nik[:6] + "010780" + registered_nik[-3:] + "1"
    rows = [
        ";".join(COLUMNS),
        f"{other};Ahmad Fauzi;1980-07-01;M;tukang_becak;{SAPURO_KEBULEN};Jl. Sapuro 9;;;",
        f"{other[:12]}0000;Baris Salah;1980-07-01;M;tukang_becak;{SAPURO_KEBULEN};Jl. Sapuro;;;",
    ]
    path = ui.ARTIFACTS.parent / "console-import.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode())
    return path


def second_page(browser: WebDriver) -> str:
    """More workers alike than a page holds: the second page has the rest."""
    ui.type_and_send(browser, "q", "warga halaman")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#workers tbody tr")) == 25
    assert "Semuanya 26; halaman 1 dari 2." in browser.find_element(By.CLASS_NAME, "pager").text
    ui.activate(browser, browser.find_element(By.CSS_SELECTOR, ".pager a[rel=next]"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#workers tbody tr")) == 1
    return browser.find_element(By.CLASS_NAME, "pager").text


def walk(browser: WebDriver, base: str, nik: str) -> tuple[str, dict[str, str]]:
    """The worker registered, and the form as it was sent (to send it again)."""
    ui.sign_in(browser, base, ROLE, SAPURO_KEBULEN)
    assert "Selamat datang" in browser.find_element(By.TAG_NAME, "h1").text
    assert "Kelurahan Sapuro Kebulen" in browser.find_element(By.ID, "who").text
    ui.shot(browser, ROLE, "home")
    ui.accessible(browser, "home")
    # The skip link is the first stop of the keyboard.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Langsung ke isi"

    ui.follow(browser, "/workers/new")
    # A woman's NIK (day 18 + 40) with "male" chosen: the service refuses, the page says why
    # next to the field, in Indonesian, and keeps what was typed.
    register(browser, nik)
    error = browser.find_element(By.ID, "sex-error").text
    assert "NIK menunjukkan F" in error, error
    assert browser.find_element(By.ID, "nik").get_attribute("value") == nik
    assert browser.find_element(By.ID, "full_name").get_attribute("value") == "Siti Aminah"
    ui.shot(browser, ROLE, "register-refused")
    ui.accessible(browser, "register-refused")
    ui.phone_shot(browser, ROLE, "register-refused")

    # A radio group is one stop of the Tab key, at its chosen button; an arrow moves the choice.
    ui.tab_to(browser, browser.find_element(By.ID, "sex-m"))
    press(browser, Keys.ARROW_RIGHT)
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/workers']")
    sent = {
        field.get_attribute("name"): field.get_attribute("value")
        for field in form.find_elements(By.CSS_SELECTOR, "input:not([type=radio]), select")
    } | {"sex": "F"}
    ui.activate(browser, browser.find_element(By.ID, "submit-registration"))
    registered = browser.find_element(By.ID, "registered").text
    assert registered.startswith("Terdaftar."), registered
    worker_id = browser.find_element(By.CSS_SELECTOR, "#registered code").text
    ui.shot(browser, ROLE, "registered")

    ui.follow(browser, "/worklist")
    case = browser.find_element(By.ID, f"case-{worker_id}")
    assert "Sapuro Kebulen" in case.text
    ui.shot(browser, ROLE, "worklist")
    ui.accessible(browser, "worklist")
    verify = case.find_element(By.CSS_SELECTOR, "button[value=verify]")
    assert verify.text == "Verifikasi"
    ui.activate(browser, verify)
    assert browser.find_element(By.ID, "notice").text == f"Berkas {worker_id[:8]} diverifikasi."

    ui.follow(browser, "/imports/new")
    # A list as a spreadsheet saves it in Indonesia: semicolons, UTF-8 with a byte order mark;
    # the second row's NIK has the serial 0000. The file is chosen as a file dialog would.
    browser.find_element(By.ID, "list_file").send_keys(str(import_list(nik)))
    ui.activate(browser, browser.find_element(By.CSS_SELECTOR, "form[action='/imports'] button"))
    # The import's page shows its progress and refreshes itself until the job is done.
    WebDriverWait(browser, 120).until(lambda seen: seen.find_elements(By.ID, "import-result"))
    result = browser.find_element(By.ID, "import-result").text
    assert "1 terdaftar, 0 sudah terdaftar sebelumnya, 1 ditolak" in result, result
    assert browser.find_element(By.ID, "report").get_attribute("href").endswith("/report.csv")
    ui.shot(browser, ROLE, "imported")
    ui.accessible(browser, "imported")

    ui.follow(browser, "/workers")
    ui.type_and_send(browser, "q", nik)
    listed = browser.find_element(By.ID, "workers").text
    for shown in ("Siti Aminah", "Pedagang keliling", "terdaftar"):
        assert shown in listed
    # Any part of a name, whatever its case, searched by the enrolment service.
    ui.type_and_send(browser, "q", "aMINAH")
    assert "Siti Aminah" in browser.find_element(By.ID, "workers").text
    ui.shot(browser, ROLE, "workers")
    ui.accessible(browser, "workers")
    ui.phone_shot(browser, ROLE, "workers")
    return worker_id, sent


async def test_a_kelurahan_officer_registers_verifies_and_finds_a_worker(
    world: World, console: str, browser: WebDriver
) -> None:
    nik = f"3375015811850{random.randint(100, 999)}"
    worker_id, sent = await asyncio.to_thread(
        ui.walked, browser, ROLE, lambda: walk(browser, console, nik)
    )
    async with httpx.AsyncClient() as api:
        for serial in range(5000, 5026):
            await ui.registered(api, serial, "Warga Halaman")
        search = {"q": "Warga Halaman", "kelurahan": SAPURO_KEBULEN}
        for _ in range(120):  # once the workers' listing has read the registrations
            found = await api.get(
                f"{URLS['enrolment']}/workers/search",
                params=search,
                headers=bearer(ROLE, SAPURO_KEBULEN),
            )
            if found.json()["total"] == 26:
                break
            await asyncio.sleep(0.5)
    pager = await asyncio.to_thread(ui.walked, browser, ROLE, lambda: second_page(browser))
    assert "halaman 2 dari 2" in pager, pager
    # The same form sent again (a double click, a resubmitted page): nothing recorded twice.
    cookies = "; ".join(f"{c['name']}={c['value']}" for c in browser.get_cookies())
    async with httpx.AsyncClient() as again:
        answer = await again.post(f"{console}/workers", data=sent, headers={"Cookie": cookies})
    assert "Pendaftaran ini sudah tercatat" in answer.text, answer.text[-2000:]
    assert worker_id in answer.text

    officer = bearer(ROLE, SAPURO_KEBULEN)
    async with httpx.AsyncClient() as api:
        found = await api.get(f"{URLS['enrolment']}/workers", params={"nik": nik}, headers=officer)
        assert [w["worker_id"] for w in found.json()] == [worker_id]  # registered once
        assert found.json()[0]["sex"] == "F"
        case = await api.get(f"{URLS['verification']}/cases/{worker_id}", headers=officer)
        assert case.json()["last_level"] == "kelurahan"
        assert case.json()["last_outcome"] == "verified"
