"""Executors run a plan's runs and hand each result back as it ends; the driver writes the store.

An executor is anything with ``map(runs) -> iterator of RunResult`` that yields one result per
run it executes, in completion order. It pulls runs from ``runs`` only as it has room for
them, so :func:`drive` can claim each run in the store at the last moment and several bench
processes can share one store. Only the driver writes to the store, so executors on other
processes or machines never touch it.

Executors:

- ``pool`` (:class:`~harness.execute.pool.PoolExecutor`): warm local worker processes, each
  run isolated, killed at its time limit, capped in memory; the default;
- ``ray`` (:class:`~harness.execute.ray.RayExecutor`): Ray actors (one warm worker each) on a cluster or a local instance;
- ``inline`` (:class:`~harness.execute.inline.InlineExecutor`): this process, no isolation.

Where one run executes is decided here too: :func:`execute` runs a multi-rank run (``ranks >
1``) as torch.distributed ranks started from whichever process executes it
(:mod:`harness.execute.ranks`), and any other run in this process
(:func:`harness.run.execute_run`). :func:`failed_result` is the result an executor records
for a run that left none of its own (killed, crashed, never started).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from harness.catalog import Catalog
    from harness.execute.worker import CatalogSource
    from harness.plan import RunSpec
    from harness.record import Status
    from harness.run import RunResult
    from harness.store import Store

# Nothing heavy is imported here, at module level: ``python -m harness.execute.worker`` imports
# this package before it forks, and the run loop (harness.run) is imported where it is called.

__all__ = ["EXECUTORS", "CatalogSource", "Executor", "check_executor", "drive", "execute", "failed_result",
           "make_executor"]

EXECUTORS = ("inline", "pool", "ray")


def __getattr__(name: str) -> object:
    # Lazily: ``python -m harness.execute.worker`` must not find its module imported already.
    if name == "CatalogSource":
        from harness.execute.worker import CatalogSource

        return CatalogSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def execute(run: RunSpec, catalog: Catalog, *,
            on_point: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Execute ``run`` from this process and return its row and trace; never raises for run failures.

    A run of a multi-rank profile (``ranks > 1``) starts its ranks as child processes of this
    one (:func:`~harness.execute.ranks.execute_ranks`) and returns rank 0's result; any other
    run executes in this process (:func:`~harness.run.execute_run`), and ``on_point`` is called
    with each of its trace points as it is recorded.
    """
    if catalog.hardware[run.hardware].spec.ranks > 1:
        from harness.execute.ranks import execute_ranks

        return execute_ranks(run, catalog)
    from harness.run import execute_run

    return execute_run(run, catalog, on_point=on_point)


def failed_result(
    run: RunSpec,
    catalog: Catalog,
    *,
    status: Status | str,
    error: str,
    wall_s: float = 0.0,
    started_at: str | None = None,
    environment: Mapping[str, Any] | None = None,
    trace: Sequence[Mapping[str, Any]] = (),
) -> RunResult:
    """The result of a run that left none of its own (killed, crashed, never started).

    Its row is :meth:`RunRecord.for_run <harness.record.RunRecord.for_run>`'s, with the
    status and error, the times given, this host's fingerprint and, when the run streamed trace
    points before it ended, what the last one says: its step (``steps``), its clock
    (``timed_s``), its oracle call counts (``calls_<kind>``, summed in ``oracle_calls``) and
    its metric values. Everything else is the record's default (no setup, compile or
    evaluation time, no program, no peak memory, no target reached).

    Parameters
    ----------
    run, catalog
        The run and the catalog that declares its task, method and hardware.
    status, error
        Its status (a :class:`~harness.record.Status`) and the reason, kept as the row's error text.
    wall_s, started_at
        How long it ran and when it started (default: now), as the executor saw it.
    environment
        Fingerprint columns that replace this process's (``host``, ``cpu``, ``gpu``, ...):
        by default the row names the executor's host, which for a local worker is the run's too.
    trace
        The trace points the run recorded before it ended (as a worker streamed them): kept,
        as the result's trace.
    """
    from harness.environment import fingerprint
    from harness.record import CALLS_PREFIX, RunRecord, Status
    from harness.run import RunResult

    points = [dict(point) for point in trace]
    measured: dict[str, Any] = {}
    if points:
        last = points[-1]
        calls = {key[len(CALLS_PREFIX):]: int(n) for key, n in last.items() if key.startswith(CALLS_PREFIX)}
        metrics = catalog.tasks[run.task].spec.metrics
        measured = {
            "steps": int(last["step"]),
            "timed_s": float(last["time_s"]),
            "calls": calls,
            "oracle_calls": sum(calls.values()),
            "values": {m.id: None if last.get(m.id) is None else float(last[m.id]) for m in metrics},
        }
    now = _now()
    record = RunRecord.for_run(
        run, catalog, status=Status(status), error=error, wall_s=wall_s, started_at=started_at or now,
        finished_at=now, **measured, **{**fingerprint(), **(environment or {})},
    )
    return RunResult.of(record, points)


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Executor(Protocol):
    """Runs ``RunSpec``s somewhere and yields their results as they finish."""

    def map(self, runs: Iterable[RunSpec]) -> Iterator[RunResult]: ...


def make_executor(
    kind: Literal["inline", "pool", "ray"],
    *,
    jobs: int | None = None,
    address: str | None = None,
    catalog_roots: Sequence[str | os.PathLike[str]] = (),
    catalog_files: Sequence[str | os.PathLike[str]] = (),
    builtin: bool = True,
    grace_s: float | None = None,
    pin: bool = True,
) -> Executor:
    """The executor ``kind`` over the catalog of ``catalog_roots`` (plus the built-in one).

    Parameters
    ----------
    kind
        ``pool`` (local worker processes), ``ray`` or ``inline``.
    jobs
        ``pool``: worker processes (default: cores / threads per run of the first run's
        profile); ``ray``: CPUs of a local Ray instance (default: every core).
    address
        ``ray`` only: the cluster to join; ``None`` starts a local instance.
    catalog_roots, catalog_files, builtin
        What :meth:`~harness.catalog.Catalog.load` is called with, here and in every worker.
    grace_s
        Seconds past a run's time budget before it is killed (``pool``, ``ray``).
    pin
        ``pool`` only: pin each worker to cores of its own (when they suffice). Steadier
        timings on a dedicated host; on a host shared with other work, unpinned workers
        can move away from a busy core.

    Raises
    ------
    ValueError
        For an unknown ``kind``, or options that do not apply to it.
    """
    from harness.execute.worker import CatalogSource

    check_executor(kind, address=address)
    source = CatalogSource.of(catalog_roots, files=catalog_files, builtin=builtin)
    if kind == "inline":
        from harness.execute.inline import InlineExecutor

        return InlineExecutor(source.load())
    if kind == "pool":
        from harness.execute.pool import PoolExecutor

        return PoolExecutor(source, jobs=jobs, grace_s=grace_s, pin=pin)
    if kind == "ray":
        from harness.execute.ray import RayExecutor

        return RayExecutor(source, address=address, jobs=jobs, grace_s=grace_s)
    raise AssertionError(kind)  # check_executor let an unknown kind through


def check_executor(kind: str, *, address: str | None = None) -> None:
    """Raise ``ValueError`` when :func:`make_executor` would refuse ``kind`` and ``address`` (starts nothing).

    Lets ``harness bench --dry-run`` reject what the bench itself would.
    """
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    if address is not None and kind != "ray":
        raise ValueError(f"--address applies to the ray executor, not {kind!r}")
    if kind == "ray":
        import importlib.util

        try:  # found, not imported: a dry run stays quick
            found = importlib.util.find_spec("ray") is not None
        except (ImportError, ValueError):  # a parent package missing, or ray set to None in sys.modules
            found = False
        if not found:
            raise ValueError("the ray executor needs Ray: pip install 'ray[default]'")


def drive(
    runs: Sequence[RunSpec],
    store: Store,
    executor: Executor,
    *,
    on_result: Callable[[RunResult], None] | None = None,
    replace: Mapping[str, int] | None = None,
    repaired: Mapping[str, str] | None = None,
    compact_past: int | Literal["auto"] | None = "auto",
) -> list[RunResult]:
    """Run the ``runs`` not yet in ``store``, writing each result the moment it arrives.

    Each run is claimed in the store just before the executor takes it (see
    :meth:`~harness.store.Store.claim`): a run finished meanwhile, or held by another live
    bench process, is left alone, so processes sharing a store split the work and never
    write a run twice. Claim files that dead processes left are removed first.

    ``replace`` maps the ids of stored runs to run again (``--retry-failed``, ``--force``)
    to the attempt each replaces; one that another bench replaced meanwhile is left alone.
    A run whose newest attempt was damaged is run again (:meth:`~harness.store.Store.repair`
    moves it aside), also when an older attempt of it is stored; ``repaired`` is what a repair
    the caller just ran returned (the store is then not repaired again).

    Whenever ``compact_past`` per-run files are waiting in the store (``"auto"``:
    :data:`harness.store.AUTO_COMPACT_FILES`; ``None``: never), it is
    compacted (tiered, :func:`harness.store.compact`) between two results, so that listings,
    claims and reads stay proportional to the plan, not to the store's history.

    Raises
    ------
    harness.store.StoreFullError
        When the disk fills: the executor is stopped, every run written so far is kept, and
        the run being written leaves no file behind.
    """
    replace = dict(replace or {})
    store.clean_claims()
    moved = store.repair() if repaired is None else repaired  # the caller repaired it just before
    done = store.finished_run_ids(repair=False)
    for run in runs:
        if run.run_id in moved and run.run_id in done and run.run_id not in replace:
            replace[run.run_id] = store.newest_attempt(run.run_id)  # an older attempt is stored: replace it

    def claimed() -> Iterator[RunSpec]:
        for run in runs:
            if run.run_id in replace:
                if store.claim(run.run_id, replacing=replace[run.run_id]):
                    yield run
            elif run.run_id not in done and store.claim(run.run_id):
                yield run

    from harness.store import AUTO_COMPACT_FILES, compact

    if compact_past == "auto":
        compact_past = AUTO_COMPACT_FILES
    results = []
    loose = store.loose_count() if compact_past is not None else 0
    stream = executor.map(claimed())
    try:
        for result in stream:
            store.write_run(result.row, result.trace)
            store.release(result.row["run_id"])
            results.append(result)
            loose += 1
            if compact_past is not None and loose >= compact_past:
                compact(store.root, tiered=True)
                loose = store.loose_count()
            if on_result is not None:
                on_result(result)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stop the executor's workers now, not when the generator is collected
        store.release_all()
    return results
