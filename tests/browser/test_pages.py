"""The dashboard and the HTML report, opened in a real (headless) browser on a real run."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from growsearch.report import write_report

pytestmark = pytest.mark.slow

LINEAGE = '[id="user-defined-plot:growsearch-lineage"]'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard_url(run_dir: Path):
    """``growsearch dashboard RUN --port P`` in a subprocess; the study page's URL it prints."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "growsearch.cli", "dashboard", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the figures are saved and it listens
        match = re.search(r"http://127\.0\.0\.1:\d+/dashboard/studies/\d+", line)
        assert match, f"no URL in {line!r} (exit {proc.poll()})"
        url = match.group(0)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_shows_trials_and_lineage(browser, dashboard_url: str, artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    # uncaught exceptions in the page's scripts, and errors it logs (the dashboard's React app
    # catches an exception in a figure and logs it to the console), on every page below
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(dashboard_url)
        page.wait_for_selector(f"{LINEAGE} .main-svg", timeout=60_000)
        lineage = page.locator(LINEAGE)
        lineage.scroll_into_view_if_needed()
        text = lineage.inner_text()
        assert "Lineage" in text and "t0000" in text and "t0005" in text
        assert re.search(r"(widen|deepen)\(s\d+l\d+→", text)
        for name in ("pareto_params", "pareto_flops", "best_so_far", "curves"):
            page.wait_for_selector(f'[id="user-defined-plot:growsearch-{name}"] .main-svg')
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)
        lineage.screenshot(path=str(artifacts / "dashboard-lineage.png"))

        page.goto(dashboard_url + "/trials")  # optuna-dashboard's trial list
        page.get_by_text("6 Trials").wait_for(timeout=30_000)
        page.get_by_text("Trial 5", exact=True).first.wait_for()
        page.screenshot(path=str(artifacts / "dashboard-trials.png"))

        page.goto(dashboard_url + "/note")  # growsearch's note: the leaderboard
        page.get_by_text("growsearch run tiny").wait_for(timeout=30_000)
        assert page.locator("table tbody tr").count() == 6
        assert errors == []
    finally:
        page.close()


def test_report_opens_offline(browser, run_dir: Path, artifacts: Path) -> None:
    report = write_report(run_dir, pngs=False)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, offline=True)
    requested: list[str] = []

    def block(route) -> None:  # anything but the file itself fails, and is recorded
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            requested.append(route.request.url)
            route.abort()

    context.route("**/*", block)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(report.as_uri())
        page.wait_for_selector("#fig-lineage .main-svg", timeout=30_000)
        assert page.locator("#leaderboard tbody tr").count() == 6
        assert page.locator("#leaderboard tr.best").count() == 1
        assert "t0000" in page.locator("#fig-lineage").inner_text()
        assert page.locator(".js-plotly-plot").count() == 5
        assert requested == [] and errors == []
        page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        page.locator("#figure-lineage").screenshot(path=str(artifacts / "report-lineage.png"))
    finally:
        context.close()
