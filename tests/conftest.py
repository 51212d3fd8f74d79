"""Shared fixtures: the engine's own test catalog and a fresh store."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
TEST_CATALOG = TESTS / "catalog"


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
