"""End to end: `serve_dashboard` on a finished study, opened in headless Chromium (Playwright)."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import CHROMIUM
from xsearch.study.storage import load_study, run_storage

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard.png"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the dashboard exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the dashboard did not answer {url} within {seconds} s")


@pytest.fixture
def dashboard(require_browser, tiny_run, tmp_path):
    """The URL of the tiny study's page on a dashboard served by `serve_dashboard` in a subprocess."""
    storage = run_storage("tiny", out=tiny_run)
    port = _free_port()
    code = f"from dashboards.server import serve_dashboard; serve_dashboard({storage!r}, 'tiny', port={port})"
    log = tmp_path / "dashboard.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([sys.executable, "-c", code], stdout=stderr, stderr=stderr)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/studies", server, log)
        yield f"http://127.0.0.1:{port}/dashboard/studies/{load_study(storage, 'tiny')._study_id}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_dashboard_shows_the_pareto_figure_in_chromium(dashboard):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(dashboard)
            figure = page.locator('[id="user-defined-plot:xsearch-pareto"]')
            figure.locator(".main-svg").first.wait_for(timeout=30_000)
            for graph_id in ("xsearch-hypervolume", "xsearch-segments"):
                page.locator(f'[id="user-defined-plot:{graph_id}"] .main-svg').first.wait_for(
                    timeout=10_000
                )
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert (
                "xsearch: Pareto front (tiny, 3 trials)" in figure.locator(".gtitle").text_content()
            )
            # 3 trials in each of the 2 panels
            assert figure.locator(".scatterlayer .point").count() >= 6
        finally:
            browser.close()
