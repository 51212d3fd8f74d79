"""The local pool: N warm worker processes, each run isolated and bounded in time and memory.

Each worker is a fresh interpreter (``python -m harness.execute.worker``, never a fork: jax
and torch threads do not survive one) with its hardware profile's thread variables in its
environment and, when the cores suffice, pinned to cores of its own. A worker serves run
after run, so the interpreter and framework start-up is paid once per worker.

The driver watches every busy worker:

- a run is killed at its wall-clock limit, ``budget.seconds`` plus a grace margin
  (status ``timeout``); the run's own loop stops at ``budget.seconds`` when a step returns,
  the kill is for steps that never do;
- a run whose worker's resident set passes ``memory_limit_mb`` above its baseline is killed
  (``oom``); inside the worker ``RLIMIT_AS`` makes most allocations fail first, cleanly;
- a worker that exits or is killed by a signal mid-run leaves an ``error`` row naming the
  exit code or signal, with the tail of the worker's output;

and replaces every worker it killed or lost. The rest of the matrix goes on.

A run that returns but leaves something running in its worker (a Python thread, a child
process: see :func:`~harness.execute.worker.left_behind`) keeps its result, with what it left
in the row's ``left_behind`` column, and its worker is replaced before the next run. Whenever
the pool kills a worker (timeout, memory, replacement, shutdown) it kills the worker's whole
tree (:func:`kill_tree`): its process group and every descendant, also those that left the
group with ``setsid`` (the worker is a child subreaper, so they stay in its tree).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from harness.execute.worker import (
    CatalogSource,
    LeftBehind,
    default_grace,
    kill_tree,
    live_descendants,
    start_process,
    thread_env,
)
from harness.plan import RunSpec
from harness.run import RunResult, failed_result
from harness.spec import HardwareProfile

__all__ = ["LocalWorker", "PoolExecutor", "default_jobs", "gpu_count", "kill_tree"]

_LOG_TAIL = 3000


def default_jobs(profile: HardwareProfile) -> int:
    """Concurrent runs of ``profile`` on this host: its cores (or GPUs) divided by what one run takes."""
    if profile.device == "cuda":
        return max(1, gpu_count() // max(profile.devices, profile.ranks))
    return max(1, len(_cores()) // ((profile.threads or 1) * profile.ranks))


def gpu_count() -> int:
    """CUDA devices visible to this process, found without importing a framework when possible."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
        if out.returncode == 0:
            return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.TimeoutExpired):
        pass
    return 0


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:
        return list(range(os.cpu_count() or 1))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class _Worker:
    """One worker process and the run it is busy with."""

    def __init__(self, *, key: tuple[Any, ...], env: dict[str, str], cpus: list[int] | None,
                 source: CatalogSource, log_dir: Path, number: int) -> None:
        self.key = key
        self.log_path = log_dir / f"worker-{number}.log"
        self.log = open(self.log_path, "w+b")  # noqa: SIM115 - lives as long as the worker
        args = ["--cpus", ",".join(map(str, cpus))] if cpus else []
        # Its own session: killing the group kills the ranks a multi-rank run started too.
        self.popen, self.conn = start_process("harness.execute.worker", env=env, args=args, stdout=self.log,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        self.conn.send(source)
        self.run: RunSpec | None = None
        self.assigned = 0.0
        self.started: float | None = None
        self.started_at: str | None = None
        self.deadline = float("inf")
        self.rss_limit: int | None = None
        self.log_offset = 0
        self.server: int | None = None  # the process serving the runs: the keeper's child (``popen`` is the keeper)

    @property
    def busy(self) -> bool:
        return self.run is not None

    def assign(self, run: RunSpec, *, startup_s: float) -> None:
        self.run = run
        self.assigned = time.monotonic()
        self.started = self.started_at = None
        self.deadline = self.assigned + startup_s
        self.rss_limit = None
        self.log.flush()
        self.log_offset = os.path.getsize(self.log_path)
        self.conn.send(run.model_dump(mode="json"))

    def finish(self) -> None:
        self.run = None
        self.started = None
        self.deadline = float("inf")
        self.rss_limit = None

    def _exited(self) -> bool:
        """Whether the worker has ended, without reaping it: while unreaped, its pid and group are still its own."""
        if self.popen.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
        except ChildProcessError:
            return True

    def alive(self) -> bool:
        return not self._exited()

    def kill(self) -> int | None:
        """SIGKILL the worker and everything it started (ranks, children, setsid'd ones too), and reap it."""
        if self.popen.returncode is None:  # not reaped: the pid (and group id) cannot name another process
            kill_tree(self.popen.pid)
            # Descendants of a worker that died by itself were reparented away; those still in its
            # group (no setsid) are found by the group id, which lives as long as one of them does.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                self.popen.kill()
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        self.kill()
        self.conn.close()
        self.log.close()

    def exit_code(self) -> int | None:
        """The exit code of a worker that is ending (``None`` if it is not within 10 s); what it left is killed."""
        deadline = time.monotonic() + 10
        while not self._exited():
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
        return self.kill()

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self.log_offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        return text if len(text) <= _LOG_TAIL else "...\n" + text[-_LOG_TAIL:]

    def tree_rss(self) -> int | None:
        import psutil

        try:
            process = psutil.Process(self.popen.pid)
            total = process.memory_info().rss
            for child in process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            return total
        except psutil.Error:
            return None


class _Supervisor:
    """Starts, feeds and watches workers: what the pool and :class:`LocalWorker` share."""

    def __init__(self, source: CatalogSource, *, grace_s: float | None, startup_s: float, rank_startup_s: float,
                 pin: bool, log_dir: Path) -> None:
        self.source = source
        self.catalog = source.load()
        self.grace_s = grace_s
        self.startup_s = startup_s
        self.rank_startup_s = rank_startup_s
        self.pin = pin
        self.log_dir = log_dir
        self.started = 0

    def profile(self, run: RunSpec) -> HardwareProfile:
        return self.catalog.hardware[run.hardware].spec

    def dispatch(self, run: RunSpec, worker: _Worker | None, *, index: int, jobs: int) -> _Worker:
        """Hand ``run`` to ``worker``, or to a fresh one when it is missing, dead or set up for other hardware."""
        profile = self.profile(run)
        # A worker keeps the threads and devices it was started with: a run needing others gets a fresh one.
        devices = os.environ.get("CUDA_VISIBLE_DEVICES") if profile.device == "cuda" else None
        key = (profile.threads, profile.ranks, profile.device, profile.devices, devices)
        if worker is not None and (worker.key != key or not worker.alive()):
            worker.close()
            worker = None
        if worker is None:
            worker = self._spawn(profile, key, index, jobs)
        startup = self.startup_s + (self.rank_startup_s if profile.ranks > 1 else 0.0)
        worker.assign(run, startup_s=startup)
        return worker

    def _spawn(self, profile: HardwareProfile, key: tuple[Any, ...], index: int, jobs: int) -> _Worker:
        env = dict(os.environ)
        env.update(thread_env(profile.threads))
        # The worker imports harness as this process does, installed or from a source tree.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        per_run = (profile.threads or 1) * profile.ranks
        cores = _cores()
        cpus = None
        if self.pin and profile.device == "cpu" and profile.threads is not None and jobs * per_run <= len(cores):
            cpus = cores[index * per_run:(index + 1) * per_run]
        if profile.device == "cuda" and "CUDA_VISIBLE_DEVICES" not in os.environ:
            # Each worker gets devices of its own while there are enough; then they are shared.
            per = max(profile.devices, profile.ranks)
            groups = gpu_count() // per
            if groups:
                first = (index % groups) * per
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(first + i) for i in range(per))
        self.started += 1
        return _Worker(key=key, env=env, cpus=cpus, source=self.source, log_dir=self.log_dir, number=self.started)

    def timeout(self, workers: list[_Worker], *, poll_s: float) -> float:
        """How long to wait for ``workers`` (all busy) before something must be checked."""
        now = time.monotonic()
        watch = any(w.rss_limit is not None for w in workers)
        return min(max(0.0, min(w.deadline for w in workers) - now), poll_s if watch else 5.0)

    def check(self, worker: _Worker, readable: bool) -> tuple[RunResult | None, bool]:
        """Handle what ``worker`` said or did; return (a finished run's result or None, keep the worker)."""
        run = worker.run
        assert run is not None
        now = time.monotonic()
        if readable:
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                return self._lost(worker), False
            kind = message[0]
            if kind == "started":
                profile = self.profile(run)
                worker.started, worker.started_at = now, _now()
                if len(message) > 2:
                    worker.server = message[2]
                grace = self.grace_s if self.grace_s is not None else default_grace(run.budget.seconds)
                ranks_extra = self.rank_startup_s if profile.ranks > 1 else 0.0
                worker.deadline = now + run.budget.seconds + grace + ranks_extra
                if profile.memory_limit_mb is not None and message[1] is not None:
                    worker.rss_limit = message[1] + profile.memory_limit_mb * 2**20 * profile.ranks
                return None, True
            if kind == "result":
                result = RunResult(row=message[1], trace=message[2])
                worker.finish()
                left = message[3] if len(message) > 3 else None
                if not left:
                    # Seen from outside too: the worker's own look runs in the process the run had.
                    processes = [p for p in live_descendants(worker.popen.pid) if p[0] != worker.server]
                    left = LeftBehind(processes=tuple(processes)).describe() if processes else None
                if left:
                    # The run's result stands; its worker, running what the run left, does not serve another.
                    result.row["left_behind"] = left
                    return result, False
                return result, True
            return self._failed(worker, "error", f"the worker could not start the run:\n{message[1]}", now), True
        if now >= worker.deadline:
            return self._timed_out(worker, now), False
        if worker.rss_limit is not None:
            rss = worker.tree_rss()
            if rss is not None and rss > worker.rss_limit:
                profile = self.profile(run)
                worker.kill()
                error = (f"killed: resident memory {rss / 2**20:.0f} MiB passed the limit of hardware profile "
                         f"{profile.id!r} ({profile.memory_limit_mb} MiB above the worker's baseline)")
                return self._failed(worker, "oom", error, now), False
        return None, True

    def _failed(self, worker: _Worker, status: str, error: str, now: float) -> RunResult:
        run = worker.run
        assert run is not None
        started = worker.started if worker.started is not None else worker.assigned
        result = failed_result(run, self.catalog, status=status, error=error, wall_s=now - started,
                               started_at=worker.started_at)
        worker.finish()
        return result

    def _timed_out(self, worker: _Worker, now: float) -> RunResult:
        run = worker.run
        assert run is not None
        worker.kill()
        if worker.started is None:
            error = f"the worker did not start the run within {now - worker.assigned:.0f} s"
            status = "error"
        else:
            error = (f"killed at the wall-clock limit: {now - worker.started:.1f} s (time budget "
                     f"{run.budget.seconds:g} s plus grace) without the run returning")
            status = "timeout"
        return self._failed(worker, status, _with_output(error, worker.log_tail()), now)

    def _lost(self, worker: _Worker) -> RunResult:
        code = worker.exit_code()
        if code is None:
            worker.kill()
            how = "closed its connection and did not exit"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was killed by signal {name} ({-code})"
            if -code == signal.SIGKILL:
                how += ", sent from outside the harness (often the kernel's out-of-memory killer)"
        else:
            how = f"exited with code {code}"
        error = _with_output(f"the worker process {how} during the run", worker.log_tail())
        return self._failed(worker, "error", error, time.monotonic())


def _with_output(error: str, output: str) -> str:
    """The worker's output, then the reason: the last line says what happened, as in a traceback."""
    return f"worker output:\n{output.rstrip()}\n{error}" if output.strip() else error


class PoolExecutor:
    """Runs in a pool of local worker processes, yielding each result as its run ends.

    Parameters
    ----------
    source
        The catalog the runs come from; the driver and every worker load it.
    jobs
        Worker processes; default :func:`default_jobs` of the first run's hardware profile.
    grace_s
        Seconds past ``budget.seconds`` before a run is killed; default
        :func:`~harness.execute.worker.default_grace`.
    startup_s
        Seconds a fresh worker may take to start a run (interpreter and framework import).
    rank_startup_s
        Extra seconds for multi-rank runs, which start their rank processes inside the run.
    pin
        Pin each worker to cores of its own when ``jobs`` x the cores per run fit on the host.
    poll_s
        How often busy workers' memory is checked.
    """

    def __init__(
        self,
        source: CatalogSource,
        *,
        jobs: int | None = None,
        grace_s: float | None = None,
        startup_s: float = 300.0,
        rank_startup_s: float = 120.0,
        pin: bool = True,
        poll_s: float = 0.1,
    ) -> None:
        if jobs is not None and jobs < 1:
            raise ValueError(f"jobs must be at least 1 (got {jobs})")
        self.source = source
        self.jobs = jobs
        self.grace_s = grace_s
        self.startup_s = startup_s
        self.rank_startup_s = rank_startup_s
        self.pin = pin
        self.poll_s = poll_s
        self.workers_started = 0

    def map(self, runs: Iterable[RunSpec]) -> Iterator[RunResult]:
        """Execute ``runs`` (pulled one at a time, as workers free up); yield results as they end."""
        pending = iter(runs)
        first = next(pending, None)
        if first is None:
            return
        with tempfile.TemporaryDirectory(prefix="harness-pool-") as log_dir:
            supervisor = _Supervisor(self.source, grace_s=self.grace_s, startup_s=self.startup_s,
                                     rank_startup_s=self.rank_startup_s, pin=self.pin, log_dir=Path(log_dir))
            jobs = self.jobs or default_jobs(supervisor.profile(first))
            queue = collections.deque([first])
            slots: list[_Worker | None] = [None] * jobs
            try:
                while True:
                    for index in range(jobs):
                        worker = slots[index]
                        if worker is not None and worker.busy:
                            continue
                        run = queue.popleft() if queue else next(pending, None)
                        if run is None:
                            break
                        slots[index] = supervisor.dispatch(run, worker, index=index, jobs=jobs)
                    busy = [w for w in slots if w is not None and w.busy]
                    if not busy:
                        return
                    ready = set(wait([w.conn for w in busy], timeout=supervisor.timeout(busy, poll_s=self.poll_s)))
                    for index, worker in enumerate(slots):
                        if worker is None or not worker.busy:
                            continue
                        result, keep = supervisor.check(worker, worker.conn in ready)
                        if not keep:
                            worker.close()
                            slots[index] = None
                        if result is not None:
                            yield result
            finally:
                self.workers_started += supervisor.started
                for worker in slots:
                    if worker is not None:
                        worker.close()


class LocalWorker:
    """One warm worker process that executes runs one at a time, under the pool's limits.

    What a Ray task uses on its node: the run is isolated from the Ray worker process, and a
    crash, a hang or an exhausted memory is reported exactly as the local pool reports it.

    Parameters
    ----------
    source
        The catalog the runs come from.
    grace_s, startup_s, rank_startup_s, poll_s
        As for :class:`PoolExecutor`.
    """

    def __init__(self, source: CatalogSource, *, grace_s: float | None = None, startup_s: float = 300.0,
                 rank_startup_s: float = 120.0, poll_s: float = 0.1) -> None:
        self._log_dir = tempfile.TemporaryDirectory(prefix="harness-worker-")
        self._supervisor = _Supervisor(source, grace_s=grace_s, startup_s=startup_s, rank_startup_s=rank_startup_s,
                                       pin=False, log_dir=Path(self._log_dir.name))
        self.poll_s = poll_s
        self._worker: _Worker | None = None

    def execute(self, run: RunSpec) -> RunResult:
        """Execute ``run`` in the worker (started or replaced as needed) and return its result."""
        self._worker = worker = self._supervisor.dispatch(run, self._worker, index=0, jobs=1)
        while True:
            ready = wait([worker.conn], timeout=self._supervisor.timeout([worker], poll_s=self.poll_s))
            result, keep = self._supervisor.check(worker, bool(ready))
            if not keep:
                worker.close()
                self._worker = None
            if result is not None:
                return result

    def close(self) -> None:
        """Stop the worker process."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._log_dir.cleanup()
