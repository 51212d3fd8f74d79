"""The leaderboard in a real browser: Debian's Chromium driven by playwright (never downloaded).

The server is started by the CLI, ``harness leaderboard``, on a free loopback port. The test
waits for the charts, switches the task, saves a screenshot, and checks that a method whose
YAML name is an HTML payload is shown as literal text with no script run.
Set ``HARNESS_SCREENSHOTS=DIR`` to keep the screenshots.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import storegen

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
CHART = "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg.marks"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the leaderboard exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def serving(store: Path, *options: str) -> Iterator[str]:
    """``harness leaderboard --store STORE OPTIONS`` on a free port, as a user starts it; its URL."""
    port = free_port()
    command = [sys.executable, "-m", "harness.cli", "leaderboard", "--store", str(store), "--port", str(port), *options]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
    finally:
        stop_group(process)


@pytest.fixture(scope="module")
def server(small_store: Path, xss_catalog: Path) -> Iterator[str]:
    with serving(small_store, "--catalog", str(xss_catalog)) as url:
        yield url


def stop_group(process: subprocess.Popen) -> None:
    """Stop the server and its streamlit child (their own process group)."""
    for signum, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            time.sleep(0.2)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(60_000)  # a loaded 2-core CI machine renders slowly
    dialogs: list[str] = []

    def record(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.dialogs = dialogs
    yield page
    context.close()


@contextlib.contextmanager
def chromium_page(*, height: int, timeout_ms: int = 60_000) -> Iterator[object]:
    """A page 1400 px wide in Debian's Chromium (skipped without it), its script errors in ``page.errors``."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(timeout_ms)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        yield page
        browser.close()


def screenshot_dir(tmp_path: Path) -> Path:
    kept = os.environ.get("HARNESS_SCREENSHOTS")
    directory = Path(kept) if kept else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def wait_for_charts(page, count: int) -> None:
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length >= n", arg=[CHART, count]
    )


def test_overview_then_task_switch_with_screenshot(page, server, tmp_path) -> None:
    page.goto(server)
    wait_for_charts(page, 1)
    page.get_by_text("Ranking by performance-profile score").wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()

    page.locator("[data-testid='stSidebarNav'] a", has_text="Task").click()
    page.get_by_role("heading", name="logreg (convex)").wait_for()
    wait_for_charts(page, 5)  # convergence vs time and step, hardware, two probes

    page.locator("[data-testid='stSelectbox']", has_text="Task").first.click()
    page.get_by_role("option", name="rastrigin").click()
    page.get_by_role("heading", name="rastrigin (global)").wait_for()
    # rastrigin's page draws one chart (AppTest counts one, before this stop's changes too): waiting for
    # two passed only while the logreg page's stale charts were still in the DOM.
    wait_for_charts(page, 1)
    page.wait_for_timeout(500)  # let vega finish drawing
    shot = screenshot_dir(tmp_path) / "leaderboard-task.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    assert "task=rastrigin" in page.url
    assert page.dialogs == []


def test_markup_in_a_method_name_is_shown_as_text(page, server, tmp_path) -> None:
    page.goto(f"{server}/method?method=evil")
    literal = page.get_by_text(f"Name: {storegen.XSS}", exact=True)
    literal.wait_for()
    assert literal.is_visible()
    page.get_by_text("Declaration").wait_for()
    page.wait_for_timeout(1000)  # time for an injected handler to fire, if any
    assert page.locator("img[src='x']").count() == 0
    assert page.dialogs == []
    page.screenshot(path=str(screenshot_dir(tmp_path) / "leaderboard-method.png"), full_page=True)



def test_runs_compiled_in_clock_are_flagged_in_the_browser(page, server, tmp_path) -> None:
    page.goto(server)
    page.get_by_text("Compiled in clock: 3 of 66 runs in view").wait_for()
    wait_for_charts(page, 1)
    page.locator("[data-testid='stSidebarNav'] a", has_text="Runs").click()
    page.get_by_text("Only runs ⚠ compiled in clock").click()
    page.get_by_text("3 of 69 runs", exact=True).wait_for()  # the table's count, not the flag notice
    page.wait_for_timeout(500)
    page.screenshot(path=str(screenshot_dir(tmp_path) / "leaderboard-runs-flagged.png"), full_page=True)
    assert page.dialogs == []
