"""The Ray executor: the same plan on a Ray cluster, or on a local Ray instance.

Runs go to Ray actors, one per concurrent slot, each asking for its hardware profile's
resources (CPUs: threads x ranks; GPUs: devices; memory: the profile's limit x ranks) and held
for the whole map. An actor does not run a run in its own process: it hands it to a warm
:class:`~harness.execute.pool.LocalWorker` it keeps, so a run on a cluster is isolated,
pinned to its threads, capped in memory and killed at its time limit exactly as in the local
pool, and a crash is reported with its exit code or signal instead of taking the actor down.
The actor returns the run's row and trace (and the id of its node, kept in
:attr:`RayExecutor.placements`); the driver alone writes the store.

Each actor has the run it executes and one more queued behind it, so it starts the next run
the moment one ends, without waiting for the driver to collect the result and write the
store; the same warm worker serves every run of the actor (no interpreter or framework
start-up after the first). As many actors are started as the cluster has room for (an actor
of another profile that is idle is stopped to make room).

As a backstop, a run that has not returned well after its run's limit, counted from when it
reached the head of its actor's queue (a lost node, a stuck actor), gets its actor killed and
is recorded as ``timeout``; the run queued behind it is handed to another actor. Failures Ray
reports (a lost actor, its memory monitor) leave an ``error`` or ``oom`` row with Ray's
explanation.

Catalog roots given with ``--catalog`` must exist at the same absolute path on every node
(a shared file system), and harness must be installed on every node; the built-in catalog is
each node's own.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
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


#: Runs handed to one actor at once: the one it executes and the next, queued behind it.
DEPTH = 2

_RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


class _RunActor:
    """A Ray actor: one warm local worker process on its node, executing the runs it is sent in turn."""

    def __init__(self, source: CatalogSource, grace_s: float | None) -> None:
        import ray

        from harness.execute.pool import LocalWorker

        self.worker = LocalWorker(source, grace_s=grace_s)
        self.node = ray.get_runtime_context().get_node_id()

    def execute(self, run_dict: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
        result = self.worker.execute(RunSpec.model_validate(run_dict))
        return result.row, result.trace, self.node

    def close(self) -> None:
        self.worker.close()


@dataclass
class _Handed:
    """A run handed to an actor: its task's ref and its clocks."""

    run: RunSpec
    ref: Any
    handed: float  # monotonic, when it was handed to Ray
    started_at: str  # ISO time, about when it started
    deadline: float = float("inf")  # set when it reaches the head of its actor's queue


@dataclass
class _Slot:
    """One actor, the resources it holds, and the runs handed to it (the oldest is executing)."""

    actor: Any
    key: tuple[tuple[str, Any], ...]
    queue: collections.deque[_Handed] = field(default_factory=collections.deque)


class RayExecutor:
    """Runs on Ray actors, yielding each result as it returns.

    Parameters
    ----------
    source
        The catalog the runs come from (loaded by the driver and by every actor).
    address
        The cluster to join (``ray://...``, ``HOST:PORT`` or ``auto``); ``None`` starts a local
        instance with ``jobs`` CPUs, or uses the instance this process already started.
    jobs
        CPUs of a local instance (default: every core); ignored when joining a cluster.
    grace_s
        Seconds past ``budget.seconds`` before a run is killed on its node; default
        :func:`~harness.execute.worker.default_grace`.
    startup_s
        Seconds an actor may take to start its worker processes, and the backstop's margin.

    Attributes
    ----------
    placements
        The Ray node id that each run id executed on (runs that returned a result of their own).
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
        self.placements: dict[str, str] = {}

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
        """Execute ``runs`` (pulled as actors have room for them); yield results as they end."""
        import ray

        catalog = self.source.load()
        pending = iter(runs)
        first = next(pending, None)
        if first is None:
            return
        started_here = self._connect()
        actor_class = ray.remote(_RunActor)
        # Runs a remote node executes leave its fingerprint; a run lost there leaves none of ours.
        foreign = None if self.address is None else {"host": None, "cpu": None, "gpu": None}
        slots: list[_Slot] = []
        queue: collections.deque[RunSpec] = collections.deque([first])  # pulled, not handed yet
        try:
            cluster = ray.cluster_resources()
            while True:
                while True:
                    run = queue.popleft() if queue else next(pending, None)
                    if run is None:
                        break
                    profile = catalog.hardware[run.hardware].spec
                    options = resources(profile)
                    reason = _unschedulable(options, cluster)
                    if reason is not None:
                        yield failed_result(run, catalog, status=Status.SKIPPED,
                                            error=f"profile {profile.id!r}: {reason}")
                        continue
                    slot = self._slot_for(options, slots, cluster, actor_class)
                    if slot is None:
                        queue.appendleft(run)  # every actor that could take it is full: wait for a result
                        break
                    now = time.monotonic()
                    handed = _Handed(run, slot.actor.execute.remote(run.model_dump(mode="json")), now, _now())
                    slot.queue.append(handed)
                    if len(slot.queue) == 1:
                        handed.deadline = self._deadline(handed, catalog, now)
                heads = {slot.queue[0].ref: slot for slot in slots if slot.queue}
                if not heads:
                    return
                timeout = max(0.0, min(slot.queue[0].deadline for slot in heads.values()) - time.monotonic())
                ready, _ = ray.wait(list(heads), num_returns=1, timeout=min(timeout, 5.0))
                if ready:
                    ready, _ = ray.wait(list(heads), num_returns=len(heads), timeout=0)
                for ref in ready:
                    slot = heads[ref]
                    handed = slot.queue.popleft()
                    result, alive = self._collect(handed, catalog, foreign)
                    if alive:
                        if slot.queue:
                            now = time.monotonic()
                            slot.queue[0].deadline = self._deadline(slot.queue[0], catalog, now)
                    else:
                        self._drop(slot, slots, queue)
                    yield result
                now = time.monotonic()
                for slot in [s for s in slots if s.queue and s.queue[0].deadline <= now]:
                    handed = slot.queue.popleft()
                    self._drop(slot, slots, queue)
                    error = (f"cancelled {now - handed.handed:.1f} s after it was handed to Ray (time budget "
                             f"{handed.run.budget.seconds:g} s): neither the run nor its node's watchdog returned")
                    yield failed_result(handed.run, catalog, status=Status.TIMEOUT, error=error,
                                        wall_s=now - handed.handed, started_at=handed.started_at,
                                        environment=foreign)
        finally:
            _stop(slots)
            if started_here:
                ray.shutdown()

    def _slot_for(self, options: dict[str, Any], slots: list[_Slot], cluster: dict[str, float],
                  actor_class: Any) -> _Slot | None:
        """The actor to hand a run of ``options`` to (started when there is room), or None to wait."""
        key = tuple(sorted(options.items()))
        same = [slot for slot in slots if slot.key == key]
        idle = [slot for slot in same if not slot.queue]
        if idle:
            return idle[0]
        if not _fits(options, [slot.key for slot in slots], cluster):
            room = [slot for slot in same if len(slot.queue) < DEPTH]
            if room:
                return min(room, key=lambda slot: len(slot.queue))
            for other in [slot for slot in slots if slot.key != key and not slot.queue]:
                _stop([other])  # idle, and holding what this profile needs
                slots.remove(other)
                if _fits(options, [slot.key for slot in slots], cluster):
                    break
            else:
                if any(slot.queue for slot in slots):
                    return None
                # Nothing of ours holds the cluster: Ray queues the actor until room frees up.
        actor = actor_class.options(max_restarts=0, max_task_retries=0, **options).remote(self.source, self.grace_s)
        slot = _Slot(actor, key)
        slots.append(slot)
        return slot

    def _deadline(self, handed: _Handed, catalog: Any, now: float) -> float:
        """When the backstop gives up on ``handed``, which its actor starts now."""
        run = handed.run
        profile = catalog.hardware[run.hardware].spec
        grace = self.grace_s if self.grace_s is not None else default_grace(run.budget.seconds)
        ranks_extra = RANK_STARTUP_S if profile.ranks > 1 else 0.0  # as the local worker allows
        return now + 2 * self.startup_s + run.budget.seconds + 2 * grace + ranks_extra

    @staticmethod
    def _drop(slot: _Slot, slots: list[_Slot], queue: collections.deque[RunSpec]) -> None:
        """Kill ``slot``'s actor (lost or stuck); the runs queued behind its head go back to ``queue``."""
        import ray

        with contextlib.suppress(Exception):
            ray.kill(slot.actor, no_restart=True)
        queue.extendleft(reversed([handed.run for handed in slot.queue]))  # never started: run them elsewhere
        slot.queue.clear()
        slots.remove(slot)

    def _collect(self, handed: _Handed, catalog: Any, foreign: dict[str, Any] | None) -> tuple[RunResult, bool]:
        """The result of ``handed``'s ref (ready), and whether its actor is still alive."""
        import ray
        import ray.exceptions as rex

        try:
            row, trace, node = ray.get(handed.ref)
            self.placements[row["run_id"]] = node
            return RunResult(row=row, trace=trace), True
        except rex.OutOfMemoryError as exc:
            status, error, alive = Status.OOM, f"Ray's memory monitor killed the run's worker:\n{exc}", False
        except (rex.RayActorError, rex.WorkerCrashedError) as exc:
            if "out_of_memory" in str(exc).lower() or "out of memory" in str(exc).lower():
                status, error = Status.OOM, f"Ray's memory monitor killed the run's worker:\n{exc}"
            else:
                status, error = Status.ERROR, f"the Ray worker process died during the run:\n{exc}"
            alive = False
        except rex.RayTaskError as exc:  # raised by the actor's method: the actor lives on
            status, error, alive = Status.ERROR, f"{type(exc).__name__}: {exc}", True
        except rex.RayError as exc:  # lost nodes, failed runtime environments
            status, error, alive = Status.ERROR, f"{type(exc).__name__}: {exc}", False
        result = failed_result(handed.run, catalog, status=status, error=error,
                               wall_s=time.monotonic() - handed.handed, started_at=handed.started_at,
                               environment=foreign)
        return result, alive


def _fits(options: dict[str, Any], held: list[tuple[tuple[str, Any], ...]], cluster: dict[str, float]) -> bool:
    """Whether one more actor of ``options`` fits in ``cluster`` beside actors holding ``held``."""
    for option, name in _RESOURCE_NAMES.items():
        need = options.get(option, 0)
        if need and sum(dict(key).get(option, 0) for key in held) + need > cluster.get(name, 0) + 1e-9:
            return False
    return True


def _stop(slots: list[_Slot]) -> None:
    """Stop the actors of ``slots``: idle ones close their worker first; all are killed."""
    import ray

    with contextlib.suppress(Exception):
        closing = [slot.actor.close.remote() for slot in slots if not slot.queue]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=10.0)
    for slot in slots:
        with contextlib.suppress(Exception):
            ray.kill(slot.actor, no_restart=True)


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
