"""The inline executor: every run in this process, one after the other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from harness.catalog import Catalog
from harness.plan import RunSpec
from harness.run import RunResult, execute_run

__all__ = ["InlineExecutor"]


class InlineExecutor:
    """Runs in the calling process, in plan order: no isolation, least overhead.

    A hung run hangs the bench and a crash ends it; use the pool to be safe from both.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def map(self, runs: Iterable[RunSpec]) -> Iterator[RunResult]:
        for run in runs:
            yield execute_run(run, self.catalog)
