"""The audit web page in headless Chromium after a demo run, used with the keyboard only: sign
in, a worker's timeline (by id, then by the NIK only a city administrator sees), the programme
dashboard, and the operations page. Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from deploy.demo import programme
from deploy.local.paths import REPO_ROOT
from tests.integration.browsing import browser, press, replaced
from tests.integration.programme_world import SIZE, URLS, World, environment, world
from tests.tokens import token_for

__all__ = ["browser", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
KRAPYAK = "33.75.03.1002"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "audit-web"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_web(world: World, port: int, log: Path) -> subprocess.Popen[bytes]:
    kafka, database, _ = world
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "audit", "web", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment(kafka, database),
            stdout=out,
            stderr=out,
        )


async def serve_web(world: World, port: int, log: Path) -> subprocess.Popen[bytes]:
    web = await asyncio.to_thread(start_web, world, port, log)
    async with httpx.AsyncClient() as client:
        for _ in range(120):
            try:
                await client.get(f"http://127.0.0.1:{port}/sign-in")
                return web
            except httpx.TransportError:
                await asyncio.sleep(0.25)
    raise AssertionError(f"the audit web page did not start; see {log}")


def sign_in(browser: WebDriver, base: str, role: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base}/sign-in")
    # An officer's token carries its kelurahan; the page refuses the role, not the token.
    token = token_for(role, KRAPYAK if role == "kelurahan_officer" else None)  # type: ignore[arg-type]
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    press(browser, Keys.TAB, Keys.ENTER)  # to the button, and press it
    WebDriverWait(browser, 30).until(replaced(field))  # the next page has replaced the form


def search(browser: WebDriver, base: str, query: str) -> None:
    browser.get(f"{base}/workers")
    field = browser.find_element(By.ID, "q")
    field.send_keys(query)
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 30).until(replaced(field))


def shot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


async def test_an_auditor_and_a_city_administrator_use_the_page(
    world: World, browser: WebDriver, tmp_path: Path
) -> None:
    result = await programme(SIZE, URLS)
    worker = next(r for r in result["claims"] if r["label"] == "JKM death during arrears")
    worker_id = worker["worker_id"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = await serve_web(world, port, tmp_path / "web.log")
    try:
        await asyncio.to_thread(sign_in, browser, base, "kelurahan_officer")
        assert "may not use the audit workbench" in browser.find_element(By.ID, "error").text

        await asyncio.to_thread(sign_in, browser, base, "auditor")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)  # the first stop is the skip link
        assert browser.switch_to.active_element.text == "Skip to content"

        await asyncio.to_thread(search, browser, base, worker_id)
        shot(browser, "timeline-auditor")
        timeline = browser.find_element(By.ID, "timeline").text
        for kind in ("WorkerRegistered", "CoverageStarted", "PremiumPaid", "ClaimPaid"):
            assert kind in timeline
        assert "(sealed)" in timeline
        assert browser.find_element(By.ID, "name").text == "not shown to your role"
        for profile in ("birth_date", "sex", "occupation_code"):  # not the auditor's need
            assert f"{profile}:" not in timeline

        browser.get(f"{base}/dashboard")
        shot(browser, "dashboard")
        tables = browser.find_elements(By.TAG_NAME, "table")
        captions = [t.find_element(By.TAG_NAME, "caption").text for t in tables]
        assert captions == [
            "workers by status and cohort",
            "premiums due and paid",
            "claims open and decided",
        ]
        assert "2024 regular" in tables[1].text.replace("\n", " ")

        browser.get(f"{base}/operations")
        shot(browser, "operations")
        assert "enrolment.events" in browser.find_element(By.ID, "topics").text
        assert "workers" in browser.find_element(By.ID, "lag").text

        await asyncio.to_thread(sign_in, browser, base, "city_admin")
        await asyncio.to_thread(search, browser, base, worker_id)
        name = browser.find_element(By.ID, "name").text
        assert name not in ("", "not shown to your role")
        assert "birth_date:" in browser.find_element(By.ID, "timeline").text
        nik = browser.find_element(By.XPATH, "//dt[.='NIK']/following-sibling::dd[1]").text
        await asyncio.to_thread(search, browser, base, nik)
        shot(browser, "timeline-by-nik")
        assert browser.find_element(By.ID, "worker").text == f"Worker {worker_id}"
    finally:
        web.terminate()
        web.wait(timeout=30)
