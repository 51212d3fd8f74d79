"""Stores for the leaderboard's tests: small, empty, failures only; and an AppTest factory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import storegen

from harness.leaderboard import CATALOG_ENV, STORE_ENV

APP = Path(__file__).resolve().parents[2] / "leaderboard" / "app.py"
if str(APP.parent) not in sys.path:
    sys.path.insert(0, str(APP.parent))  # the app's own modules (lbkit), as the app itself does


@pytest.fixture(scope="session")
def xss_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog root declaring the method ``evil`` whose name is an HTML payload."""
    root = tmp_path_factory.mktemp("catalog")
    storegen.write_method_yaml(root, "evil", name=storegen.XSS)
    return root


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 tasks x 5 methods x 3 seeds, CPU and GPU, torch and jax, every failure status."""
    root = tmp_path_factory.mktemp("store")
    storegen.build_store(root, extra_methods=("evil",))
    return root


@pytest.fixture(scope="session")
def failures_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("failures")
    storegen.build_store(root, seeds=(0, 1), only_failures=True)
    return root


@pytest.fixture(scope="session")
def legacy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small store as an older harness wrote it (``warmup_s``, none of the clock's new columns), migrated.

    Readers refuse a store of an older schema; ``harness compact`` migrates it, and the
    leaderboard shows what it held (the clock's newer columns null).
    """
    from harness.store import compact

    root = tmp_path_factory.mktemp("legacy")
    (root / "runs").mkdir()
    (root / "traces").mkdir()
    storegen.build_store(root, legacy=True)
    compact(root)
    return root


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("empty")
    (root / "runs").mkdir()
    (root / "traces").mkdir()
    return root


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """``app(store, catalog=None)``: an AppTest of the leaderboard on ``store``, run once."""
    from streamlit.testing.v1 import AppTest

    def make(store: Path, catalog: Path | None = None) -> AppTest:
        monkeypatch.setenv(STORE_ENV, str(store))
        monkeypatch.setenv(CATALOG_ENV, str(catalog) if catalog else "")
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


@pytest.fixture(scope="session")
def tuning_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in ``tuning`` suite benched by the CLI (inline): 5 default runs, a 16-trial study, 5 reruns."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("tuning")
    out = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--suite", "tuning", "--store", str(root),
                          "--executor", "inline"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr + out.stdout
    return root
