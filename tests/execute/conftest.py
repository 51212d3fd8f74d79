"""Fixtures of the executor tests: their own catalog, as the driver and the workers load it."""

from __future__ import annotations

import pytest
from _execute_helpers import BUILTIN_HARDWARE, CATALOG

from harness.catalog import Catalog
from harness.execute.worker import CatalogSource


@pytest.fixture(scope="session")
def source() -> CatalogSource:
    """Tasks, methods, suites and test hardware of ``catalog/``, plus the built-in hardware profiles."""
    return CatalogSource.of([CATALOG], files=BUILTIN_HARDWARE, builtin=False)


@pytest.fixture(scope="session")
def catalog(source: CatalogSource) -> Catalog:
    return source.load()
