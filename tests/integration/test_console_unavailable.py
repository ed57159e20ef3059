"""A service that does not answer: the console says so in Bahasa Indonesia, records nothing,
and keeps what the officer typed in a form to send again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration import console_browsing as ui
from tests.integration.browsing import browser
from tests.integration.programme_world import free_port

__all__ = ["browser"]  # the fixture, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLE = "kelurahan_officer"


@pytest.fixture
async def console_without_services(tmp_path: Path) -> AsyncIterator[str]:
    # Ports nothing listens on: every service is away.
    nobody = {s: f"http://127.0.0.1:{free_port()}" for s in ("enrolment", "verification")}
    nobody |= {s: f"http://127.0.0.1:{free_port()}" for s in ("billing", "claims")}
    async with ui.serving(nobody, tmp_path / "console.log") as base:
        yield base


def walk(browser: WebDriver, base: str) -> None:
    ui.sign_in(browser, base, ROLE, ui.SAPURO_KEBULEN)
    ui.follow(browser, "/workers/new")
    ui.type_into(browser, "nik", "3375015811850001")
    ui.type_into(browser, "full_name", "Siti Aminah")
    ui.activate(browser, browser.find_element(By.ID, "submit-registration"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Layanan tidak tersedia"
    said = browser.find_element(By.ID, "unavailable").text
    assert said.startswith("Layanan enrolment tidak menjawab, jadi kiriman Anda mungkin"), said
    assert browser.find_element(By.ID, "kept-nik").get_attribute("value") == "3375015811850001"
    assert browser.find_element(By.ID, "kept-full_name").get_attribute("value") == "Siti Aminah"
    ui.shot(browser, ROLE, "unavailable")


async def test_a_service_down_is_said_and_the_input_kept(
    console_without_services: str, browser: WebDriver
) -> None:
    await asyncio.to_thread(
        ui.walked, browser, ROLE, lambda: walk(browser, console_without_services)
    )
