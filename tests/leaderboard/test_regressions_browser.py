"""The Regressions page in a real browser: ``harness leaderboard --asv-config`` on the toy repository's results.

The toy repository of :mod:`test_regressions_page` (three recorded commits; ``track_error``
triples at the last, ``track_memory`` is re-baselined at the second) is served by the CLI beside
the small store and opened in Debian's Chromium (never downloaded) at 1400 px. The page must draw
its chart with no exception and flag the regression; each view is screenshotted to
``/tmp/shots/`` (and to ``HARNESS_SCREENSHOTS=DIR`` when set).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lbkit import DRAWN  # the app's own module (tests/leaderboard/conftest.py puts it on the path)
from test_browser import CHART, chromium_page, screenshot_dir, serving
from test_regressions_page import REGRESSED, make_asv_repo

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/shots")


@pytest.fixture(scope="module")
def regress_server(small_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = make_asv_repo(tmp_path_factory.mktemp("asv-browser"))
    with serving(small_store, "--asv-config", str(config)) as url:
        yield url


@pytest.fixture(scope="module")
def tab(regress_server: str) -> Iterator[object]:
    with chromium_page(height=2000) as page:
        yield page


def _open_and_shoot(page, url: str, name: str, tmp_path: Path) -> str:
    page.goto(url)
    page.locator("[data-testid='stSidebar']", has_text=DRAWN).wait_for()
    page.locator(CHART).first.wait_for()
    page.wait_for_timeout(1500)  # the chart's last paint
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()
    assert not page.errors, page.errors
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copyfile(shot, screenshot_dir(tmp_path) / shot.name)
    assert shot.stat().st_size > 20_000
    return page.locator("[data-testid='stMain']").inner_text()


def test_the_regressed_benchmark_is_drawn_and_flagged(tab, regress_server: str, tmp_path: Path) -> None:
    text = _open_and_shoot(tab, f"{regress_server}/regressions?benchmark={REGRESSED}", "regressions", tmp_path)
    assert "4 regression(s) at" in text and REGRESSED in text
    assert "▲ regressed" in text  # the count above the table (and the picker's option)
    assert "regressions?benchmark=" in tab.url and tab.locator(CHART).count() == 1


def test_a_rebaselined_benchmark(tab, regress_server: str, tmp_path: Path) -> None:
    text = _open_and_shoot(tab, f"{regress_server}/regressions?benchmark=toy.track_memory",
                           "regressions-rebaseline", tmp_path)
    assert "toy.track_memory" in text and tab.locator(CHART).count() == 1
