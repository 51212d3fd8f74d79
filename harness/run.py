"""One run: a problem, a method and the oracle loop, under the clock and the budget.

Timing rules (DESIGN.md, after AlgoPerf; the README's "Timing rules" say the same):

- the method's clock (``timed_s``) holds everything the method does: ``init``, every step
  (the first included) and every call of its ``output`` hook; the device is synchronized on
  each one's outputs before the clock is read. ``init_s`` and ``output_s`` are its parts;
  ``time_to_target_s`` and the trace's ``time_s`` read it;
- compilation is the one thing kept apart: the backend's :class:`~harness.program.Program`
  compiles (jax: ahead of time) and warms the method up against a decoy oracle before the
  clock starts (``compile_s``). Compilations that still happen on the clock are counted from
  the framework's own events (``clock_compiles``, ``clock_compile_s``) and flag the run;
- a method's declared offline phase (``offline(facts)``, a learned solver's training, say)
  runs before the clock and is reported as ``offline_s``, beside the score;
- off the clock: problem setup (``setup_s``), evaluation and probes (``eval_s``).

The method never holds the problem: its oracle is sealed (:func:`harness.sealed.seal`) over a
problem instance of its own, and evaluation, ``f_star``, the target test and probes use a
second instance that the method never had a reference to.

Multi-rank runs (a hardware profile with ``ranks > 1``) execute in ``ranks`` processes
joined by torch.distributed (:mod:`harness.execute.ranks`). Every rank runs the same loop
on its shard of the problem; rank 0 alone evaluates, on the whole problem, and tells the
others when to stop. Each clock is the slowest rank's (all-reduce max), as in AlgoPerf.

A run ends at the first of: target reached, divergence (non-finite objective, or objective
above 1e6 times the initial one), step budget, oracle-call budget, time budget, or an error.

Examples
--------
>>> from harness.catalog import Catalog
>>> from harness.plan import make_plan
>>> catalog = Catalog.load()  # doctest: +SKIP
>>> result = execute_run(make_plan(catalog, suite="quick").runs[0], catalog)  # doctest: +SKIP
>>> result.row["status"]  # doctest: +SKIP
'reached_target'
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.api import OracleBudgetExceeded
from harness.backends import make_backend
from harness.catalog import Catalog
from harness.environment import fingerprint
from harness.plan import RunSpec, stale_implementation
from harness.probes import ProbeContext, make_probe
from harness.sealed import facts_of
from harness.spec import SUBOPTIMALITY, HardwareProfile, MethodSpec, TaskSpec
from harness.store import dumps

__all__ = [
    "DIVERGENCE_FACTOR",
    "STATUSES",
    "Collective",
    "DeclaredError",
    "RunResult",
    "build_method",
    "execute_run",
    "failed_result",
    "hardware_unavailable",
    "is_out_of_memory",
]

STATUSES = ("reached_target", "completed", "diverged", "error", "timeout", "oom", "skipped")

#: A run diverges when its objective exceeds this multiple of the initial objective.
DIVERGENCE_FACTOR = 1e6

_ERROR_CHARS = 4000
_NO_STATE = object()  # before method.init: nothing for an ``output`` hook to read


@dataclass
class RunResult:
    """What a run leaves: its runs-table row and its trace (one dict per evaluation point)."""

    row: dict[str, Any]
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.row["status"]


class DeclaredError(RuntimeError):
    """A run failed where a declaration points (its implementation's import or construction)."""


class _Stop(Exception):
    """Ends the loop with a status (target, divergence, time)."""

    def __init__(self, status: str, error: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.error = error


class Collective(Protocol):
    """What the run loop needs from its peers: nothing on one process, collectives on ranks.

    Every rank calls these at the same points of the loop, in the same order.
    """

    rank: int
    world_size: int

    def max(self, values: list[float]) -> list[float]:
        """Element-wise maximum over the ranks."""
        ...

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (a picklable object), on every rank."""
        ...

    def make_oracle(self, problem: Any, backend: Any, **options: Any) -> Any:
        """The oracle of this rank: over its shard of ``problem``, reduced over the ranks.

        ``options`` go to ``backend.make_oracle`` (capabilities, call budget, ...).
        """
        ...


class _Solo:
    """The collective of a one-process run: every operation is the identity."""

    rank = 0
    world_size = 1

    def max(self, values: list[float]) -> list[float]:
        return values

    def broadcast(self, value: Any) -> Any:
        return value

    def make_oracle(self, problem: Any, backend: Any, **options: Any) -> Any:
        return backend.make_oracle(problem, **options)


def hardware_unavailable(profile: HardwareProfile) -> str | None:
    """Why ``profile`` cannot run on this host, or ``None`` when it can."""
    if profile.device == "cuda":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        needed = max(profile.devices, profile.ranks)  # one device per rank: NCCL refuses to share one
        if count < needed:
            return f"profile {profile.id!r} needs {needed} CUDA device(s); this host has {count}"
    if profile.ranks > 1:
        import torch.distributed as dist

        if not dist.is_available():
            return f"profile {profile.id!r} runs torch.distributed ranks; this torch build has no torch.distributed"
        available = dist.is_nccl_available() if profile.dist_backend == "nccl" else dist.is_gloo_available()
        if not available:
            return f"profile {profile.id!r} needs the {profile.dist_backend} backend, missing from this torch build"
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` reports an exhausted memory (host or device), whatever raised it."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    # torch's CPU allocator raises a plain RuntimeError; XLA reports RESOURCE_EXHAUSTED.
    return "can't allocate memory" in text or "CUDA out of memory" in text or "RESOURCE_EXHAUSTED" in text


def build_method(method: MethodSpec, framework: str, hyperparameters: dict[str, Any], backend: Any, catalog: Catalog) -> Any:
    """The method object of ``framework``: a wrapped library optimizer or our own factory."""
    impl = method.implementations[framework]
    if impl.optimizer is not None:
        return backend.library_method(impl.optimizer, method.optimizer_kwargs(framework, hyperparameters))
    factory = catalog.methods[method.id].resolve(impl.entry)
    return factory(**hyperparameters)


def execute_run(run: RunSpec, catalog: Catalog, *, comm: Collective | None = None,
                on_point: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Execute ``run`` and return its row and trace; never raises for run failures.

    A one-rank run executes in this process. A multi-rank run (``ranks > 1`` in its hardware
    profile) starts its ranks as child processes of this one, unless ``comm`` says this
    process already is one of them. ``on_point`` is called with each trace point as it is
    recorded (one-rank runs): a worker streams them, so a run that dies keeps its trace so far.
    """
    if comm is None and catalog.hardware[run.hardware].spec.ranks > 1:
        from harness.execute.ranks import execute_ranks

        return execute_ranks(run, catalog)
    return _Runner(run, catalog, comm=comm, on_point=on_point).execute()


def failed_result(
    run: RunSpec,
    catalog: Catalog,
    *,
    status: str,
    error: str,
    wall_s: float = 0.0,
    started_at: str | None = None,
    environment: dict[str, Any] | None = None,
    trace: Sequence[dict[str, Any]] = (),
) -> RunResult:
    """The row of a run that left no result of its own (killed, crashed, never started).

    Parameters
    ----------
    run, catalog
        The run and the catalog that declares its task, method and hardware.
    status, error
        Its status (one of :data:`STATUSES`) and the reason, kept as the row's error text.
    wall_s, started_at
        How long it ran and when it started, as the executor saw it.
    environment
        The fingerprint columns to record; default: this process's host (the executor's,
        which for a local worker is the run's host too).
    trace
        The trace points the run recorded before it ended (as a worker streamed them): kept,
        and its last point gives the row's steps, oracle calls, clock and metrics.
    """
    runner = _Runner(run, catalog)
    runner.started = time.perf_counter() - wall_s
    runner.started_at = started_at or _now()
    runner.trace = [dict(point) for point in trace]
    if runner.trace:
        last = runner.trace[-1]
        runner.steps = int(last["step"])
        runner.timings["timed_s"] = float(last["time_s"])
        runner.final = {m.id: float(last[m.id]) for m in runner.task.metrics if last.get(m.id) is not None}
        runner.counts = {key[len("calls_"):]: int(n) for key, n in last.items() if key.startswith("calls_")}
    row = runner._row(status, error)
    if environment is not None:
        row.update(environment)
    return RunResult(row=row, trace=runner.trace)


class _Runner:
    def __init__(self, run: RunSpec, catalog: Catalog, *, comm: Collective | None = None,
                 on_point: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.run = run
        self.catalog = catalog
        self.comm: Collective = comm or _Solo()
        self.on_point = on_point
        self.task: TaskSpec = catalog.tasks[run.task].spec
        self.method_spec: MethodSpec = catalog.methods[run.method].spec
        self.profile: HardwareProfile = catalog.hardware[run.hardware].spec
        self.trace: list[dict[str, Any]] = []
        self.timings: dict[str, float | None] = {
            "setup_s": 0.0, "compile_s": 0.0, "offline_s": None, "init_s": 0.0, "output_s": 0.0, "timed_s": 0.0,
            "eval_s": 0.0,
        }
        self.clock_compiles = 0
        self.clock_compile_s = 0.0
        self.program: Any = None
        self.steps = 0
        self.final: dict[str, float] = {}
        self.reached: tuple[float, int] | None = None
        self.oracle: Any = None
        self.counts: dict[str, int] = {}  # the oracle's counts, when there is no oracle (failed_result)
        self.backend: Any = None
        self.f_star: float | None = None
        self.initial_objective: float | None = None
        self.last_evaluated = -1  # the same on every rank, unlike the trace (rank 0 only)

    # -- the run ---------------------------------------------------------------------------------

    def execute(self) -> RunResult:
        self.started = time.perf_counter()
        self.started_at = _now()
        status, error = "completed", None
        try:
            reason = hardware_unavailable(self.profile) if self.comm.world_size == 1 else None
            if reason is not None:
                raise _Stop("skipped", reason)
            self._loop()
        except _Stop as stop:
            status, error = stop.status, stop.error
        except Exception as exc:  # noqa: BLE001 - every failure of user code is recorded, never raised
            status = "oom" if is_out_of_memory(exc) else "error"
            error = _error_text(exc)
        if self.comm.world_size > 1 and status not in ("error", "oom"):
            # Every rank got here together (stops are agreed): report the slowest rank's clocks.
            keys = [k for k, v in self.timings.items() if v is not None]
            self.timings.update(zip(keys, self.comm.max([float(self.timings[k]) for k in keys])))
        return RunResult(row=self._row(status, error), trace=self.trace)

    def _loop(self) -> None:
        run, task = self.run, self.task
        t0 = time.perf_counter()
        changed = stale_implementation(run, self.catalog)
        if changed is not None:  # its results would be stored under an id that names other code
            raise _Stop("error", changed)
        self.backend = backend = make_backend(
            run.framework, device=self.profile.device, dtype=task.dtype, threads=self.profile.threads
        )
        backend.seed(run.seed)
        backend.reset_peak_memory()
        at_task = ("task", task.id, ("implementations", run.framework))
        problem_cls = self._declared(*at_task, "importing the problem", lambda: self.catalog.tasks[task.id].resolve(
            task.implementations[run.framework]))
        # Two instances: the method's oracle wraps one, evaluation and probes use the other.
        method_problem = self._declared(*at_task, "building the problem",
                                        lambda: problem_cls(backend=backend, **run.task_params))
        self.problem = problem = problem_cls(backend=backend, **run.task_params)
        # Read once, before any method code runs: what the method could reach later is not used.
        f_star = getattr(problem, "f_star", None)
        self.f_star = None if f_star is None else float(f_star)
        self.evaluate_point = problem.evaluate
        capabilities = frozenset(task.provides)
        self.oracle = self.comm.make_oracle(
            method_problem, backend, capabilities=capabilities, max_calls=run.budget.oracle_calls
        )
        self.probe_oracle = backend.make_oracle(problem, capabilities=capabilities).uncounted()
        impl = self.method_spec.implementations[run.framework]
        method = self._declared(
            "method", run.method, ("implementations", run.framework, "optimizer" if impl.optimizer else "entry"),
            "building the method",
            lambda: build_method(self.method_spec, run.framework, run.hyperparameters, backend, self.catalog),
        )
        self.probes = [(ref.id, make_probe(ref.id, ref.options)) for ref in run.probes]
        params = problem.init_params(run.seed)
        facts = facts_of(method_problem, self.oracle, params, seed=run.seed, to_numpy=backend.to_numpy)
        self.program = backend.make_program(
            method, self.oracle, facts, pure=self.method_spec.is_pure(run.framework) and self.comm.world_size == 1,
            needs=self.method_spec.requirements(run.hyperparameters) & capabilities,
        )
        self.method = method
        self.timings["setup_s"] = time.perf_counter() - t0

        offline = getattr(method, "offline", None)
        if callable(offline):
            t0 = time.perf_counter()
            offline(facts)
            self.timings["offline_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.program.compile(params)
        backend.seed(run.seed)  # a warm-up that drew from the global generators leaves no trace
        self.timings["compile_s"] = time.perf_counter() - t0

        self._evaluate(params, _NO_STATE, step=0)
        state = _NO_STATE
        try:
            state = self._on_clock("init_s", self.program.init, params)
            for step in range(1, run.budget.steps + 1):
                previous = params
                params, state = self._on_clock(None, self.program.step, params, state)
                self.steps = step
                if step % task.evaluation.every == 0 or step == run.budget.steps:
                    self._evaluate(params, state, step=step, previous=previous)
                over = time.perf_counter() - self.started > run.budget.seconds
                if self.comm.world_size > 1:
                    over = self.comm.max([float(over)])[0] > 0  # every rank stops at the same step
                if over:
                    if self.last_evaluated != step:
                        self._evaluate(params, state, step=step)
                    raise _Stop("timeout", f"time budget of {run.budget.seconds:g} s exhausted after {step} steps")
        except OracleBudgetExceeded:
            # The budget ran out inside a step (or init): the last complete iterate is the result.
            if self.last_evaluated != self.steps:
                self._evaluate(params, state, step=self.steps)

    def _declared(self, kind: str, spec_id: str, loc: tuple[Any, ...], what: str, call: Any) -> Any:
        """``call()``; its failure is reported at the declaration's line (``path:line:col: field: ...``)."""
        try:
            return call()
        except Exception as exc:
            issue = self.catalog.get(kind, spec_id).document.issue(loc, f"{what} raised {type(exc).__name__}: {exc}")
            raise DeclaredError(str(issue)) from exc

    def _on_clock(self, part: str | None, call: Any, *args: Any) -> Any:
        """``call(*args)`` on the method's clock: synchronized, its compilations counted."""
        compiles, compile_s = self.backend.compile_counter()
        t0 = time.perf_counter()
        result = call(*args)
        self.backend.synchronize(result)
        elapsed = time.perf_counter() - t0
        now_compiles, now_compile_s = self.backend.compile_counter()
        self.clock_compiles += now_compiles - compiles
        self.clock_compile_s += now_compile_s - compile_s
        self.timings["timed_s"] += elapsed
        if part is not None:
            self.timings[part] += elapsed
        return result

    def _evaluate(self, params: Any, state: Any, *, step: int, previous: Any = None) -> None:
        """The method's ``output`` hook on the clock, then the metrics at its point, off the clock."""
        self.last_evaluated = step
        point = params
        if state is not _NO_STATE and self.program.has_output:
            point = self._on_clock("output_s", self.program.output, params, state)
        if self.comm.world_size == 1:
            self._measure(point, params, state, step=step, previous=previous, clock=self.timings["timed_s"])
            self._check(step)
            return
        # Ranks: the slowest clock, rank 0 measures and decides, every rank obeys.
        clock = self.comm.max([self.timings["timed_s"]])[0]
        stop: tuple[str, str | None] | None = None
        if self.comm.rank == 0:
            self._measure(point, params, state, step=step, previous=previous, clock=clock)
            try:
                self._check(step, clock=clock)
            except _Stop as exc:
                stop = (exc.status, exc.error)
        stop = self.comm.broadcast(stop)
        if stop is not None:
            raise _Stop(*stop)

    def _measure(self, point: Any, params: Any, state: Any, *, step: int, previous: Any, clock: float) -> None:
        t0 = time.perf_counter()
        try:
            if type(point) is not type(params) or tuple(point.shape) != tuple(params.shape):
                raise TypeError(f"the method's output() returned {type(point).__name__} of shape "
                                f"{tuple(getattr(point, 'shape', ()))}, not a parameter vector like its params")
            values = dict(self.evaluate_point(point))
            if self.f_star is not None and "objective" in values:
                values[SUBOPTIMALITY] = values["objective"] - self.f_star
            declared = [m.id for m in self.task.metrics]
            missing = [m for m in declared if m not in values]
            if missing:
                raise ValueError(f"the problem's evaluate() did not report {missing}")
            self.final = {m: float(values[m]) for m in declared}
            probed = self._probe(params, state, step=step, previous=previous)
            counts = self.oracle.counts
            self.trace.append(
                {
                    "step": step,
                    "time_s": clock,
                    "oracle_calls": sum(counts.values()),
                    **{f"calls_{kind}": int(n) for kind, n in counts.items()},
                    **self.final,
                    **probed,
                }
            )
            if self.on_point is not None:
                self.on_point(self.trace[-1])
        finally:
            self.timings["eval_s"] += time.perf_counter() - t0

    def _probe(self, params: Any, state: Any, *, step: int, previous: Any) -> dict[str, float]:
        if not self.probes:
            return {}
        context = ProbeContext(
            step=step, params=params, previous_params=previous, state=state, oracle=self.probe_oracle,
            problem=self.problem, method=self.method, backend=self.backend, hyperparameters=self.run.hyperparameters,
        )
        return {f"{probe_id}/{name}": float(value) for probe_id, probe in self.probes for name, value in probe(context).items()}

    def _check(self, step: int, *, clock: float | None = None) -> None:
        objective = self.final["objective"]
        if self.initial_objective is None:
            self.initial_objective = objective
        if not math.isfinite(objective):
            raise _Stop("diverged", f"objective is {objective} at step {step}")
        if objective > DIVERGENCE_FACTOR * max(abs(self.initial_objective), 1e-12):
            raise _Stop("diverged", f"objective {objective:.3g} exceeds {DIVERGENCE_FACTOR:g} x the initial {self.initial_objective:.3g} at step {step}")
        target = self.task.target
        if target is not None and self.reached is None:
            value = self.final[target.metric]
            better = value <= target.value if self.task.metric(target.metric).lower_is_better else value >= target.value
            if better:
                self.reached = (self.timings["timed_s"] if clock is None else clock, step)
                raise _Stop("reached_target")

    # -- the row ---------------------------------------------------------------------------------

    def _row(self, status: str, error: str | None) -> dict[str, Any]:
        run, task = self.run, self.task
        counts = dict(self.oracle.counts) if self.oracle is not None else self.counts
        peak = None
        if self.backend is not None:
            try:
                peak = self.backend.peak_memory_bytes()
            except Exception:  # noqa: BLE001 - a failed memory query must not lose the run
                peak = None
        metrics = {m.id: {"unit": m.unit, "lower_is_better": m.lower_is_better} for m in task.metrics}
        return {
            "run_id": run.run_id,
            "suite": run.suite,
            "task": run.task,
            "task_family": task.family,
            "task_params": dumps(run.task_params),
            "method": run.method,
            "method_family": self.method_spec.family,
            "hyperparameters": dumps(run.hyperparameters),
            "framework": run.framework,
            "hardware": run.hardware,
            "seed": run.seed,
            "status": status,
            "error": error,
            "steps": self.steps,
            "oracle_calls": sum(counts.values()),
            **{f"calls_{kind}": int(n) for kind, n in counts.items()},
            **self.timings,
            "wall_s": time.perf_counter() - self.started,
            "clock_compiles": self.clock_compiles,
            "clock_compile_s": self.clock_compile_s,
            "program": None if self.program is None else self.program.mode,
            "program_fallback": None if self.program is None else self.program.fallback,
            "peak_memory_bytes": peak,
            "target_metric": task.target.metric if task.target else None,
            "target_value": task.target.value if task.target else None,
            "time_to_target_s": self.reached[0] if self.reached else None,
            "steps_to_target": self.reached[1] if self.reached else None,
            "metrics": json.dumps(metrics, sort_keys=True),
            **{m.id: self.final.get(m.id) for m in task.metrics},
            **fingerprint(),
            "started_at": self.started_at,
            "finished_at": _now(),
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= _ERROR_CHARS else "...\n" + text[-_ERROR_CHARS:]
