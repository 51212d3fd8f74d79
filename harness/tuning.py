"""Tuning protocols: a study of trials per configuration, its best setting rerun on fresh seeds.

A suite with a ``tuning`` protocol (:class:`harness.spec.Tuning`) gets one study per
configuration of its plan whose method declares a search space (``search:`` in the method's
YAML): a task variant, the method with its entry's hyperparameters, a framework and a hardware
profile. A study asks Optuna's sampler for ``trials`` settings of the tuned hyperparameters
(``qmc``: scrambled Sobol points, AlgoPerf's quasirandom search; ``tpe``; ``grid``), runs each
as an ordinary run of the harness on the protocol's ``trial_seed``, selects the best on the
protocol's metric, and reruns the selected setting on the fresh seeds ``0..rerun_seeds-1``.

Trials and reruns are ordinary runs: they go through the bench's executor and store, keyed by
their run ids (a trial is the configuration's run with the drawn hyperparameters and the trial
seed), so an interrupted study resumes where it stopped: the sampler is seeded and replays the
same settings, the stored trials are read back instead of run again, and a ``tpe`` study tells
them in the same rounds (``batch`` trials each, whatever the worker count), so it asks what it
asked before. What a study found is kept in the store (``studies/<id>.json``): its trials' run
ids, settings and values, the selected trial, the reruns and the tuning cost, so a tuned result
traces back to its search.

Optuna is the sampler only: it never runs anything, and its in-memory study is rebuilt from the
store each time (the harness's store is the one record).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.plan import RunSpec, content_digest
from harness.record import NO_RESULT, Status
from harness.spec import STEPS_TO_TARGET, SearchSpace, Tuning, split_metric

__all__ = ["Study", "StudyResult", "Trial", "make_studies", "run_studies", "study_record", "tuned_against_default",
           "without_trials"]

#: The value of a trial that never reached the target when the budget has no step limit (finite: Optuna's value).
_NEVER = 1e18
#: Runs the caller executes (those not stored yet) -> every one's stored row, by run id.
Execute = Callable[[Sequence[RunSpec]], Mapping[str, Mapping[str, Any]]]


@dataclass(frozen=True)
class Study:
    """One configuration's search: the protocol, the default run it varies, and the space it draws from."""

    id: str
    protocol: Tuning
    base: RunSpec
    space: dict[str, SearchSpace]
    lower_is_better: bool

    def trial_run(self, params: Mapping[str, Any]) -> RunSpec:
        """The run of a trial: the base run with the drawn hyperparameters, on the trial seed."""
        return self.base.model_copy(update={"hyperparameters": self.base.hyperparameters | dict(params),
                                            "seed": self.protocol.trial_seed})

    def rerun(self, params: Mapping[str, Any], seed: int) -> RunSpec:
        """A rerun of the selected setting on a fresh seed."""
        return self.trial_run(params).model_copy(update={"seed": seed})


@dataclass
class Trial:
    """A trial: its number in the study, the drawn setting, its run and what it scored (``None``: failed)."""

    number: int
    params: dict[str, Any]
    run: RunSpec
    value: float | None = None
    tiebreak: float = 0.0
    status: str | None = None
    timed_s: float = 0.0
    wall_s: float = 0.0


@dataclass
class StudyResult:
    """A finished study: every trial, the selected one (``None`` when every trial failed) and its reruns."""

    study: Study
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    reruns: list[RunSpec] = field(default_factory=list)

    @property
    def tuning_s(self) -> float:
        """What the search cost on the methods' clocks: the trials' ``timed_s``, summed."""
        return float(sum(t.timed_s for t in self.trials))


def make_studies(plan_runs: Sequence[RunSpec], catalog: Any, protocol: Tuning) -> list[Study]:
    """One study per configuration of ``plan_runs`` whose method has a search space, in plan order."""
    studies: dict[str, Study] = {}
    for run in plan_runs:
        method = catalog.methods[run.method].spec
        space = method.tuned_space
        if not space:
            continue
        task = catalog.tasks[run.task].spec
        if protocol.metric == STEPS_TO_TARGET:
            lower = True
        else:
            lower = task.metric(protocol.column()).lower_is_better
        content = {
            "protocol": protocol.model_dump(mode="json"),
            "space": {name: s.model_dump(mode="json") for name, s in space.items()},
            "base": run.model_dump(mode="json", exclude={"suite", "seed"}),
        }
        study_id = content_digest(content)
        studies.setdefault(study_id, Study(study_id, protocol, run, space, lower))
    return list(studies.values())


def _distributions(space: Mapping[str, SearchSpace]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, s in space.items():
        if s.kind == "choice":
            out[name] = CategoricalDistribution(list(s.values or ()))
        elif s.kind == "int":
            out[name] = IntDistribution(int(s.low), int(s.high))
        else:
            out[name] = FloatDistribution(float(s.low), float(s.high), log=s.kind == "log_uniform")
    return out


def _grid(space: Mapping[str, SearchSpace], trials: int) -> dict[str, list[Any]]:
    """The grid sampler's points: ``choice`` values as given, ranges at about ``trials ** (1/dims)`` points each."""
    per_axis = max(2, round(trials ** (1 / max(1, sum(s.kind != "choice" for s in space.values())))))
    grid: dict[str, list[Any]] = {}
    for name, s in space.items():
        if s.kind == "choice":
            grid[name] = list(s.values or ())
        elif s.kind == "int":
            grid[name] = sorted({int(round(v)) for v in np.linspace(s.low, s.high, per_axis)})
        elif s.kind == "log_uniform":
            grid[name] = [float(v) for v in np.geomspace(s.low, s.high, per_axis)]
        else:
            grid[name] = [float(v) for v in np.linspace(s.low, s.high, per_axis)]
    return grid


def _sampler(study: Study) -> Any:
    import optuna

    protocol = study.protocol
    if protocol.sampler == "qmc":
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=protocol.seed,
                                          warn_independent_sampling=False, warn_asynchronous_seeding=False)
    if protocol.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=protocol.seed)
    return _grid_sampler()(_grid(study.space, protocol.trials), seed=protocol.seed)


def _grid_sampler() -> type:
    """Optuna's grid sampler, fit for ask-and-tell (a class made on first use: optuna is imported lazily)."""
    import optuna

    class AskTellGrid(optuna.samplers.GridSampler):
        """Optuna's grid sampler for ask-and-tell: its ``after_trial`` calls ``study.stop()`` once the grid is
        exhausted, which raises outside ``study.optimize``; the harness asks no more trials than the grid has."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return AskTellGrid


def _trial_count(study: Study) -> int:
    if study.protocol.sampler != "grid":
        return study.protocol.trials
    return min(study.protocol.trials, math.prod(len(v) for v in _grid(study.space, study.protocol.trials).values()))


def _score(study: Study, row: Mapping[str, Any] | None) -> tuple[float | None, float]:
    """A trial's value (lower is better; ``None``: failed) and its tie-break (the target metric, signed)."""
    if row is None or row.get("status") in (*NO_RESULT, Status.DIVERGED):
        return None, 0.0
    protocol = study.protocol
    if protocol.metric == STEPS_TO_TARGET:
        metric = row.get("target_metric")
        declared = json.loads(row.get("metrics") or "{}").get(metric, {})
        final = row.get(metric)
        sign = 1.0 if declared.get("lower_is_better", True) else -1.0
        tiebreak = sign * float(final) if final is not None and math.isfinite(float(final)) else math.inf
        steps = row.get(STEPS_TO_TARGET)
        # Never reached: after every trial that did (past the step budget), closest final value first.
        never = float(study.base.budget.steps) + 1.0 if study.base.budget.steps else _NEVER
        return (float(steps) if steps is not None else never), tiebreak
    value = row.get(protocol.column())
    if value is None or not math.isfinite(float(value)):
        return None, 0.0
    return (float(value) if study.lower_is_better else -float(value)), 0.0


def run_studies(studies: Sequence[Study], execute: Execute, *,
                on_study: Callable[[StudyResult], None] | None = None) -> list[StudyResult]:
    """Run every study's trials in rounds, select, rerun; ``execute`` runs what is not stored.

    A round asks each unfinished study for its next trials (all of them for ``qmc`` and ``grid``,
    ``batch`` for ``tpe``), runs them together (the executor's workers share the round), and
    tells each study its values. Then the selected settings of every study are rerun together.
    ``on_study`` is called with each finished result (the caller keeps its record).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    state = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for study in studies:
            sampled = optuna.create_study(direction="minimize", sampler=_sampler(study))
            state.append((study, sampled, StudyResult(study), _distributions(study.space)))
        while True:
            asked: list[tuple[Study, Any, Any, Trial]] = []
            for study, sampled, result, distributions in state:
                left = _trial_count(study) - len(result.trials)
                for _ in range(left if study.protocol.sampler != "tpe" else min(left, study.protocol.batch)):
                    handle = sampled.ask(distributions)
                    params = {name: _plain(handle.params[name]) for name in study.space}
                    trial = Trial(len(result.trials), params, study.trial_run(params))
                    result.trials.append(trial)
                    asked.append((study, sampled, handle, trial))
            if not asked:
                break
            rows = execute([trial.run for *_, trial in asked])
            for study, sampled, handle, trial in asked:
                row = rows.get(trial.run.run_id)
                trial.value, trial.tiebreak = _score(study, row)
                if row is not None:
                    trial.status = row.get("status")
                    trial.timed_s, trial.wall_s = float(row.get("timed_s") or 0.0), float(row.get("wall_s") or 0.0)
                if trial.value is None:
                    sampled.tell(handle, state=optuna.trial.TrialState.FAIL)
                else:
                    sampled.tell(handle, trial.value)
    results = [result for _, _, result, _ in state]
    for result in results:
        scored = [t for t in result.trials if t.value is not None]
        if scored:
            result.best = min(scored, key=lambda t: (t.value, t.tiebreak, t.number))
            result.reruns = [result.study.rerun(result.best.params, seed)
                             for seed in range(result.study.protocol.rerun_seeds)]
    reruns = [run for result in results for run in result.reruns]
    if reruns:  # none when every trial of every study failed
        execute(reruns)
    for result in results:
        if on_study is not None:
            on_study(result)
    return results


def _plain(value: Any) -> Any:
    """A sampled value as a plain Python scalar (numpy's are not JSON, nor a run id's content)."""
    return value.item() if isinstance(value, np.generic) else value


def study_record(result: StudyResult) -> dict[str, Any]:
    """What the store keeps of a finished study (JSON): enough to trace a tuned result to its search."""
    study = result.study
    base = study.base
    return {
        "study": study.id,
        "suite": base.suite,
        "task": base.task,
        "task_params": base.task_params,
        "method": base.method,
        "framework": base.framework,
        "hardware": base.hardware,
        "default_hyperparameters": base.hyperparameters,
        "protocol": study.protocol.model_dump(mode="json"),
        "column": study.protocol.column(),
        "lower_is_better": study.lower_is_better,
        "space": {name: s.model_dump(mode="json", exclude_none=True) for name, s in study.space.items()},
        "trials": [{"number": t.number, "run_id": t.run.run_id, "params": t.params, "value": t.value,
                    "status": t.status, "timed_s": t.timed_s, "wall_s": t.wall_s} for t in result.trials],
        "selected": None if result.best is None else result.best.number,
        "selected_params": None if result.best is None else result.best.params,
        "reruns": [run.run_id for run in result.reruns],
        "rerun_seeds": [run.seed for run in result.reruns],
        "tuning_s": result.tuning_s,
        "tuning_wall_s": float(sum(t.wall_s for t in result.trials)),
    }


def tuned_against_default(records: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per study: its search (trials, selected setting, tuning cost) and its reruns beside the default runs.

    ``records`` are :func:`study_record` dicts, ``rows`` the store's run rows (wide). The default
    runs are the study's configuration at its declared (or entry) hyperparameters on any seed but
    the trial seed; the tuned ones its reruns. ``target`` is the median over seeds of the task's
    target metric, ``reached`` how many runs reached the target.
    """
    by_id = {row["run_id"]: row for row in rows}
    out = []
    for record in records:
        config = (record["suite"], record["task"], record["method"], record["framework"], record["hardware"])
        trial_seed = record["protocol"]["trial_seed"]
        defaults = [row for row in rows
                    if (row["suite"], row["task"], row["method"], row["framework"], row["hardware"]) == config
                    and json.loads(row["task_params"]) == record["task_params"]
                    and json.loads(row["hyperparameters"]) == record["default_hyperparameters"]
                    and row["seed"] != trial_seed]
        reruns = [by_id[run_id] for run_id in record["reruns"] if run_id in by_id]
        failed = sum(t["value"] is None for t in record["trials"])
        protocol = record["protocol"]
        # Selected on validation, reported on test: the metric on the split nobody selected on.
        test = split_metric("test", protocol["metric"]) if protocol.get("split") == "validation" else None
        out.append({
            "task": record["task"], "task_params": record["task_params"], "method": record["method"],
            "framework": record["framework"], "hardware": record["hardware"], "sampler": protocol["sampler"],
            "trials": len(record["trials"]), "failed_trials": failed, "selected": record["selected_params"],
            "tuning_s": record["tuning_s"], "test_metric": test,
            **_outcome("tuned", reruns, test), **_outcome("default", defaults, test),
        })
    return out


def _median(values: Sequence[Any]) -> float | None:
    values = [float(v) for v in values if v is not None]
    return float(np.median(values)) if values else None


def _outcome(prefix: str, rows: Sequence[Mapping[str, Any]], test: str | None) -> dict[str, Any]:
    return {
        f"{prefix}_runs": len(rows),
        f"{prefix}_reached": sum(r.get("status") == Status.REACHED_TARGET for r in rows),
        f"{prefix}_target": _median([r.get(r["target_metric"]) for r in rows if r.get("target_metric")]),
        f"{prefix}_steps_to_target": _median([r.get("steps_to_target") for r in rows]),
        f"{prefix}_test": _median([r.get(test) for r in rows]) if test else None,
    }


def without_trials(runs: Any, studies: Sequence[Mapping[str, Any]]) -> Any:
    """``runs`` (a polars frame, lazy or not) less the studies' trials: a search, not results (reruns stay)."""
    if not studies:
        return runs
    import polars as pl

    reruns = {run_id for record in studies for run_id in record["reruns"]}
    trials = {t["run_id"] for record in studies for t in record["trials"]} - reruns
    return runs.filter(~pl.col("run_id").is_in(sorted(trials)))
