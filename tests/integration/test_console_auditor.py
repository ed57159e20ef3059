"""An auditor in the console after a demo run, by the keyboard only, in Bahasa Indonesia: the
report's charts on the dashboard with their numbers in tables, a worker's history with every
event's fields in words, its download, and the chain check; each page drawn from the audit
application (`berlian audit web`, started here beside the services) with the auditor's own
token. The history and its download are checked against the audit API."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from deploy.demo import programme
from deploy.local.paths import REPO_ROOT
from services.console.i18n import rupiah
from tests.integration import console_browsing as ui
from tests.integration.browsing import browser
from tests.integration.programme_world import SIZE, URLS, World, environment, free_port, world
from tests.tokens import bearer

__all__ = ["browser", "world"]  # the fixtures, used by name
pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROLE = "auditor"
# A code the pages must name instead: a kelurahan's (33.75.01.1004) or an occupation's.
CODE = re.compile(r"33\.75\.0\d\.\d{4}|[a-z]+_[a-z_]+")


def start_audit(world: World, port: int, log: Path) -> subprocess.Popen[bytes]:
    kafka, database, _ = world
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "audit", "web", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment(kafka, database),
            stdout=out,
            stderr=out,
        )


@pytest.fixture
async def audit_api(world: World, tmp_path: Path) -> AsyncIterator[str]:
    """`berlian audit web` on a free port, on the world's topics and database."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "audit.log"
    process = await asyncio.to_thread(start_audit, world, port, log)
    try:
        await ui.until_ready(process, base, log)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def dashboard(browser: WebDriver, base: str) -> None:
    ui.sign_in(browser, base, ROLE)
    ui.follow(browser, "/audit")
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == "Program dalam angka, tahun anggaran 2024", heading
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg[role=img]")
    titles = [c.find_element(By.TAG_NAME, "title").get_attribute("textContent") for c in charts]
    assert titles == [
        "Pekerja terlindungi per bulan menurut kelompok",
        "Iuran yang ditagih, dibayar tepat waktu, dibayar terlambat dan belum dibayar "
        "dibandingkan anggaran",
        "Klaim yang diajukan, diputus dan dibayar",
    ]
    # The regular cohort's year invoiced: in its bar's title and in the table beside it.
    invoiced = rupiah(SIZE.regular * 12 * ui.PREMIUM, "id")
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-premiums rect title")
    said = [b.get_attribute("textContent") for b in bars]
    assert f"reguler, Ditagih: {invoiced}" in said, said
    premiums = browser.find_element(By.ID, "premiums").text
    assert invoiced in premiums, premiums
    assert "Dibayar terlambat" in premiums  # the header in words, not paid_late
    assert "Rasio klaim" in browser.find_element(By.ID, "loss-ratio-heading").text
    ui.shot(browser, ROLE, "dashboard")
    browser.execute_script("document.getElementById('premiums-heading').scrollIntoView()")
    ui.shot(browser, ROLE, "dashboard-charts")
    ui.accessible(browser, "audit dashboard")
    ui.phone_shot(browser, ROLE, "dashboard")


def history(browser: WebDriver, worker: str) -> tuple[int, str]:
    """The worker's history page: how many events it says, and its download's address."""
    ui.follow(browser, "/audit/workers")
    ui.type_and_send(browser, "q", worker)
    summary = browser.find_element(By.ID, "worker-summary").text
    assert browser.find_element(By.ID, "name").text == "tidak ditampilkan untuk peran Anda"
    assert not CODE.search(summary), summary
    total = int(browser.find_element(By.ID, "events-total").text.split()[0].replace(".", ""))
    first = browser.find_element(By.ID, "history").text
    assert first.startswith("Pekerja didaftarkan"), first[:200]
    labels = {dt.text for dt in browser.find_elements(By.CSS_SELECTOR, "#history dt")}
    assert {"Oleh", "Keadaan sesudahnya", "Bulan", "Kelompok"} <= labels, labels
    browser.execute_script("document.getElementById('worker').scrollIntoView()")
    ui.shot(browser, ROLE, "history")
    ui.accessible(browser, "audit history")
    ui.phone_shot(browser, ROLE, "history")
    events = [first]
    while browser.find_elements(By.CSS_SELECTOR, "nav.pager a[rel=next]"):
        ui.activate(browser, browser.find_element(By.CSS_SELECTOR, "nav.pager a[rel=next]"))
        events.append(browser.find_element(By.ID, "history").text)
    assert len(events) == -(-total // 25)
    read = "\n".join(events)
    for name in ("Perlindungan dimulai", "Iuran dibayar", "Klaim diajukan", "Klaim dibayar"):
        assert name in read, name
    assert "disegel: data pribadi, tidak ditampilkan" in read  # the claimant's details
    assert "Petugas tagihan (" in read  # who recorded the payments, by role
    assert "{" not in read  # no program text
    assert "'" not in read
    download = browser.find_element(By.ID, "history-csv")
    ui.tab_to(browser, download)  # reached by the keyboard like every link
    return total, str(download.get_attribute("href"))


def chains(browser: WebDriver) -> None:
    ui.follow(browser, "/audit/verification")
    verdict = browser.find_element(By.ID, "verdict").text
    assert verdict.startswith("Utuh: setiap peristiwa"), verdict
    ui.shot(browser, ROLE, "verification")
    ui.accessible(browser, "audit verification")
    ui.follow(browser, "/audit/operations")
    assert "enrolment.events" in browser.find_element(By.ID, "topics").text
    ui.accessible(browser, "audit operations")


async def test_an_auditor_reads_the_report_and_a_workers_history(
    world: World, audit_api: str, browser: WebDriver, tmp_path: Path
) -> None:
    result = await programme(SIZE, URLS)
    worker = next(r for r in result["claims"] if r["label"] == "JKM death during arrears")
    worker_id = str(worker["worker_id"])
    auditor = bearer(ROLE)
    async with httpx.AsyncClient(base_url=audit_api, timeout=600) as api:
        # The rebuilds once beforehand: the pages are then answered from them at once.
        assert (await api.get("/reports/2024", headers=auditor)).status_code == 200
        assert (await api.get("/verification", headers=auditor)).status_code == 200
        async with ui.serving({**URLS, "audit": audit_api}, tmp_path / "console.log") as base:
            await asyncio.to_thread(ui.walked, browser, ROLE, lambda: dashboard(browser, base))
            total, address = await asyncio.to_thread(
                ui.walked, browser, ROLE, lambda: history(browser, worker_id)
            )
            await asyncio.to_thread(ui.walked, browser, ROLE, lambda: chains(browser))
            session = browser.get_cookie("berlian_console_session")
            assert session is not None
            async with httpx.AsyncClient(timeout=120) as console:
                sheet = await console.get(
                    address, headers={"Cookie": f"berlian_console_session={session['value']}"}
                )
        history_answer = await api.get(f"/workers/{worker_id}/history", headers=auditor)
    assert sheet.status_code == 200, sheet.text[:500]
    rows = list(csv.reader(io.StringIO(sheet.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Dicatat", "Peristiwa", "Oleh"]
    known = history_answer.json()
    assert total == known["total"] == len(rows) - 1
    kinds = [e["event_type"] for e in known["events"]]
    assert kinds[0] == "WorkerRegistered"
    assert rows[1][1] == "Pekerja didaftarkan"
