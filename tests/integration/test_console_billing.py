"""A billing officer in the console, by the keyboard only, in Bahasa Indonesia: a worker covered
from November 2024 (budget, verification and designation through the APIs), the month's billing
run, a payment refused for its amount (said beside the field, the SP2D reference kept), then
recorded; the invoice checked through the billing API."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration import console_browsing as ui
from tests.integration.browsing import browser
from tests.integration.console_browsing import console
from tests.integration.programme_world import URLS, World, world
from tests.tokens import bearer

__all__ = ["browser", "console", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLE = "billing_officer"


def walk(browser: WebDriver, base: str) -> None:
    ui.sign_in(browser, base, ROLE)
    ui.follow(browser, "/billing")
    ui.type_into(browser, "period", "2024-11")
    ui.activate(browser, browser.find_element(By.ID, "run-billing"))
    notice = browser.find_element(By.ID, "notice").text
    assert notice == "Tagihan 2024-11 diterbitkan: 1 pekerja-bulan, Rp16.800.", notice
    ui.shot(browser, ROLE, "invoice")
    ui.accessible(browser, "billing")
    ui.phone_shot(browser, ROLE, "billing")

    # The invoice's lines, then the arrears list with the worker's standing on a December day.
    ui.activate(browser, browser.find_element(By.CSS_SELECTOR, "section[id^=invoice-] h3 a"))
    lines = browser.find_element(By.ID, "lines").text
    assert "2024-11" in lines, lines
    assert "Rp16.800" in lines, lines
    ui.shot(browser, ROLE, "invoice-lines")
    ui.accessible(browser, "invoice-lines")
    assert in_arrears(browser, "15-12-2024") == "dalam masa tenggang"
    ui.shot(browser, ROLE, "arrears")
    ui.accessible(browser, "arrears")
    ui.follow(browser, "/billing")

    [invoice] = browser.find_elements(By.CSS_SELECTOR, "section[id^=invoice-]")
    key = invoice.get_attribute("id").removeprefix("invoice-")
    ui.type_into(browser, f"{key}-payment_ref", "SP2D 00123/2024")
    ui.type_into(browser, f"{key}-paid_on", "10-12-2024")
    amount = browser.find_element(By.ID, f"{key}-amount")
    assert amount.get_attribute("value") == str(ui.PREMIUM)  # the total, offered
    # Tab selects what a field holds: typing replaces it, here with a wrong amount written the
    # Indonesian way.
    ui.type_into(browser, f"{key}-amount", "16.000")
    ui.activate(browser, invoice.find_element(By.CSS_SELECTOR, "button"))
    error = browser.find_element(By.ID, f"{key}-amount-error").text
    assert error == "Rp16.000 berbeda dari total tagihan Rp16.800.", error
    assert browser.find_element(By.ID, f"{key}-payment_ref").get_attribute("value") == (
        "SP2D 00123/2024"
    )
    ui.shot(browser, ROLE, "payment-refused")
    ui.accessible(browser, "payment-refused")

    invoice = browser.find_element(By.ID, f"invoice-{key}")
    ui.type_into(browser, f"{key}-amount", str(ui.PREMIUM))
    ui.activate(browser, invoice.find_element(By.CSS_SELECTOR, "button"))
    assert browser.find_element(By.ID, "notice").text == (
        "Pembayaran tercatat: 1 pekerja-bulan dibayar."
    )
    ui.shot(browser, ROLE, "paid")
    assert in_arrears(browser, "15-12-2024") == ""  # paid: nobody owes


def in_arrears(browser: WebDriver, day: str) -> str:
    """The standing of the one worker listed in arrears on ``day``, or "" when none is."""
    ui.follow(browser, "/arrears")
    ui.type_and_send(browser, "on", day)
    if browser.find_elements(By.ID, "no-arrears"):
        return ""
    [row] = browser.find_elements(By.CSS_SELECTOR, "#arrears tbody tr")
    cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
    assert cells[2:4] == ["2024-11, 2024-12", "Rp16.800"], cells
    return cells[1]


async def test_a_billing_officer_bills_a_month_and_records_its_payment(
    world: World, console: str, browser: WebDriver
) -> None:
    async with httpx.AsyncClient() as api:
        await ui.covered_worker(api)
        await asyncio.to_thread(ui.walked, browser, ROLE, lambda: walk(browser, console))
        invoices = (await api.get(f"{URLS['billing']}/invoices", headers=bearer(ROLE))).json()
        assert [(i["period"], i["total"], i["payment_ref"], i["paid_on"]) for i in invoices] == [
            ("2024-11", ui.PREMIUM, "SP2D 00123/2024", "2024-12-10")
        ]
