"""``harness.regress.publish``: asv's site, published from a toy repository, opens offline.

A temporary git repository (branch ``main``) holds the project's ``asv.conf.json`` and a
``benchmarks/`` package with one ``time_`` and one ``track_`` benchmark; asv records two commits
(the tracked value changes between them) with ``--python=same`` on a machine ``testbox`` (``HOME``
is a temporary folder, so the real ``~/.asv-machine.json`` is untouched), then :func:`publish`
writes the site and points its CDN scripts and stylesheets at the local copies.

asv's page loads its JSON with XMLHttpRequest, which Chromium refuses from ``file://``, so the
site is served as a user would (``python -m http.server`` on a free loopback port). Debian's
Chromium (never downloaded) opens it with every request not to 127.0.0.1 aborted and recorded:
none may be attempted, no script may fail, the benchmark grid must name both benchmarks and the
track benchmark's graph must be drawn by flot. Screenshots go to ``/tmp/shots/``.
Those two are skipped only when the site's libraries are not installed (``scripts/setup.sh``
installs them). Two quick tests check the errors: a library not installed is named, and a CDN
URL with no local copy is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asv
import pytest

from harness.regress.publish import (MissingAssetError, PublishError, assets_dir, make_offline, missing_assets, publish,
                                     remote_loads)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp/shots")
#: asv's site template, as ``asv publish`` copies it (its CDN URLs untouched).
ASV_WWW = Path(asv.__file__).parent / "www"

BENCHMARKS = '''\
"""Toy benchmarks: one timed, one tracked."""

TRACKED = {value}


def time_sum():
    sum(range(100))


def track_value():
    return TRACKED

track_value.unit = "widgets"
'''


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=harness test", "-c", "user.email=test@example.invalid",
               "-c", "commit.gpgsign=false", "-C", str(repo), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def run_asv(repo: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"asv {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """``python -m http.server -d DIRECTORY`` on a free loopback port; its URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "-d", str(directory),
                                str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/index.html", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"http.server on {url} did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_missing_asset_is_named(tmp_path: Path) -> None:
    site = shutil.copytree(ASV_WWW, tmp_path / "html")
    assert any("https://code.jquery.com/jquery-3.3.1.min.js" in load for load in remote_loads(site))
    with pytest.raises(MissingAssetError, match=r"jquery@3\.3\.1: .*jquery\.min\.js is not installed.*setup\.sh"):
        make_offline(site, assets=tmp_path / "empty")


def test_unknown_remote_load_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "html"
    site.mkdir()
    (site / "index.html").write_text('<script src="https://cdn.example.org/lib.js"></script>')
    with pytest.raises(PublishError, match="https://cdn.example.org/lib.js, which has no local copy"):
        make_offline(site, assets=tmp_path / "empty")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The published site of a two-commit toy repository."""
    missing = missing_assets()
    if missing:
        pytest.skip(f"asv's site libraries are not installed under {assets_dir()} "
                    f"({', '.join(dict.fromkeys(a.npm for a in missing))}); scripts/setup.sh installs them with npm")
    base = tmp_path_factory.mktemp("asv-publish")
    repo, home = base / "repo", base / "home"
    home.mkdir()
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copyfile(ROOT / "asv.conf.json", repo / "asv.conf.json")
    (repo / "benchmarks" / "__init__.py").write_text("")
    env = {**os.environ, "HOME": str(home)}
    git(repo, "init", "--quiet", "--initial-branch=main")
    run_asv(repo, env, "machine", "--yes", "--machine", "testbox")
    for value in (1, 3):
        (repo / "benchmarks" / "toy.py").write_text(BENCHMARKS.format(value=value))
        git(repo, "add", "asv.conf.json", "benchmarks")
        git(repo, "commit", "--quiet", "-m", f"tracked value {value}")
        run_asv(repo, env, "run", "--python=same", "--set-commit-hash", "HEAD", "--machine", "testbox")
    return publish(repo / "asv.conf.json")


@pytest.mark.slow
def test_site_has_no_remote_loads(site: Path) -> None:
    assert site.name == "html" and (site / "index.html").is_file()
    assert remote_loads(site) == []
    index = (site / "index.html").read_text()
    assert 'src="vendor/jquery/dist/jquery.min.js"' in index
    assert "integrity=" not in index and "crossorigin=" not in index
    assert "https://github.com/airspeed-velocity/asv/" in index  # a link the user clicks, kept
    assert (site / "vendor" / "bootstrap" / "dist" / "fonts" / "glyphicons-halflings-regular.woff").is_file()
    names = json.loads((site / "index.json").read_text())["benchmarks"]
    assert {"toy.time_sum", "toy.track_value"} <= set(names)


@pytest.mark.slow
def test_site_renders_offline_in_chromium(site: Path) -> None:
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    errors: list[str] = []
    failed: list[str] = []

    def route(route, request) -> None:
        if urllib.parse.urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            external.append(request.url)
            route.abort()

    SHOTS.mkdir(parents=True, exist_ok=True)
    with serving(site) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.route("**/*", route)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))

            page.goto(f"{url}/index.html", wait_until="load")
            page.wait_for_selector("#summarygrid-display a.benchmark-container", timeout=30_000)
            grid = page.inner_text("#summarygrid-display")
            assert "track_value" in grid and "time_sum" in grid
            page.wait_for_selector("#summarygrid-display .benchmark-plot canvas.flot-base", timeout=30_000)
            # bootstrap's stylesheet applied: the navbar is laid out by it, not left a bare list
            assert page.eval_on_selector(".navbar", "e => getComputedStyle(e).minHeight") == "50px"
            page.screenshot(path=str(SHOTS / "asv_publish_grid.png"))

            # the list, sorted by stupidtable (npm's 1.1.3 for asv's 1.0.1): ascending on load, a click reverses
            page.goto(f"{url}/index.html#/summarylist", wait_until="load")
            header = "#summarylist-body table thead th:first-child"
            page.wait_for_selector(f"{header}.asc", timeout=30_000)
            rows = "#summarylist-body table tbody tr td:first-child"
            first = page.locator(rows).all_inner_texts()
            assert [name.strip() for name in first] == ["toy.time_sum", "toy.track_value"], first
            page.click(header)
            page.wait_for_selector(f"{header}.desc", timeout=30_000)
            assert page.locator(rows).all_inner_texts() == first[::-1]
            page.screenshot(path=str(SHOTS / "asv_publish_list.png"))

            page.goto(f"{url}/index.html#toy.track_value", wait_until="load")
            page.wait_for_selector("#main-graph canvas.flot-base", timeout=30_000)
            page.wait_for_function("() => { const p = $('#main-graph').data('plot');"
                                   " return p && p.getData().some(s => s.data.length == 2); }", timeout=30_000)
            series = page.evaluate("() => $('#main-graph').data('plot').getData()"
                                   ".map(s => s.data.map(xy => xy[1]))")
            assert [1, 3] in series, series
            page.screenshot(path=str(SHOTS / "asv_publish.png"))
        finally:
            browser.close()

    assert external == [], f"the site tried to reach the network: {external}"
    assert errors == [], errors
    assert failed == [], failed
