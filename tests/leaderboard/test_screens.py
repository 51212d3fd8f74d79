"""Every leaderboard page in a real browser, on a store of real runs: 14 methods, the ghost-spike and tuning suites.

The store is benched by the CLI (``harness bench``: a 14-method softmax and logreg suite of a catalog root
made here, then the built-in ``ghost-spike`` suite, torch only to keep it short), served by
``harness leaderboard`` and opened in Debian's Chromium at 1400 px. Each page is screenshotted
(set ``HARNESS_SCREENSHOTS=DIR`` to keep them) and checked: no exception, its charts drawn,
and on the ghost-spike view the spiked gradient descent diverging, ghost-step surviving and
the probe's ``r = 1`` line drawn.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from lbkit import DRAWN  # the app's own module (tests/leaderboard/conftest.py puts it on the path)
from test_browser import CHART, chromium_page, screenshot_dir, serving

from harness.store import scan_runs

pytestmark = pytest.mark.slow

#: The methods benched on softmax (with ghost-spike's gd-spike: 15).
METHODS = ("gd", "heavy-ball", "nesterov", "adam", "adamw", "lion", "lbfgs", "gns-newton", "eg", "winsorized-gd",
           "zo-sgd", "curl-descent", "muon", "ghost-step")


def _bench(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "harness.cli", "bench", *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("screens")
    (root / "catalog" / "suites").mkdir(parents=True)
    (root / "catalog" / "suites" / "screens.yaml").write_text(textwrap.dedent(f"""\
        id: screens
        description: Fourteen methods on softmax and logistic regression, for the leaderboard's screenshots.
        seeds: [0]
        frameworks: [torch]
        hardware: [cpu]
        entries:
          - tasks: [softmax, logreg]
            methods: [{", ".join(METHODS)}]
            budget: {{steps: 60, seconds: 60}}
        """), encoding="utf-8")
    store = root / "store"
    _bench("--suite", "screens", "--catalog", str(root / "catalog"), "--store", str(store))
    _bench("--suite", "ghost-spike", "--framework", "torch", "--store", str(store))
    _bench("--suite", "tuning", "--store", str(store))  # a 16-trial study of gd's lr: the Tuning page
    return store


@pytest.fixture(scope="module")
def bench_server(bench_store: Path) -> Iterator[str]:
    with serving(bench_store) as url:
        yield url


@pytest.fixture(scope="module")
def tall_page(bench_server: str) -> Iterator[object]:
    # Tall enough that Streamlit's own scrolling container holds the whole page in one screenshot.
    with chromium_page(height=5200, timeout_ms=90_000) as page:
        yield page


def _open(page, url: str) -> None:
    """Go to ``url`` and wait until the page's script has finished (the sidebar says how long it took)."""
    page.goto(url)
    page.locator("[data-testid='stSidebar']", has_text=DRAWN).wait_for()
    page.wait_for_timeout(1500)  # the charts' last paint


def _shoot(page, directory: Path, name: str) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()
    assert not page.errors, page.errors
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def test_the_store_holds_the_methods_and_the_spike(bench_store: Path) -> None:
    runs = scan_runs(bench_store).collect()
    assert runs["method"].n_unique() >= 12
    spiked = runs.filter(pl.col("hyperparameters").str.contains('"spike_factor":1000'))
    assert set(spiked.filter(pl.col("method") == "gd-spike")["status"]) == {"diverged"}
    assert set(spiked.filter(pl.col("method") == "ghost-step")["status"]) == {"completed"}


@pytest.mark.parametrize("name, path, charts", [
    ("overview", "", 1),
    ("task-softmax", "task?task=softmax", 3),
    ("method-ghost-step", "method?method=ghost-step", 0),
    ("runs", "runs", 1),
    ("ecdf", "ecdf", 1),
    ("tuning", "tuning", 1),
])
def test_every_page_draws(tall_page, bench_server: str, tmp_path: Path, name: str, path: str, charts: int) -> None:
    _open(tall_page, f"{bench_server}/{path}")
    _shoot(tall_page, screenshot_dir(tmp_path), name)
    assert tall_page.locator(CHART).count() >= charts


def test_ghost_spike_view_shows_divergence_survival_and_the_radius_line(tall_page, bench_server: str,
                                                                       tmp_path: Path) -> None:
    _open(tall_page, f"{bench_server}/task?task=softmax&suite=ghost-spike")
    text = tall_page.locator("[data-testid='stMain']").inner_text()
    failed = next(line for line in text.splitlines() if line.startswith("Failed (the line ends at the failure)"))
    assert "gd-spike" in failed and "diverged×3" in failed and "ghost-step" not in failed
    # the suite filter came from the link, and the convergence and probe charts are drawn
    assert "ghost-spike" in tall_page.locator("[data-testid='stSidebar']").inner_text()
    assert tall_page.locator(CHART).count() >= 4
    # the probe's reference line is labelled on the chart (Vega draws the text mark in SVG or canvas)
    assert "the dashed line: r = 1" in text
    _shoot(tall_page, screenshot_dir(tmp_path), "task-ghost-spike")
