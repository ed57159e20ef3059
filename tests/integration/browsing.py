"""Headless Chromium for the browser tests, driven as a keyboard user would."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.remote.webdriver import WebDriver, WebElement

from deploy.local.browser import ensure_chromium


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, chromedriver = ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def replaced(field: WebElement) -> Callable[[WebDriver], bool]:
    """True once ``field``'s page has gone. Chromedriver reports a node of a replaced page as
    stale, or as not belonging to the document: either way it is gone."""

    def gone(_: WebDriver) -> bool:
        try:
            field.is_enabled()
        except WebDriverException:
            return True
        return False

    return gone


def press(browser: WebDriver, *keys: str) -> None:
    """Keys to whatever has the focus, as a keyboard would: sent to an element instead, a key
    that submits its form can leave the driver holding a node the new page has dropped."""
    ActionChains(browser).send_keys(*keys).perform()
