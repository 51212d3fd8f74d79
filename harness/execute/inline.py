"""The inline executor: every run in this process, one after the other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from harness.catalog import Catalog
from harness.execute import execute
from harness.plan import RunSpec
from harness.run import RunResult

__all__ = ["InlineExecutor"]


class InlineExecutor:
    """Runs in the calling process, in plan order: no isolation, least overhead.

    A hung run hangs the bench and a crash ends it; use the pool to be safe from both. A
    multi-rank run starts its ranks from this process (:func:`harness.execute.execute`).
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def map(self, runs: Iterable[RunSpec]) -> Iterator[RunResult]:
        for run in runs:
            yield execute(run, self.catalog)
