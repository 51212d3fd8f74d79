"""Executors run a plan's runs and hand each result back as it ends; the driver writes the store.

An executor is anything with ``map(runs) -> iterator of RunResult`` that yields one result per
run, in completion order. Only the driver (:func:`drive`) writes to the store, so executors on
other processes or machines never touch it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from harness.plan import RunSpec
from harness.run import RunResult
from harness.store import Store

__all__ = ["Executor", "drive", "make_executor"]


class Executor(Protocol):
    """Runs ``RunSpec``s somewhere and yields their results as they finish."""

    def map(self, runs: Sequence[RunSpec]) -> Iterator[RunResult]: ...


def make_executor(
    kind: str,
    *,
    jobs: int | None = None,
    address: str | None = None,
    catalog_roots: Sequence[str] = (),
) -> Executor:
    """The executor ``kind`` (``inline``; ``pool`` and ``ray`` where available)."""
    from harness.catalog import Catalog

    if kind == "inline":
        from harness.execute.inline import InlineExecutor

        return InlineExecutor(Catalog.load(catalog_roots))
    raise ValueError(f"unknown executor {kind!r}")


def drive(
    runs: Sequence[RunSpec],
    store: Store,
    executor: Executor,
    *,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run the ``runs`` not yet in ``store``, writing each result the moment it arrives."""
    done = store.finished_run_ids()
    todo = [run for run in runs if run.run_id not in done]
    results = []
    for result in executor.map(todo):
        store.write_run(result.row, result.trace)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
