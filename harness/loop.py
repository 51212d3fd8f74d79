"""The run loop: a method's program against its oracle, under the clock and the budget.

:func:`run_loop` is the loop of one run (or of one rank of a multi-rank run), once
:func:`harness.run.execute_run` has built what it needs: the method's program over its sealed
oracle, an :class:`Evaluator` over the problem instance the method never had, a
:class:`Clock` and a :class:`Collective`. It returns an :class:`Outcome` and never raises for
a failure of the method's or the problem's code. The timing rules are :mod:`harness.run`'s.

The loop is written once for every process count: on one process the collective is
:class:`Solo`, whose operations are the identity; on ranks (:mod:`harness.execute.ranks`)
every rank runs the same steps on its shard, the clocks read are the slowest rank's, and
rank 0 alone evaluates and decides when to stop (:meth:`Collective.decide`).

A run ends at the first of: target reached, divergence (non-finite objective, objective
above :data:`DIVERGENCE_FACTOR` times the initial one, or objective above the initial one at
the task's ``evaluation.divergence_patience`` consecutive evaluation points), step budget,
oracle-call budget, time budget, or an error.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from harness.api import OracleBudgetExceeded
from harness.host import is_out_of_memory
from harness.probes import ProbeContext
from harness.record import Status
from harness.spec import SUBOPTIMALITY, Budget, TaskSpec, is_split_metric

__all__ = [
    "DIVERGENCE_FACTOR",
    "LOCAL_FAILURES",
    "NO_STATE",
    "Clock",
    "Collective",
    "Evaluator",
    "Outcome",
    "Probes",
    "Solo",
    "failure",
    "run_loop",
]

#: A run diverges when its objective exceeds this multiple of the initial objective.
DIVERGENCE_FACTOR = 1e6

#: Statuses a process reaches on its own, from an exception: on ranks the others are not told
#: (they wait in a collective until the launcher stops them), so no collective may follow.
LOCAL_FAILURES: tuple[Status, ...] = (Status.ERROR, Status.OOM)

#: The method's state before ``init``: nothing for an ``output`` hook to read.
NO_STATE: Any = object()

_ERROR_CHARS = 4000

T = TypeVar("T")
Stop = tuple[Status, str | None]  # a decided stop: its status and its reason


class Collective(Protocol):
    """What the run loop needs from its peers: nothing on one process, collectives on ranks.

    Every rank calls these at the same points of the loop, in the same order.
    """

    rank: int
    world_size: int
    #: Whether a method's whole program may be compiled over this collective's oracle
    #: (false where the oracle's calls are torch.distributed collectives, which do not trace).
    traceable: bool

    def max(self, values: list[float]) -> list[float]:
        """Element-wise maximum over the ranks."""
        ...

    def decide(self, call: Callable[[], T]) -> T:
        """Rank 0's ``call()`` (a picklable value), on every rank; only rank 0 calls it."""
        ...

    def make_oracle(self, problem: Any, backend: Any, **options: Any) -> Any:
        """The oracle of this rank: over its shard of ``problem``, reduced over the ranks.

        ``options`` go to ``backend.make_oracle`` (capabilities, call budget, ...).
        """
        ...


class Solo:
    """The collective of a one-process run: every operation is the identity."""

    rank = 0
    world_size = 1
    traceable = True

    def max(self, values: list[float]) -> list[float]:
        return values

    def decide(self, call: Callable[[], T]) -> T:
        return call()

    def make_oracle(self, problem: Any, backend: Any, **options: Any) -> Any:
        return backend.make_oracle(problem, **options)


class Clock:
    """The method's clock: ``timed_s``, its parts, and the compilations that happen on it.

    Each call of the method's program (``init``, a step, ``output``) is timed with the device
    synchronized on its result, and the framework's compilation events during it are counted
    (``clock_compiles``, ``clock_compile_s``: they flag a run).
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.timed_s = 0.0
        self.init_s = 0.0  # parts of timed_s
        self.output_s = 0.0
        self.compiles = 0
        self.compile_s = 0.0

    def init(self, program: Any, params: Any) -> Any:
        state, elapsed = self._time(program.init, params)
        self.init_s += elapsed
        return state

    def step(self, program: Any, params: Any, state: Any) -> tuple[Any, Any]:
        return self._time(program.step, params, state)[0]

    def output(self, program: Any, params: Any, state: Any) -> Any:
        point, elapsed = self._time(program.output, params, state)
        self.output_s += elapsed
        return point

    def _time(self, call: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        compiles, compile_s = self.backend.compile_counter()
        t0 = time.perf_counter()
        result = call(*args)
        self.backend.synchronize(result)
        elapsed = time.perf_counter() - t0
        now_compiles, now_compile_s = self.backend.compile_counter()
        self.compiles += now_compiles - compiles
        self.compile_s += now_compile_s - compile_s
        self.timed_s += elapsed
        return result, elapsed


class Probes:
    """The run's probes (``(id, probe)`` pairs), called at each evaluation point with a :class:`ProbeContext`.

    ``oracle`` is an uncounted oracle over the evaluation instance ``problem``.
    """

    def __init__(self, probes: Sequence[tuple[str, Callable[[ProbeContext], Mapping[str, float]]]], *, oracle: Any,
                 problem: Any, method: Any, backend: Any, hyperparameters: Mapping[str, Any]) -> None:
        self.probes = list(probes)
        self.oracle = oracle
        self.problem = problem
        self.method = method
        self.backend = backend
        self.hyperparameters = hyperparameters

    def __call__(self, params: Any, state: Any, *, step: int, previous: Any) -> dict[str, float]:
        """``{"<probe>/<name>": value}`` at ``step``."""
        if not self.probes:
            return {}
        context = ProbeContext(
            step=step, params=params, previous_params=previous, state=state, oracle=self.oracle,
            problem=self.problem, method=self.method, backend=self.backend, hyperparameters=self.hyperparameters,
        )
        return {f"{probe_id}/{name}": float(value)
                for probe_id, probe in self.probes for name, value in probe(context).items()}


class Evaluator:
    """Measures the method's points off the clock and decides stops (on ranks: rank 0's alone).

    Parameters
    ----------
    task
        The task: its declared metrics, target and evaluation schedule.
    evaluate
        The ``evaluate`` of the problem instance the method never had, bound before any
        method code ran.
    f_star
        The optimum, read as ``evaluate``; ``suboptimality`` is the objective minus it.
    oracle
        The method's oracle: each trace point records its counts so far.
    probes
        Called at every point; their values join the trace.
    on_point
        Called with each trace point as it is recorded (a worker streams them).
    """

    def __init__(self, task: TaskSpec, evaluate: Callable[[Any], Mapping[str, Any]], *, f_star: float | None,
                 oracle: Any, probes: Probes | None = None,
                 on_point: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.task = task
        self.evaluate_point = evaluate
        self.f_star = f_star
        self.oracle = oracle
        self.probes = probes
        self.on_point = on_point
        self.trace: list[dict[str, Any]] = []
        self.values: dict[str, float | None] = {}  # the declared metrics at the last point
        self.initial_objective: float | None = None
        self.above_since: int | None = None  # first step of the current run of points above the initial objective
        self.above_count = 0  # how many consecutive points (the last included) are above it
        self.reached: tuple[float, int] | None = None  # (clock, step) of the first point on target
        self.eval_s = 0.0

    def __call__(self, point: Any, params: Any, state: Any, *, step: int, previous: Any, clock: float) -> Stop | None:
        """Record the trace point of ``point`` (the method's output at ``step``); the stop it decides, if any."""
        self._measure(point, params, state, step=step, previous=previous, clock=clock)
        return self._judge(step, clock)

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
            # A variant without a reference (f_star None: teacher-student with label noise) has no suboptimality,
            # one that holds nothing out no held-out metric (validation_*, test_*): null in the record.
            missing = [m for m in declared if m not in values and not (m == SUBOPTIMALITY and self.f_star is None)
                       and not is_split_metric(m)]
            if missing:
                raise ValueError(f"the problem's evaluate() did not report {missing}")
            self.values = {m: None if values.get(m) is None else float(values[m]) for m in declared}
            probed = {} if self.probes is None else self.probes(params, state, step=step, previous=previous)
            counts = self.oracle.counts
            self.trace.append(
                {
                    "step": step,
                    "time_s": clock,
                    "oracle_calls": sum(counts.values()),
                    **{f"calls_{kind}": int(n) for kind, n in counts.items()},
                    **self.values,
                    **probed,
                }
            )
            if self.on_point is not None:
                self.on_point(self.trace[-1])
        finally:
            self.eval_s += time.perf_counter() - t0

    def _judge(self, step: int, clock: float) -> Stop | None:
        objective = self.values["objective"]
        if self.initial_objective is None:
            self.initial_objective = objective
        if not math.isfinite(objective):
            return Status.DIVERGED, f"objective is {objective} at step {step}"
        if objective > DIVERGENCE_FACTOR * max(abs(self.initial_objective), 1e-12):
            return Status.DIVERGED, (f"objective {objective:.3g} exceeds {DIVERGENCE_FACTOR:g} x the initial "
                                     f"{self.initial_objective:.3g} at step {step}")
        # Oscillation (a cycle above the start) or slow divergence: above the initial objective at
        # `divergence_patience` consecutive points; a shorter excursion (a spike, a first step) is forgiven.
        if len(self.trace) > 1 and objective > self.initial_objective:
            if self.above_count == 0:
                self.above_since = step
            self.above_count += 1
            patience = self.task.evaluation.divergence_patience
            if self.above_count >= patience:
                return Status.DIVERGED, (f"objective above its initial {self.initial_objective:.3g} at {patience} "
                                         f"consecutive evaluations (steps {self.above_since}..{step}): "
                                         "oscillating or diverging")
        else:
            self.above_since, self.above_count = None, 0
        target = self.task.target
        if target is not None and self.reached is None:
            value = self.values[target.metric]
            if value is None:  # not measurable on this variant: the target cannot be reached
                return None
            better = value <= target.value if self.task.metric(target.metric).lower_is_better else value >= target.value
            if better:
                self.reached = (clock, step)
                return Status.REACHED_TARGET, None
        return None


@dataclass
class Outcome:
    """How a run's loop ended, and what it measured (on ranks: rank 0's trace, values and target)."""

    status: Status
    error: str | None = None
    steps: int = 0
    values: dict[str, float] = field(default_factory=dict)  # the declared metrics at the last point
    reached: tuple[float, int] | None = None  # (clock, step) when the target was first reached
    trace: list[dict[str, Any]] = field(default_factory=list)
    eval_s: float = 0.0


class _Stop(Exception):
    """Ends the loop with a status (target, divergence, time)."""

    def __init__(self, status: Status, error: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.error = error


def run_loop(program: Any, params: Any, *, evaluator: Evaluator, clock: Clock, collective: Collective,
             budget: Budget, started: float) -> Outcome:
    """Run ``program`` from ``params`` until the run ends; never raises for the run's failures.

    Parameters
    ----------
    program
        The method's :class:`~harness.program.Program`, compiled and warmed up already.
    params
        The initial point (evaluated as step 0, before ``init``).
    evaluator
        Measures each evaluation point and decides the stops; its trace is the outcome's.
    clock
        The method's clock: every call of ``program`` goes through it.
    collective
        :class:`Solo`, or this rank's peers.
    budget
        Steps and seconds (the oracle-call budget is the oracle's: it raises
        :class:`~harness.api.OracleBudgetExceeded`, and the last complete iterate is the result).
    started
        ``time.perf_counter()`` when the run started, moved on by the offline phase's seconds: the
        time budget counts from there.
    """
    every = evaluator.task.evaluation.every
    steps = 0
    last_evaluated = -1  # the same on every rank, unlike the trace (rank 0's)

    def evaluate(params: Any, state: Any, *, step: int, previous: Any = None) -> None:
        """The method's ``output`` hook on the clock, then the point measured and judged, off it."""
        nonlocal last_evaluated
        last_evaluated = step
        point = params
        if state is not NO_STATE and program.has_output:
            point = clock.output(program, params, state)
        now = collective.max([clock.timed_s])[0]  # the slowest rank's clock
        stop = collective.decide(lambda: evaluator(point, params, state, step=step, previous=previous, clock=now))
        if stop is not None:
            raise _Stop(*stop)

    status, error = Status.COMPLETED, None
    try:
        evaluate(params, NO_STATE, step=0)
        state = NO_STATE
        previous = None  # the iterate before the last complete step (probes measure that step)
        try:
            state = clock.init(program, params)
            for step in range(1, budget.steps + 1):
                start = params
                params, state = clock.step(program, params, state)
                previous, steps = start, step
                if step % every == 0 or step == budget.steps:
                    evaluate(params, state, step=step, previous=previous)
                over = time.perf_counter() - started > budget.seconds
                if collective.max([float(over)])[0] > 0:  # every rank stops at the same step
                    if last_evaluated != step:
                        evaluate(params, state, step=step, previous=previous)
                    raise _Stop(Status.TIMEOUT, f"time budget of {budget.seconds:g} s exhausted after {step} steps")
        except OracleBudgetExceeded:
            # The budget ran out inside a step (or init): the last complete iterate is the result.
            if last_evaluated != steps:
                evaluate(params, state, step=steps, previous=previous)
    except _Stop as stop:
        status, error = stop.status, stop.error
    except Exception as exc:  # noqa: BLE001 - every failure of user code is recorded, never raised
        status, error = failure(exc)
    return Outcome(status=status, error=error, steps=steps, values=dict(evaluator.values), reached=evaluator.reached,
                   trace=evaluator.trace, eval_s=evaluator.eval_s)


def failure(exc: BaseException) -> tuple[Status, str]:
    """The status (``oom`` or ``error``) and error text (the traceback's tail) of a run that raised ``exc``."""
    text = "".join(traceback.format_exception(exc))
    return (Status.OOM if is_out_of_memory(exc) else Status.ERROR,
            text if len(text) <= _ERROR_CHARS else "...\n" + text[-_ERROR_CHARS:])
