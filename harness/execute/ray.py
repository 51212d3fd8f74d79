"""The Ray executor: the same plan on a Ray cluster, or on a local Ray instance.

Each run is one Ray task that asks for its hardware profile's resources (CPUs: threads x
ranks; GPUs: devices; memory: the profile's limit x ranks). The task does not run the run
in the Ray worker process itself: it hands it to a warm
:class:`~harness.execute.pool.LocalWorker` that this Ray worker keeps between tasks, so a
run on a cluster is isolated, pinned to its threads, capped in memory and killed at its
time limit exactly as in the local pool, and a crash is reported with its exit code or
signal instead of taking a Ray worker down. The task returns the run's row and trace; the
driver alone writes the store.

As a backstop, a task that has not returned well after its run's limit (a lost node, a
stuck Ray worker) is cancelled (``ray.cancel(force=True)``) and recorded as ``timeout``;
the driver hands out no more tasks than the cluster can run at once, so that clock starts
about when the run does. Failures Ray reports (a lost worker, its memory monitor) leave an
``error`` or ``oom`` row with Ray's explanation.

Catalog roots given with ``--catalog`` must exist at the same absolute path on every node
(a shared file system), and harness must be installed on every node; the built-in catalog is
each node's own.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any

from harness.execute import failed_result
from harness.execute.worker import CatalogSource, default_grace
from harness.host import RANK_STARTUP_S
from harness.plan import RunSpec
from harness.record import Status
from harness.run import RunResult
from harness.spec import HardwareProfile

__all__ = ["RayExecutor", "resources"]


def resources(profile: HardwareProfile) -> dict[str, Any]:
    """The Ray task options of one run of ``profile``.

    Examples
    --------
    >>> from harness.spec import HardwareProfile
    >>> resources(HardwareProfile(id="cpu", name="cpu", device="cpu", threads=2))
    {'num_cpus': 2, 'num_gpus': 0}
    """
    options: dict[str, Any] = {
        "num_cpus": (profile.threads or 1) * profile.ranks,
        "num_gpus": max(profile.devices, profile.ranks) if profile.device == "cuda" else 0,
    }
    if profile.memory_limit_mb is not None:
        options["memory"] = profile.memory_limit_mb * profile.ranks * 2**20
    return options


#: The warm worker of this Ray worker process, per (catalog source, grace).
_LOCAL_WORKERS: dict[tuple[CatalogSource, float | None], Any] = {}


def _execute_remote(run_dict: dict[str, Any], source: CatalogSource,
                    grace_s: float | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The Ray task: one run, in this Ray worker's warm local worker process."""
    from harness.execute.pool import LocalWorker

    worker = _LOCAL_WORKERS.get((source, grace_s))
    if worker is None:
        if not _LOCAL_WORKERS:
            # A Ray worker that exits stops its warm worker; one that is killed leaves it to die
            # with its parent (the worker's parent-death signal), so nothing outlives a bench.
            atexit.register(_close_local_workers)
        worker = _LOCAL_WORKERS[(source, grace_s)] = LocalWorker(source, grace_s=grace_s)
    result = worker.execute(RunSpec.model_validate(run_dict))
    return result.row, result.trace


def _close_local_workers() -> None:
    while _LOCAL_WORKERS:
        _LOCAL_WORKERS.popitem()[1].close()


class RayExecutor:
    """Runs as Ray tasks, yielding each result as its task returns.

    Parameters
    ----------
    source
        The catalog the runs come from (loaded by the driver and by every task).
    address
        The cluster to join (``ray://...``, ``HOST:PORT`` or ``auto``); ``None`` starts a local
        instance with ``jobs`` CPUs, or uses the instance this process already started.
    jobs
        CPUs of a local instance (default: every core); ignored when joining a cluster.
    grace_s
        Seconds past ``budget.seconds`` before a run is killed on its node; default
        :func:`~harness.execute.worker.default_grace`.
    startup_s
        Seconds a task may take to start its worker processes, and the backstop's margin.
    """

    def __init__(
        self,
        source: CatalogSource,
        *,
        address: str | None = None,
        jobs: int | None = None,
        grace_s: float | None = None,
        startup_s: float = 120.0,
    ) -> None:
        self.source = source
        self.address = address
        self.jobs = jobs
        self.grace_s = grace_s
        self.startup_s = startup_s

    def _connect(self) -> bool:
        """Join or start Ray; return whether this call started it (and so must stop it)."""
        import ray

        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}
        if self.address is not None:
            ray.init(address=self.address, **options)
        else:
            ray.init(num_cpus=self.jobs or os.cpu_count() or 1, **options)
        return True

    def map(self, runs: Iterable[RunSpec]) -> Iterator[RunResult]:
        """Execute ``runs`` (pulled as cluster slots free up); yield results as they end."""
        import ray

        catalog = self.source.load()
        pending = iter(runs)
        first = next(pending, None)
        if first is None:
            return
        started_here = self._connect()
        remote = ray.remote(_execute_remote)
        # Runs a remote node executes leave its fingerprint; a run lost there leaves none of ours.
        foreign = None if self.address is None else {"host": None, "cpu": None, "gpu": None}
        in_flight: dict[Any, tuple[RunSpec, float, float, str]] = {}
        try:
            cluster = ray.cluster_resources()
            per_run = resources(catalog.hardware[first.hardware].spec)["num_cpus"]
            window = max(1, int(cluster.get("CPU", 1) // per_run))
            queue = [first]
            while True:
                while len(in_flight) < window:
                    run = queue.pop() if queue else next(pending, None)
                    if run is None:
                        break
                    profile = catalog.hardware[run.hardware].spec
                    options = resources(profile)
                    reason = _unschedulable(options, cluster)
                    if reason is not None:
                        yield failed_result(run, catalog, status=Status.SKIPPED,
                                            error=f"profile {profile.id!r}: {reason}")
                        continue
                    ref = remote.options(max_retries=0, **options).remote(
                        run.model_dump(mode="json"), self.source, self.grace_s
                    )
                    now = time.monotonic()
                    grace = self.grace_s if self.grace_s is not None else default_grace(run.budget.seconds)
                    ranks_extra = RANK_STARTUP_S if profile.ranks > 1 else 0.0  # as the local worker allows
                    deadline = now + 2 * self.startup_s + run.budget.seconds + 2 * grace + ranks_extra
                    in_flight[ref] = (run, now, deadline, _now())
                if not in_flight:
                    return
                timeout = max(0.0, min(entry[2] for entry in in_flight.values()) - time.monotonic())
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=min(timeout, 5.0))
                for ref in done:
                    run, submitted, _, started_at = in_flight.pop(ref)
                    yield self._collect(ref, run, catalog, submitted, started_at, foreign)
                now = time.monotonic()
                for ref in [r for r, entry in in_flight.items() if entry[2] <= now]:
                    run, submitted, _, started_at = in_flight.pop(ref)
                    ray.cancel(ref, force=True)
                    error = (f"cancelled {now - submitted:.1f} s after it was handed to Ray (time budget "
                             f"{run.budget.seconds:g} s): neither the run nor its node's watchdog returned")
                    yield failed_result(run, catalog, status=Status.TIMEOUT, error=error, wall_s=now - submitted,
                                        started_at=started_at, environment=foreign)
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()

    @staticmethod
    def _collect(ref: Any, run: RunSpec, catalog: Any, submitted: float, started_at: str,
                 foreign: dict[str, Any] | None) -> RunResult:
        import ray
        import ray.exceptions as rex

        try:
            row, trace = ray.get(ref)
            return RunResult(row=row, trace=trace)
        except rex.OutOfMemoryError as exc:
            status, error = Status.OOM, f"Ray's memory monitor killed the run's worker:\n{exc}"
        except rex.WorkerCrashedError as exc:
            status, error = Status.ERROR, f"the Ray worker process died during the run:\n{exc}"
        except rex.RayError as exc:  # task errors, lost nodes, failed runtime environments
            status, error = Status.ERROR, f"{type(exc).__name__}: {exc}"
        return failed_result(run, catalog, status=status, error=error, wall_s=time.monotonic() - submitted,
                             started_at=started_at, environment=foreign)


def _unschedulable(options: dict[str, Any], cluster: dict[str, float]) -> str | None:
    for key, name, unit in (("num_cpus", "CPU", 1), ("num_gpus", "GPU", 1), ("memory", "memory", 2**20)):
        needed, has = options.get(key, 0) / unit, cluster.get(name, 0) / unit
        if needed and has < needed:
            what = "MiB of memory" if key == "memory" else f"{name}(s)"
            return f"needs {needed:g} {what} per run; the Ray cluster has {has:g}"
    return None


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
