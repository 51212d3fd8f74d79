"""Shared fixtures: the engine's own test catalog and a fresh store."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# One intra-op thread, as the cpu hardware profile runs: on a small shared machine more threads
# only contend (torch ran 10x slower with 2 threads on 2 busy cores).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# jax's persistent compilation cache (harness.backends.jax) in a folder of this session, never the
# user's: set before any test imports the backend, and inherited by every worker the tests start.
_JAX_CACHE = tempfile.TemporaryDirectory(prefix="harness-test-jax-cache-")
os.environ.setdefault("HARNESS_JAX_CACHE_DIR", _JAX_CACHE.name)
os.environ.setdefault("HARNESS_CACHE_DIR", os.path.join(_JAX_CACHE.name, "reference"))  # harness.cache: reference optima


def pytest_sessionstart(session: pytest.Session) -> None:
    import torch

    torch.set_num_threads(1)

TESTS = Path(__file__).parent
TEST_CATALOG = TESTS / "catalog"
#: Methods as a submitter might write them: cheats (tests/test_cheats.py) and clock probes (tests/test_clock.py).
SUBMISSIONS = TESTS / "submissions"


@pytest.fixture(scope="session")
def test_catalog_dir() -> Path:
    return TEST_CATALOG


def _load_test_catalog(*roots: Path):
    """The engine tests' toy catalog (plus ``roots``), with the built-in hardware profiles only."""
    from harness.catalog import Catalog, builtin_root

    return Catalog.load([TEST_CATALOG, *roots], builtin=False, files=sorted((builtin_root() / "hardware").glob("*.yaml")))


@pytest.fixture(scope="session")
def test_catalog():
    """The toy catalog of the engine's tests (a closed-form quadratic, instrumented methods)."""
    return _load_test_catalog()


@pytest.fixture(scope="session")
def load_test_catalog():
    """``load_test_catalog(*roots)``: the toy catalog plus extra roots (built-in hardware only)."""
    return _load_test_catalog


@pytest.fixture(scope="session")
def builtin_catalog():
    """The built-in catalog, as ``harness validate`` loads it."""
    from harness.catalog import Catalog

    return Catalog.load()


@pytest.fixture(scope="session")
def full_catalog():
    """The built-in catalog plus the engine tests' toy catalog and the submitted clock and cheating methods."""
    from harness.catalog import Catalog

    return Catalog.load([TEST_CATALOG, SUBMISSIONS])

