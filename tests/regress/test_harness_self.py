"""``benchmarks/harness_self.py``: asv finds its benchmarks, each named and versioned by its definition.

The benchmarks themselves are not run here (a ``harness bench`` start-up alone takes seconds
per sample); only what defines them is checked: the names asv discovers, their
``pretty_name`` and ``version``, the 2,000-run suite and the one-run ``harness bench`` plan.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
NAMES = {
    "harness_self.BenchStartup.time_one_run": "startup_version",
    "harness_self.PlanExpansion.time_make_plan": "plan_version",
    "harness_self.StoreOpen.time_scan_runs": "store_version",
    "harness_self.TraceWrite.time_write_run": "trace_version",
}

# asv's discovery, as its runner does it in a fresh interpreter: the benchmark package is
# imported by name from its parent directory (asv_runner's SpecificImporter), every module
# of it walked, each benchmark's call signature checked (what ``asv check`` does).
_DISCOVER = """
import json, sys
from asv_runner._aux import update_sys_path
from asv_runner.discovery import disc_benchmarks
root = sys.argv[1]
update_sys_path(root)
found = {}
for b in disc_benchmarks(root, ignore_import_errors=True):
    if b.name.startswith("harness_self."):
        found[b.name] = {"type": b.type, "pretty_name": b.pretty_name, "version": b.version,
                         "timeout": b.timeout, "setup_cache_key": b.setup_cache_key, "check": b.check(root)}
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def harness_self():
    """The benchmark module, imported from its file (the project root need not be on sys.path)."""
    spec = importlib.util.spec_from_file_location("harness_self_under_test", BENCHMARKS / "harness_self.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_asv_discovers_each_benchmark_named_and_versioned(harness_self):
    done = subprocess.run([sys.executable, "-c", _DISCOVER, str(BENCHMARKS)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(found) == set(NAMES), done.stderr
    for name, info in found.items():
        assert info["type"] == "time" and info["check"], (name, info)
        assert info["pretty_name"] and info["pretty_name"].endswith("(s)"), (name, info)
        assert re.fullmatch(r"[0-9a-f]{16}", info["version"]), (name, info)
        assert info["version"] == getattr(harness_self, NAMES[name])(), name  # explicit, not asv's source hash
        assert info["timeout"] >= 60, name
    assert len({info["version"] for info in found.values()}) == len(found)
    assert found["harness_self.StoreOpen.time_scan_runs"]["setup_cache_key"]


def test_version_changes_with_the_definition_only(harness_self):
    m = harness_self
    assert m.definition_version({"runs": 2000, "points": 20}) == m.definition_version({"points": 20, "runs": 2000})
    assert m.definition_version({"runs": 2000}) != m.definition_version({"runs": 2001})
    assert m.plan_version() == m.plan_version(dict(m.PLAN_SUITE))
    assert m.plan_version({**m.PLAN_SUITE, "seeds": 21}) != m.plan_version()
    assert m.plan_version({**m.PLAN_SUITE, "methods": ["gd"] * 5}) != m.plan_version()
    assert m.store_version({**m.STORE, "runs": 20_000}) != m.store_version()
    assert m.store_version(layout="loose") != m.store_version()
    assert m.startup_version(m.BENCH_ARGV + ("--jobs", "2")) != m.startup_version()
    assert m.BenchStartup.time_one_run.version == m.startup_version()
    assert m.PlanExpansion.time_make_plan.version == m.plan_version()
    assert m.StoreOpen.time_scan_runs.version == m.store_version()


def test_the_plan_suite_expands_to_2000_runs(harness_self, builtin_catalog):
    from harness.plan import make_plan

    plan = make_plan(builtin_catalog, suite=harness_self.plan_suite())
    assert harness_self.expected_runs() == harness_self.PLAN_RUNS == 2000
    assert len(plan.runs) == 2000 and not plan.skipped
    assert len({r.run_id for r in plan.runs}) == 2000


@pytest.mark.slow
def test_the_startup_command_plans_one_run(harness_self, tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness.cli", *harness_self.BENCH_ARGV, "--store",
                           str(tmp_path / "store"), "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\b1 runs, 0 already in .*, 1 to run", done.stdout), done.stdout
    assert not (tmp_path / "store").exists()
