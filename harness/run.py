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
- a method's declared offline phase (``offline(facts, operator)``, a learned solver's training,
  say) runs before the clock and is reported as ``offline_s``, beside the score;
- off the clock: problem setup (``setup_s``), evaluation and probes (``eval_s``).

The method never holds the problem: its oracle is sealed (:func:`harness.sealed.seal`) over a
problem instance of its own, and evaluation, ``f_star``, the target test and probes use a
second instance that the method never had a reference to.

Multi-rank runs (a hardware profile with ``ranks > 1``) execute in ``ranks`` processes
joined by torch.distributed (:mod:`harness.execute.ranks`), each of which calls
:func:`execute_run` with its collective. Every rank runs the same loop on its shard of the
problem; rank 0 alone evaluates, on the whole problem, and tells the others when to stop.
Each clock is the slowest rank's (all-reduce max), as in AlgoPerf. Where a run executes (this
process, ranks, Ray) is the executors' decision: :func:`harness.execute.execute` dispatches.

A run ends at the first of: target reached, divergence (non-finite objective, or objective
above 1e6 times the initial one), step budget, oracle-call budget, time budget, or an error.

Modules: this one builds a run (problem instances, sealed oracle, method, program) and its
row (:class:`~harness.record.RunRecord`); :mod:`harness.loop` runs it (:func:`~harness.loop.run_loop`);
:mod:`harness.host` says what this host can run.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.backends import make_backend
from harness.catalog import Catalog
from harness.environment import fingerprint
from harness.host import hardware_unavailable
from harness.loop import (
    DIVERGENCE_FACTOR,
    LOCAL_FAILURES,
    Clock,
    Collective,
    Evaluator,
    Outcome,
    Probes,
    Solo,
    failure,
    run_loop,
)
from harness.plan import RunSpec, stale_implementation
from harness.probes import make_probe
from harness.record import RunRecord, Status
from harness.sealed import facts_of, offline_operator
from harness.spec import MethodSpec

__all__ = [
    "DIVERGENCE_FACTOR",
    "DRIVER_COLUMNS",
    "Collective",
    "DeclaredError",
    "RunResult",
    "Stepper",
    "build_method",
    "execute_run",
]

#: Columns of the record that the driver and the store set, never a run's own row: the attempt
#: a result is written as, and what the run left running in its worker (the pool looks).
DRIVER_COLUMNS = ("attempt", "left_behind")


@dataclass
class RunResult:
    """What a run leaves: its runs-table row and its trace (one dict per evaluation point)."""

    row: dict[str, Any]
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.row["status"]

    @classmethod
    def of(cls, record: RunRecord, trace: list[dict[str, Any]]) -> RunResult:
        """The result of ``record``: its wide row (less :data:`DRIVER_COLUMNS`) and ``trace``."""
        row = record.row()
        for name in DRIVER_COLUMNS:
            del row[name]
        return cls(row=row, trace=trace)


class DeclaredError(RuntimeError):
    """A run failed where a declaration points (its implementation's import or construction)."""


def build_method(method: MethodSpec, framework: str, hyperparameters: dict[str, Any], backend: Any, catalog: Catalog) -> Any:
    """The method object of ``framework``: a wrapped library optimizer or our own factory."""
    impl = method.implementations[framework]
    if impl.optimizer is not None:
        return backend.library_method(impl.optimizer, method.optimizer_kwargs(framework, hyperparameters))
    factory = catalog.methods[method.id].resolve(impl.entry)
    return factory(**hyperparameters)


def execute_run(run: RunSpec, catalog: Catalog, *, comm: Collective | None = None,
                on_point: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Execute ``run`` in this process and return its row and trace; never raises for run failures.

    ``comm`` is the collective of a rank of a multi-rank run (:mod:`harness.execute.ranks`
    starts them); by default the run is a one-process one. ``on_point`` is called with each
    trace point as it is recorded: a worker streams them, so a run that dies keeps its trace so far.

    Raises
    ------
    ValueError
        When the run's hardware profile has another number of ranks than ``comm``: a
        multi-rank run executes through :func:`harness.execute.execute`, which starts its ranks.
    """
    collective: Collective = Solo() if comm is None else comm
    profile = catalog.hardware[run.hardware].spec
    if profile.ranks != collective.world_size:
        raise ValueError(f"run {run.run_id} of hardware profile {profile.id!r} runs on {profile.ranks} ranks, not "
                         f"{collective.world_size}: execute it with harness.execute.execute, which starts its ranks")
    started, started_at = time.perf_counter(), _now()
    made = _Made()
    try:
        reason = hardware_unavailable(profile)  # on ranks, the launcher checked the same host already
        if reason is not None:
            outcome = Outcome(status=Status.SKIPPED, error=reason)
        else:
            outcome = _build_and_loop(run, catalog, collective, made, started=started, on_point=on_point)
    except Exception as exc:  # noqa: BLE001 - every failure of user code is recorded, never raised
        status, error = failure(exc)
        outcome = Outcome(status=status, error=error)
    timings = made.timings(outcome)
    if outcome.status not in LOCAL_FAILURES:
        # Every rank got here together (stops are agreed): report the slowest rank's clocks.
        keys = [k for k, v in timings.items() if v is not None]
        timings.update(zip(keys, collective.max([float(timings[k]) for k in keys])))
    return RunResult.of(made.record(run, catalog, outcome, timings, started=started, started_at=started_at),
                        outcome.trace)


@dataclass
class _Made:
    """What a run's set-up made before it ended or failed: its row reads them."""

    backend: Any = None
    oracle: Any = None
    program: Any = None
    clock: Clock | None = None
    setup_s: float = 0.0
    compile_s: float = 0.0
    offline_s: float | None = None

    def timings(self, outcome: Outcome) -> dict[str, float | None]:
        clock = self.clock or _IDLE_CLOCK
        return {"setup_s": self.setup_s, "compile_s": self.compile_s, "offline_s": self.offline_s,
                "init_s": clock.init_s, "output_s": clock.output_s, "timed_s": clock.timed_s, "eval_s": outcome.eval_s}

    def record(self, run: RunSpec, catalog: Catalog, outcome: Outcome, timings: dict[str, float | None], *,
               started: float, started_at: str) -> RunRecord:
        """The run's record: its outcome, its timings and what its set-up made."""
        counts = dict(self.oracle.counts) if self.oracle is not None else {}
        clock = self.clock or _IDLE_CLOCK
        metrics = catalog.tasks[run.task].spec.metrics
        return RunRecord.for_run(
            run, catalog,
            status=outcome.status,
            error=outcome.error,
            steps=outcome.steps,
            oracle_calls=sum(counts.values()),
            calls={kind: int(n) for kind, n in counts.items()},
            **timings,
            wall_s=time.perf_counter() - started,
            clock_compiles=clock.compiles,
            clock_compile_s=clock.compile_s,
            program=None if self.program is None else self.program.mode,
            program_fallback=None if self.program is None else self.program.fallback,
            peak_memory_bytes=self._memory("peak_memory_bytes"),
            baseline_memory_bytes=self._memory("baseline_memory_bytes"),
            time_to_target_s=outcome.reached[0] if outcome.reached else None,
            steps_to_target=outcome.reached[1] if outcome.reached else None,
            values={m.id: outcome.values.get(m.id) for m in metrics},
            **fingerprint(),
            started_at=started_at,
            finished_at=_now(),
        )

    def _memory(self, reader: str) -> int | None:
        if self.backend is None:
            return None
        try:
            return getattr(self.backend, reader)()
        except Exception:  # noqa: BLE001 - a failed memory query must not lose the run
            return None


_IDLE_CLOCK = Clock(backend=None)  # the clock of a run that failed before its own started: all zeros


def _build_and_loop(run: RunSpec, catalog: Catalog, collective: Collective, made: _Made, *, started: float,
                    on_point: Callable[[dict[str, Any]], None] | None) -> Outcome:
    """Build the run (what it makes goes into ``made`` as it is made), then run its loop."""
    built = _build(run, catalog, collective, made, on_point=on_point)
    if isinstance(built, Outcome):
        return built
    program, params, evaluator = built
    made.clock = clock = Clock(made.backend)
    # The time budget is the run's, not its offline phase's (reported apart, amortized over problems).
    return run_loop(program, params, evaluator=evaluator, clock=clock, collective=collective, budget=run.budget,
                    started=started + (made.offline_s or 0.0))


class Stepper:
    """A run's method, built and compiled as a run builds it, advanced one step per :meth:`step` call.

    What asv's ``time_*`` benchmarks time (:mod:`harness.regress.suite`): one step on the clock's
    terms (the device synchronized on its outputs), with no evaluation, probe or budget around it.

    Raises
    ------
    RuntimeError
        When the run cannot be built (its implementation changed since it was planned).
    """

    def __init__(self, run: RunSpec, catalog: Catalog) -> None:
        self.made = _Made()
        built = _build(run, catalog, Solo(), self.made, on_point=None)
        if isinstance(built, Outcome):
            raise RuntimeError(built.error)
        self.program, self.params, _ = built
        self.state = self.program.init(self.params)
        self.made.backend.synchronize(self.params, self.state)

    def step(self) -> None:
        """One step of the method: the next point and state, synchronized."""
        self.params, self.state = self.program.step(self.params, self.state)
        self.made.backend.synchronize(self.params, self.state)


def _build(run: RunSpec, catalog: Catalog, collective: Collective, made: _Made, *,
           on_point: Callable[[dict[str, Any]], None] | None) -> tuple[Any, Any, Evaluator] | Outcome:
    """The run's compiled program, initial point and evaluator; the outcome instead when it cannot run."""
    task = catalog.tasks[run.task].spec
    method_spec = catalog.methods[run.method].spec
    profile = catalog.hardware[run.hardware].spec
    t0 = time.perf_counter()
    changed = stale_implementation(run, catalog)
    if changed is not None:  # its results would be stored under an id that names other code
        return Outcome(status=Status.ERROR, error=changed)
    made.backend = backend = make_backend(
        run.framework, device=profile.device, dtype=task.dtype, threads=profile.threads
    )
    backend.seed(run.seed)
    backend.reset_peak_memory()
    at_task = ("task", task.id, ("implementations", run.framework))
    problem_cls = _declared(catalog, *at_task, "importing the problem",
                            lambda: catalog.tasks[task.id].resolve(task.implementations[run.framework]))
    # Two instances: the method's oracle wraps one, evaluation and probes use the other.
    method_problem = _declared(catalog, *at_task, "building the problem",
                               lambda: problem_cls(backend=backend, **run.task_params))
    problem = problem_cls(backend=backend, **run.task_params)
    # Read once, before any method code runs: what the method could reach later is not used.
    f_star = getattr(problem, "f_star", None)
    f_star = None if f_star is None else float(f_star)
    evaluate = problem.evaluate
    capabilities = frozenset(task.provides)
    made.oracle = oracle = collective.make_oracle(
        method_problem, backend, capabilities=capabilities, max_calls=run.budget.oracle_calls
    )
    probe_oracle = backend.make_oracle(problem, capabilities=capabilities).uncounted()
    impl = method_spec.implementations[run.framework]
    method = _declared(
        catalog, "method", run.method, ("implementations", run.framework, "optimizer" if impl.optimizer else "entry"),
        "building the method", lambda: build_method(method_spec, run.framework, run.hyperparameters, backend, catalog),
    )
    probes = Probes([(ref.id, make_probe(ref.id, ref.options)) for ref in run.probes], oracle=probe_oracle,
                    problem=problem, method=method, backend=backend, hyperparameters=run.hyperparameters)
    params = problem.init_params(run.seed)
    facts = facts_of(method_problem, oracle, params, seed=run.seed, to_numpy=backend.to_numpy)
    # A library optimizer is a pure function of its declared arguments, so runs that differ only
    # in seed, budget or probes may share its compiled program. A module's method may depend on
    # anything when it is built (the seeded global generators, say): compiled per run.
    made.program = program = backend.make_program(
        method, oracle, facts, pure=method_spec.is_pure(run.framework) and collective.traceable,
        needs=method_spec.requirements(run.hyperparameters) & capabilities,
        reuse_key=run.program_key if impl.optimizer is not None else None,
    )
    made.setup_s = time.perf_counter() - t0

    offline = getattr(method, "offline", None)
    if callable(offline):
        t0 = time.perf_counter()
        offline(facts, offline_operator(oracle, facts))
        made.offline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    program.compile(params)
    backend.seed(run.seed)  # a warm-up that drew from the global generators leaves no trace
    made.compile_s = time.perf_counter() - t0
    return program, params, Evaluator(task, evaluate, f_star=f_star, oracle=oracle, probes=probes, on_point=on_point)


def _declared(catalog: Catalog, kind: str, spec_id: str, loc: tuple[Any, ...], what: str, call: Any) -> Any:
    """``call()``; its failure is reported at the declaration's line (``path:line:col: field: ...``)."""
    try:
        return call()
    except Exception as exc:
        issue = catalog.get(kind, spec_id).document.issue(loc, f"{what} raised {type(exc).__name__}: {exc}")
        raise DeclaredError(str(issue)) from exc


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
