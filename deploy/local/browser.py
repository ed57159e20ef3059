"""Debian's Chromium and its WebDriver, for the console's browser tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.local.packages import apt_install

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def ensure_chromium() -> tuple[Path, Path]:
    """Chromium and chromedriver, installed with apt-get when missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        apt_install(["chromium", "chromium-driver"], "The console's browser tests")
    return Path(shutil.which("chromium") or CHROMIUM), Path(
        shutil.which("chromedriver") or CHROMEDRIVER
    )
