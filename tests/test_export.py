"""``harness export``: the static report, checked as a file and in Chromium with the network off.

The store is the leaderboard tests' small one (``tests/leaderboard/storegen.py``), plus a method
whose id is an HTML payload and one whose declared name is. The browser is Debian's Chromium
(never a downloaded one); set ``HARNESS_SCREENSHOTS=DIR`` to keep the page's screenshot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "leaderboard"))
import storegen  # noqa: E402 - the leaderboard tests' store generator

from harness.store import DECLARATIONS_DIR  # noqa: E402

XSS = storegen.XSS
XSS_NAME = "<script>alert('name')</script><b onmouseover=alert(2)>bold</b>"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
METHODS = ("gd", "adam", "heavy-ball", "lbfgs", "evil")
#: Charts of the small store: the profile, the ECDF, a time/step pair per problem and metric
#: (logreg on cpu and gpu, rastrigin and softmax: suboptimality; tensor-pca: objective and overlap),
#: logreg's two probes (``ghost-radius/r``, ``hessian-top/lambda_max``) on each of its two problems,
#: and logreg's hardware (cpu, gpu) and framework (torch, jax) speed-up bars.
EXPECTED_CHARTS = 2 + 2 * 4 + 2 * 2 + 2 * 2 + 2
SPEC = re.compile(r'<script type="application/json" class="chart-spec" data-target="([^"]+)">(.*?)</script>', re.S)
CHART = re.compile(r'<div class="chart" id="([^"]+)" data-chart="([^"]+)"></div>')


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    storegen.build_store(root, extra_methods=("evil", XSS))
    storegen.write_method_yaml(root / DECLARATIONS_DIR, "evil", name=XSS_NAME)  # as a bench keeps declarations
    return root


@pytest.fixture(scope="module")
def exported(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "site"
    done = harness("export", "--store", str(store), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "index.html" in done.stdout
    return out / "index.html"


def _specs(text: str) -> list[tuple[str, dict]]:
    return [(target, json.loads(body)) for target, body in SPEC.findall(text)]


def _walk(value, key: str):  # noqa: ANN001, ANN202
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)


def test_export_writes_one_self_contained_page(exported: Path):
    text = exported.read_text(encoding="utf-8")
    assert [p.name for p in exported.parent.iterdir()] == ["index.html"]  # no partial file left
    specs = _specs(text)
    assert len(specs) == EXPECTED_CHARTS
    for target, spec in specs:
        assert f'id="{target}"' in text
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")  # a name, never fetched
        assert not list(_walk(spec, "url")), "a chart's data must be inline"
        assert spec.get("datasets") or list(_walk(spec, "values"))
    assert text.count("window.vegaEmbed=") == 1, "the Vega bundle is inlined once"
    assert not re.search(r"<script[^>]*\ssrc\s*=", text, re.I)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    assert "default-src 'none'" in text and "connect-src 'none'" in text  # the CSP: nothing may be fetched


def _charts(text: str) -> list[tuple[str, dict]]:
    """Each chart's name (``data-chart``) and specification, in page order."""
    names = dict(CHART.findall(text))
    return [(names[target], spec) for target, spec in _specs(text)]


def _section(text: str, heading: str) -> str:
    """The page from ``heading`` to the next heading of its level or above."""
    start = text.index(f">{heading}</h")
    level = text[text.rindex("<h", 0, start) + 2]
    ends = [m.start() for m in re.finditer(rf"<h[1-{level}][ >]", text[start:])]
    return text[start:start + ends[0]] if ends else text[start:]


def test_export_draws_the_probes_as_the_task_page(exported: Path):
    text = exported.read_text(encoding="utf-8")
    charts = _charts(text)
    probes = [(name, spec) for name, spec in charts if name.startswith("probe ")]
    assert sorted(name for name, _ in probes) == ["probe ghost-radius/r"] * 2 + ["probe hessian-top/lambda_max"] * 2
    for name, spec in probes:
        layers = spec["layer"]
        assert layers[0]["encoding"]["x"]["title"] == "step (log)"
        assert layers[0]["encoding"]["x"]["scale"]["type"] == "log"
        y = layers[0]["encoding"]["y"]
        rules = [layer for layer in layers if (layer["mark"] if isinstance(layer["mark"], str)
                                               else layer["mark"]["type"]) == "rule"]
        if name == "probe ghost-radius/r":  # declared: its unit, a log axis and the dashed line at r = 1
            assert y["title"] == "ghost-radius/r [ratio]" and y["scale"]["type"] == "log"
            assert len(rules) == 1 and rules[0]["mark"]["strokeDash"] == [6, 4]
            rule_data = spec["datasets"][rules[0]["data"]["name"]]
            assert [(row["value"], row["text"]) for row in rule_data] == [(1.0, "r = 1")]
        else:  # undeclared: its column name, a linear axis, no line
            assert y["title"] == "hessian-top/lambda_max" and y["scale"].get("type") != "log"
            assert not rules
    assert text.count("ghost-radius/r: step length over the Taylor radius rho_a (no failure for r &lt; 1); "
                      "the dashed line: r = 1") == 2
    logreg = _section(text, "Task logreg  (convex)")
    assert logreg.count("<h5>Probes</h5>") == 2  # after each problem's convergence charts
    assert logreg.index("convergence suboptimality step") < logreg.index("probe ghost-radius/r")
    for other in ("Task softmax  (convex)", "Task rastrigin  (global)"):
        assert "Probes" not in _section(text, other)
    convergence = [spec for name, spec in charts if name.startswith("convergence suboptimality")]
    assert all(spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log" for spec in convergence)
    assert all(spec["layer"][1]["encoding"]["y"]["scale"]["type"] == "log" for spec in convergence)
    assert "Failed (the line ends at the failure): " in logreg


def test_export_compares_hardware_and_frameworks(exported: Path):
    text = exported.read_text(encoding="utf-8")
    charts = _charts(text)
    logreg = _section(text, "Task logreg  (convex)")
    hardware = _section(logreg, "Hardware comparison")
    assert 'data-chart="hardware speed-up"' in hardware and 'class="hardware"' in hardware
    assert "<th>task variant</th><th>configuration</th><th>hardware</th>" in hardware
    bars = [spec for name, spec in charts if name == "hardware speed-up"]
    assert len(bars) == 1
    rows = next(iter(bars[0]["datasets"].values()))
    assert {row["hardware"] for row in rows} == {"gpu"}  # the baseline's own bars (speed-up 1) left out
    frameworks = _section(logreg, "Framework comparison")
    assert 'data-chart="framework speed-up"' in frameworks and 'class="frameworks"' in frameworks
    for header in ("configuration", "framework", "runs", "final objective", "objective: rel. diff. to torch ↓",
                   "final suboptimality", "suboptimality: rel. diff. to torch ↓", "time per step ↓ [s]",
                   "speed-up per step over torch ↑ [×]"):
        assert f"<th>{header}</th>" in frameworks
    table = frameworks[frameworks.index('class="frameworks"'):]
    for method in ("gd", "adam"):
        assert f"<td>{method}</td><td>torch</td>" in table and f"<td>{method}</td><td>jax</td>" in table
    assert re.search(r'<td class="num">\d\.\d{6}e[+-]\d\d</td>', table)  # finals: %.6e
    assert re.search(r'<td class="num">\d\.\de[+-]\d\d</td>', table)  # relative differences: %.1e
    bars = [spec for name, spec in charts if name == "framework speed-up"]
    assert {row["framework"] for row in next(iter(bars[0]["datasets"].values()))} == {"jax"}
    for other in ("Task softmax  (convex)", "Task tensor-pca  (sampling)"):
        section = _section(text, other)
        assert "No configuration of this task ran in more than one framework." in section
        assert "These runs use one hardware profile; no comparison." in section


def test_export_has_the_overviews_aggregates_and_the_ecdf_counts(exported: Path):
    text = exported.read_text(encoding="utf-8")
    aggregates = _section(text, "Few-seed aggregates (rliable)")
    assert "1000 resamples of the runs within each problem" in aggregates
    table = aggregates[aggregates.index('class="aggregates"'):]
    for header in ("method", "framework", "IQM ↑", "IQM 95% CI", "median ↑", "median 95% CI", "mean ↑",
                   "mean 95% CI", "problems", "runs per problem", "runs left out"):
        assert f"<th>{header}</th>" in table
    for method in ("gd", "adam", "heavy-ball", "lbfgs"):
        assert f"<td>{method}</td>" in table
    assert re.search(r"<td>\[\d\.\d{3}, \d\.\d{3}\]</td>", table)
    ecdf = _section(text, "ECDF of runtimes")
    assert "<th>problems</th>" in ecdf
    (spec,) = [spec for name, spec in _charts(text) if name == "ecdf"]
    assert spec["encoding"]["y"]["title"] == "fraction of (run, target) pairs, mean over its problems ↑"


def test_export_escapes_the_stores_strings(exported: Path):
    text = exported.read_text(encoding="utf-8")
    assert XSS not in text
    assert XSS_NAME not in text and "onmouseover=alert(2)>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text  # the method id, as text
    assert "&lt;b onmouseover=alert(2)&gt;" in text  # the declared name, as text
    body = text.split("<script>", 1)[0]  # before the inline scripts: only the page's own markup
    assert body.lower().count("<script") == body.lower().count('<script type="application/json"')


def test_export_has_the_leaderboards_sections(exported: Path):
    text = exported.read_text(encoding="utf-8")
    for heading in ("Ranking by performance-profile score", "Performance profiles", "Performance ratios per problem",
                    "Few-seed aggregates (rliable)", "ECDF of runtimes", "Task logreg", "Task tensor-pca",
                    "Failed and skipped runs", "Convergence", "Probes", "Hardware comparison", "Framework comparison"):
        assert heading in text
    for method in METHODS:
        assert f"<td>{method}</td>" in text
    for error in ("CUDA out of memory", "ValueError: line search failed", "time budget of 60 s exhausted"):
        assert error in text
    assert "<td class=\"num\">inf</td>" in text  # failures are infinite ratios, as in the leaderboard


def test_export_of_an_empty_store(tmp_path: Path):
    from harness.export import export

    (tmp_path / "store" / "runs").mkdir(parents=True)
    index = export(tmp_path / "store", tmp_path / "out")
    text = index.read_text(encoding="utf-8")
    assert "No runs to show" in text and not _specs(text)


@pytest.mark.parametrize("make", ["missing", "not-a-store", "out-is-a-file"])
def test_export_refuses_bad_input_in_one_line(tmp_path: Path, make: str):
    store, out = tmp_path / "store", tmp_path / "out"
    if make != "missing":
        store.mkdir()
    if make == "out-is-a-file":
        (store / "runs").mkdir()
        out.write_text("x")
    done = harness("export", "--store", str(store), "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_export_opens_offline_in_chromium(exported: Path, tmp_path: Path):
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run installs it with apt-get")
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []
    blocked: list[str] = []
    url = exported.resolve().as_uri()

    def route(route) -> None:  # noqa: ANN001
        if route.request.url.startswith(("file://", "data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            context.set_offline(True)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.on("request", lambda request: requests.append(request.url))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.route("**/*", route)
            page.goto(url)
            page.wait_for_function("document.body.dataset.charts !== undefined")
            assert page.evaluate("document.body.dataset.charts") == "done"
            containers = page.locator("div.chart")
            assert containers.count() == EXPECTED_CHARTS
            for i in range(containers.count()):
                chart = containers.nth(i)
                assert chart.get_attribute("data-rendered") == "ok"
                marks = chart.locator("svg.marks")
                assert marks.count() == 1
                box = marks.bounding_box()
                name = chart.get_attribute("data-chart")
                low = 100 if name.endswith("speed-up") else 200  # a few bars: a short chart
                assert box and box["width"] > 200 and box["height"] > low, (name, box)
                assert chart.locator("svg.marks path, svg.marks line").count() > 0
            ranking = page.locator("table.ranking").inner_text()
            for method in METHODS:
                assert method in ranking
            assert XSS in ranking  # shown as the literal text
            assert XSS_NAME in ranking
            assert page.locator("main img, main b, main script:not([type='application/json'])").count() == 0
            legend = page.locator("#chart-1 svg").first.inner_html()
            assert "&lt;img src=x onerror=alert(1)&gt;" in legend  # the chart's legend shows it as text too
            opacities = ("() => [...document.querySelectorAll('#chart-1 .mark-line path')]"
                         ".map(p => p.getAttribute('opacity'))")
            assert set(page.evaluate(opacities)) == {"1"}
            page.locator("#chart-1 .role-legend-label text").nth(2).click()  # the legend selects a series
            page.wait_for_function(f"({opacities})().filter(o => o !== '1').length > 0")
            assert page.evaluate(opacities).count("1") == 1
            shots = Path(os.environ.get("HARNESS_SCREENSHOTS") or tmp_path)
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "export.png"), full_page=True)
            context.close()
        finally:
            browser.close()
    assert not errors, errors
    assert not dialogs, dialogs
    assert not blocked, blocked
    assert set(requests) == {url}, requests
