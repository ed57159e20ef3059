"""The console on a free port in front of the four services, and what its browser tests share:
signing in at the provider's page, moving by the Tab key, screenshots and the axe-core check."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver, WebElement
from selenium.webdriver.support.wait import WebDriverWait

from deploy.local.keycloak import allow_console_at
from deploy.local.paths import REPO_ROOT
from shared.auth import Role
from tests.integration.browsing import press, replaced
from tests.integration.programme_world import URLS, World, free_port
from tests.tokens import bearer, sign_in_details

ARTIFACTS = REPO_ROOT / "test-artifacts" / "console"
AXE = REPO_ROOT / "tests" / "vendor" / "axe-core-4.14.1" / "axe.min.js"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
PHONE = (360, 800)
SAPURO_KEBULEN = "33.75.01.1004"
PEKALONGAN_BARAT = "33.75.01"
PREMIUM = 16_800  # a month of JKK and JKM


@asynccontextmanager
async def serving(urls: dict[str, str], log: Path) -> AsyncIterator[str]:
    """The console in front of the services at ``urls``, on a free port; its address."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await asyncio.to_thread(allow_console_at, base)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "BERLIAN_CONSOLE_URL": base,
        **{f"BERLIAN_CONSOLE_{s.upper()}_URL": url for s, url in urls.items()},
    }
    process = await asyncio.to_thread(start_console, port, env, log)
    try:
        await until_ready(process, base, log)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


async def until_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Until the process started at ``base`` answers ready (it must not exit meanwhile)."""
    async with httpx.AsyncClient() as client:
        for _ in range(240):
            assert process.poll() is None, f"{process.args} exited during start-up; see {log}"
            try:
                if (await client.get(f"{base}/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.25)


@pytest.fixture
async def console(world: World, tmp_path: Path) -> AsyncIterator[str]:
    """The console's address, in front of the world's services, until the test ends."""
    async with serving(URLS, tmp_path / "console.log") as base:
        yield base


def start_console(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "console", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=out,
        )


def focused(browser: WebDriver) -> WebElement:
    return browser.switch_to.active_element


def tab_to(browser: WebDriver, target: WebElement, limit: int = 80) -> None:
    """Tab through the page until ``target`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if focused(browser) == target:
            return
        press(browser, Keys.TAB)
    raise AssertionError(f"Tab never reached {target.get_attribute('outerHTML')[:200]}")


def activate(browser: WebDriver, target: WebElement, key: str = Keys.ENTER) -> None:
    """Tab to a link or button and press it; wait for the next page."""
    tab_to(browser, target)
    press(browser, key)
    WebDriverWait(browser, 30).until(replaced(target))


def type_into(browser: WebDriver, element_id: str, text: str) -> None:
    """Tab to a field and type: the Tab key selects what it held, so the typing replaces it."""
    tab_to(browser, browser.find_element(By.ID, element_id))
    press(browser, text)


def type_and_send(browser: WebDriver, element_id: str, text: str) -> None:
    """Type into a field and send its form with the Enter key; wait for the answer."""
    type_into(browser, element_id, text)
    field = browser.find_element(By.ID, element_id)
    press(browser, Keys.ENTER)
    WebDriverWait(browser, 30).until(replaced(field))


def follow(browser: WebDriver, href: str) -> None:
    """Reach a menu entry by the keyboard and follow it."""
    activate(browser, browser.find_element(By.CSS_SELECTOR, f"nav a[href='{href}']"))


def sign_in(browser: WebDriver, base: str, role: Role, area: str | None = None) -> None:
    """Through the console's sign-in page and the provider's login form, by the keyboard."""
    browser.delete_all_cookies()
    browser.get(f"{base}/sign-in")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Masuk ke Konsol Berlian"
    activate(browser, browser.find_element(By.ID, "sign-in"))
    user, password = sign_in_details(role, area)
    name = browser.find_element(By.ID, "username")
    tab_to(browser, name)
    press(browser, user, Keys.TAB, password, Keys.ENTER)
    WebDriverWait(browser, 30).until(lambda b: b.current_url.rstrip("/") == base)
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "who"))


def walked(browser: WebDriver, role: str, walk: Callable[[], str]) -> str:
    """``walk``'s answer; when it fails, the page it failed on is kept beside the screenshots."""
    try:
        return walk()
    except Exception:
        shot(browser, role, "failed-here")
        (ARTIFACTS / f"{role}-failed-here.html").write_text(browser.page_source)
        raise


def shot(browser: WebDriver, role: str, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{role}-{name}.png"))


def phone_shot(browser: WebDriver, role: str, name: str) -> None:
    """The page at a 360-pixel phone's width: nothing wider than the screen."""
    size = browser.get_window_size()
    browser.set_window_size(*PHONE)
    try:
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        shot(browser, role, f"{name}-phone")
        assert overflow <= 0, f"{name} is {overflow} px wider than a 360-px screen"
    finally:
        browser.set_window_size(size["width"], size["height"])


def accessible(browser: WebDriver, page: str) -> None:
    """axe-core's WCAG 2.1 A and AA rules find no serious or critical violation."""
    script = AXE.read_bytes()
    assert hashlib.sha256(script).hexdigest() == AXE_SHA256, "the vendored axe-core changed"
    browser.execute_script(script.decode())
    result: dict[str, Any] = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}).then(done);"
    )
    serious = [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes, e.g. {v['nodes'][0]['html'][:120]})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{page}: {serious}"


async def registered(api: httpx.AsyncClient, serial: int, name: str = "Warga") -> str:
    """A worker of Sapuro Kebulen registered through the API, named ``name`` and the serial."""
    officer = bearer("kelurahan_officer", SAPURO_KEBULEN)
    body = {
        "nik": f"337501450780{serial:04d}",  # a woman born on 5 July 1980
        "full_name": f"{name} {serial}",
        "birth_date": "1980-07-05",
        "sex": "F",
        "occupation_code": "buruh_batik",
        "kelurahan_code": SAPURO_KEBULEN,
        "address": "Sapuro",
    }
    answer = await api.post(f"{URLS['enrolment']}/workers", json=body, headers=officer)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["worker_id"])


async def verified_at_kelurahan(api: httpx.AsyncClient, serial: int) -> str:
    """A worker registered and verified by the kelurahan, through the APIs."""
    officer = bearer("kelurahan_officer", SAPURO_KEBULEN)
    worker = await registered(api, serial)
    for _ in range(120):  # the case opens once verification has read the registration
        verified = await api.post(
            f"{URLS['verification']}/cases/{worker}/verify", json={}, headers=officer
        )
        if verified.status_code == 200:
            return worker
        await asyncio.sleep(0.5)
    raise AssertionError(f"the case of {worker} never opened: {verified.text}")


async def covered_worker(api: httpx.AsyncClient) -> str:
    city = bearer("city_admin")
    budget = {"fiscal_year": 2024, "source": "APBD", "cohort": "regular", "amount": 12 * PREMIUM}
    allocated = await api.post(
        f"{URLS['billing']}/budgets",
        json=budget,
        headers=city | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert allocated.status_code == 201, allocated.text
    worker = await verified_at_kelurahan(api, random.randint(5000, 9000))
    steps = [
        (f"/cases/{worker}/verify", {}, bearer("kecamatan_officer", PEKALONGAN_BARAT)),
        (
            f"/cases/{worker}/designate",
            {
                "cohort": "regular",
                "cover_months": 12,
                "coverage_start": "2024-11-01",
                "fiscal_year": 2024,
                "decree_ref": "Keputusan Wali Kota Pekalongan 400/regular/2024",
            },
            city,
        ),
    ]
    for path, body, caller in steps:
        for _ in range(120):  # each decision waits for the facts it reads to arrive
            decided = await api.post(f"{URLS['verification']}{path}", json=body, headers=caller)
            if decided.status_code == 200:
                break
            await asyncio.sleep(0.5)
        assert decided.status_code == 200, decided.text
    officer = bearer("billing_officer")
    for _ in range(120):  # billing learns of the coverage from enrolment's events
        standing = await api.get(
            f"{URLS['billing']}/workers/{worker}/standing",
            params={"on": "2024-11-15"},
            headers=officer,
        )
        if standing.status_code == 200 and standing.json()["status"] != "NOT_COVERED":
            return worker
        await asyncio.sleep(0.5)
    raise AssertionError(f"billing never saw {worker} covered: {standing.text}")
