"""asv benchmarks generated from a suite of the catalog (by default ``suites/asv.yaml``).

One asv class per (task, method) pair of the suite, parameterized over the stable string ids
``variant`` (the values of the task parameters that the suite sets off their defaults somewhere,
``dataset=synthetic``; ``default`` when it sets none) and ``framework``. Its benchmarks:

- ``track_final_<metric>``: the median over the suite's seeds of the final value of the task's
  target metric (lower is better; a task whose target metric is higher-is-better tracks its
  ``suboptimality``), in the metric's declared unit, floored at :data:`METRIC_FLOOR`;
- ``track_time_to_target``: the median method clock (``timed_s``) at which the target was
  reached, in seconds (tasks with a target); a seed that does not reach it fails the benchmark,
  which asv reports as a failure, so a method that stops reaching its target is a regression;
- ``track_seconds_per_step``: the median of ``timed_s / steps``;
- ``time_step``: one step of the method, as the run's clock times it (:class:`harness.run.Stepper`);
- ``peakmem_run``: the peak memory of the process running one whole run (seed of the first).

A run that fails (diverges, errors, runs out of memory) fails every ``track_*`` benchmark of
its series with its status and error.

The suite's runs are run once per ``asv run`` in the one ``setup_cache`` shared by every
class (asv keys a cache by the function's source line, so generated classes share one
anyway); each ``track_*`` reads its series from it.

Each class's ``version`` is a digest of what its numbers are defined by: the runs of its
series less the code they load (:attr:`harness.plan.RunSpec.code`), i.e. the task's, the
method's and the hardware profile's declarations (as :func:`harness.plan.run_identity` digests
them), the resolved task parameters, hyperparameters, budget, probes and seeds, and
:data:`DEFINITION_VERSION`. Editing a YAML re-baselines exactly the benchmarks that depend on
it; editing a method's or task's Python module does not: that is a change asv compares.

Examples
--------
>>> from harness.catalog import Catalog
>>> [g.class_name for g in groups(Catalog.load(), suite="asv")][:2]
['logreg__gd', 'logreg__heavy_ball']
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.backends import backend_module
from harness.catalog import Catalog
from harness.plan import RunSpec, make_plan
from harness.record import FINISHED
from harness.spec import Metric, TaskSpec

__all__ = [
    "CATALOG_ENV",
    "DEFINITION_VERSION",
    "METRIC_FLOOR",
    "HARDWARE_ENV",
    "SUITE",
    "SUITE_ENV",
    "Group",
    "SeriesFailed",
    "benchmark_classes",
    "from_environment",
    "groups",
    "summarize",
    "tracked_metric",
    "varied_parameters",
    "variant_id",
]

#: The suite the project's benchmarks are generated from.
SUITE = "asv"
#: Environment variables by which ``harness regress record`` tells the benchmark module what to
#: generate (asv runs it in processes of its own): suite id, hardware profile, extra catalog roots.
SUITE_ENV = "HARNESS_REGRESS_SUITE"
HARDWARE_ENV = "HARNESS_REGRESS_HARDWARE"
CATALOG_ENV = "HARNESS_REGRESS_CATALOG"
#: Bumped when what a generated benchmark measures changes form: every version changes with it.
DEFINITION_VERSION = 1
#: ``variant`` of a task run at its declared defaults.
DEFAULT_VARIANT = "default"
#: Final metric values below this read as it: below it lies round-off (a suboptimality of 1e-17, or -7e-18,
#: is f* to the last bits), and the ratio of two round-offs, which asv compares, is noise.
METRIC_FLOOR = 1e-12
#: asv's timing of ``time_step``: at least 3 samples, at most 10 or 1 s, 2 rounds.
STEP_REPEAT = (3, 10, 1.0)


@dataclass(frozen=True)
class Group:
    """One asv class: a (task, method) pair and its series, one per (variant, framework)."""

    task: TaskSpec
    method: str
    metric: Metric
    series: Mapping[tuple[str, str], tuple[RunSpec, ...]]
    variants: tuple[str, ...]
    frameworks: tuple[str, ...]

    @property
    def class_name(self) -> str:
        """The Python name of the class: ``<task>__<method>``, hyphens as underscores."""
        return f"{_identifier(self.task.id)}__{_identifier(self.method)}"

    @property
    def version(self) -> str:
        """16 hex digits of the SHA-256 of what the group's numbers are defined by."""
        content = {
            "definition": DEFINITION_VERSION,
            "metric": self.metric.model_dump(mode="json", exclude={"description"}),
            "series": {f"{v}/{f}": [_definition(run) for run in runs] for (v, f), runs in sorted(self.series.items())},
        }
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """The (variant, framework) combinations of the parameter grid that the suite does not run."""
        return [(v, f) for v in self.variants for f in self.frameworks if (v, f) not in self.series]


def tracked_metric(task: TaskSpec) -> Metric:
    """The metric a task's benchmarks track: its target's when lower-is-better, else its suboptimality.

    asv counts a larger number as worse and compares ratios, so the metric must be lower-is-better
    and non-negative: a suboptimality, a residual, an error.

    Raises
    ------
    ValueError
        When the task has neither.
    """
    names = [task.target.metric] if task.target is not None else []
    for name in [*names, "suboptimality"]:
        try:
            metric = task.metric(name)
        except KeyError:
            continue
        if metric.lower_is_better:
            return metric
    raise ValueError(f"task {task.id!r}: its target metric is not lower-is-better and it has no 'suboptimality': "
                     "asv compares ratios of lower-is-better numbers")


def variant_id(params: Mapping[str, Any], names: Sequence[str]) -> str:
    """The stable id of a task variant: its values of ``names``, the parameters its suite varies.

    Examples
    --------
    >>> variant_id({"dataset": "breast_cancer", "n": 1000}, ["dataset"])
    'dataset=breast_cancer'
    >>> variant_id({"dataset": "synthetic", "n": 1000}, [])
    'default'
    """
    return ",".join(f"{k}={params[k]}" for k in sorted(names)) or DEFAULT_VARIANT


def varied_parameters(task: TaskSpec, runs: Sequence[RunSpec]) -> list[str]:
    """The parameters of ``task`` that some of ``runs`` set to another value than its default."""
    defaults = task.resolve_parameters()
    return sorted({k for run in runs for k, v in run.task_params.items() if v != defaults.get(k)})


def groups(catalog: Catalog, *, suite: str = SUITE, hardware: str | None = None) -> list[Group]:
    """The suite's (task, method) pairs as benchmark groups, in plan order.

    ``hardware`` replaces the suite's profiles (it must name one when the suite has several).

    Raises
    ------
    ValueError
        For a suite with several hardware profiles and no ``hardware``, or two pairs whose
        class names collide.
    """
    spec = catalog.get("suite", suite).spec
    if hardware is None and len(spec.hardware) > 1:
        raise ValueError(f"suite {suite!r} lists hardware profiles {list(spec.hardware)}: name one (--hardware)")
    plan = make_plan(catalog, suite=suite, hardware=[hardware] if hardware else ())
    varied = {t: varied_parameters(catalog.tasks[t].spec, [r for r in plan.runs if r.task == t])
              for t in dict.fromkeys(r.task for r in plan.runs)}
    series: dict[tuple[str, str], dict[tuple[str, str], list[RunSpec]]] = {}
    for run in plan.runs:
        key = (variant_id(run.task_params, varied[run.task]), run.framework)
        series.setdefault((run.task, run.method), {}).setdefault(key, []).append(run)
    out, names = [], {}
    for (task_id, method_id), by_key in series.items():
        task = catalog.tasks[task_id].spec
        group = Group(
            task=task, method=method_id, metric=tracked_metric(task),
            series={k: tuple(v) for k, v in by_key.items()},
            variants=tuple(dict.fromkeys(v for v, _ in by_key)),
            frameworks=tuple(dict.fromkeys(f for _, f in by_key)),
        )
        if group.class_name in names:
            raise ValueError(f"{task_id} x {method_id} and {names[group.class_name]} share the benchmark class name "
                             f"{group.class_name!r}")
        names[group.class_name] = f"{task_id} x {method_id}"
        out.append(group)
    return out


def benchmark_classes(catalog: Catalog, *, module: str, suite: str = SUITE,
                      hardware: str | None = None) -> dict[str, type]:
    """asv benchmark classes for ``suite``: ``{class name: class}``, for the globals of benchmark ``module``.

    asv names a benchmark ``<module less its package>.<class>.<function>``: ``module`` is the
    ``__name__`` of the module that defines them.
    """
    found = groups(catalog, suite=suite, hardware=hardware)
    # Imported once here: asv's forkserver imports this module and forks a process per benchmark
    # from it, which then starts without seconds of framework import (importing runs no computation,
    # so no framework thread exists yet to be forked).
    for framework in sorted({f for g in found for f in g.frameworks}):
        backend_module(framework)
    cache = _SuiteCache(catalog, found)
    return {g.class_name: _make_class(g, catalog, cache, module) for g in found}


def from_environment(root: str | os.PathLike[str], *, module: str) -> dict[str, type]:
    """:func:`benchmark_classes` for benchmark ``module`` of the repository at ``root``.

    The catalog is the built-in one plus ``root`` and the roots in ``HARNESS_REGRESS_CATALOG``
    (``os.pathsep``-separated); the suite and hardware profile are ``HARNESS_REGRESS_SUITE``
    (default ``asv``) and ``HARNESS_REGRESS_HARDWARE`` (default: the suite's).
    """
    extra = [r for r in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if r]
    catalog = Catalog.load([root, *extra])
    return benchmark_classes(catalog, module=module, suite=os.environ.get(SUITE_ENV) or SUITE,
                             hardware=os.environ.get(HARDWARE_ENV) or None)


# -- what a series measured ---------------------------------------------------------------------


class SeriesFailed(RuntimeError):
    """A run of the series failed or missed its target: the benchmark has no value (asv: failed)."""


def summarize(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, Any]:
    """What the ``track_*`` benchmarks of one series read from its runs' rows (picklable).

    Examples
    --------
    >>> rows = [{"status": "reached_target", "steps": 10, "timed_s": 0.5, "time_to_target_s": 0.5,
    ...          "suboptimality": 1e-9, "seed": s, "error": None} for s in (0, 1, 2)]
    >>> summarize(rows, "suboptimality")["final"]
    1e-09
    """
    failed = [r for r in rows if r["status"] not in FINISHED]
    if failed:
        first = failed[0]
        return {"failed": f"seed {first['seed']}: {first['status']}: {first.get('error') or ''}".rstrip(": ")}
    missed = [r["seed"] for r in rows if r.get("time_to_target_s") is None]
    per_step = [r["timed_s"] / r["steps"] for r in rows if r["steps"]]
    return {
        "failed": None,
        "final": max(statistics.median(float(r[metric]) for r in rows), METRIC_FLOOR),
        "per_step": statistics.median(per_step) if per_step else None,
        "to_target": None if missed else statistics.median(float(r["time_to_target_s"]) for r in rows),
        "missed": missed,
    }


class _SuiteCache:
    """Runs every series of the suite once (the shared ``setup_cache``) and answers from the result."""

    def __init__(self, catalog: Catalog, found: Sequence[Group]) -> None:
        self.catalog = catalog
        self.found = list(found)
        self.timeout = 60.0 + sum(run.budget.seconds for g in found for runs in g.series.values() for run in runs)

    def run_all(self) -> dict[str, dict[str, dict[str, Any]]]:
        from harness.execute import execute

        out: dict[str, dict[str, dict[str, Any]]] = {}
        for group in self.found:
            for (variant, framework), runs in group.series.items():
                rows = [execute(run, self.catalog).row for run in runs]
                out.setdefault(group.class_name, {})[f"{variant}/{framework}"] = summarize(rows, group.metric.id)
        return out


def _series_value(cache: Mapping[str, Any], group: Group, variant: str, framework: str, key: str,
                  what: str) -> float:
    summary = cache[group.class_name][f"{variant}/{framework}"]
    if summary["failed"]:
        raise SeriesFailed(summary["failed"])
    if key == "to_target" and summary["missed"]:
        target = group.task.target
        raise SeriesFailed(f"seed(s) {summary['missed']} did not reach {target.metric} {target.value:g} within the budget")
    value = summary[key]
    if value is None:
        raise SeriesFailed(f"no {what}: no step was taken")
    return float(value)


def _make_class(group: Group, catalog: Catalog, cache: _SuiteCache, module: str) -> type:
    label = f"{group.task.id} / {group.method}"
    metric = group.metric

    def setup_cache(self: Any) -> dict[str, Any]:
        return cache.run_all()

    setup_cache.timeout = cache.timeout  # type: ignore[attr-defined]

    def tracker(key: str, what: str, unit: str) -> Callable[..., float]:
        def track(self: Any, results: Mapping[str, Any], variant: str, framework: str) -> float:
            return _series_value(results, group, variant, framework, key, what)

        track.unit = unit  # type: ignore[attr-defined]
        track.pretty_name = f"{label}: {what} ({unit})"  # type: ignore[attr-defined]
        return track

    steppers: dict[tuple[str, str], Any] = {}  # asv calls a benchmark's own setup unbound: no self to hold it

    def setup_step(results: Any, variant: str, framework: str) -> None:
        from harness.run import Stepper

        stepper = steppers[(variant, framework)] = Stepper(group.series[(variant, framework)][0], catalog)
        stepper.step()  # a first step off the timings (first-call caches), as a run's warm-up is

    def time_step(self: Any, results: Any, variant: str, framework: str) -> None:
        steppers[(variant, framework)].step()

    time_step.setup = setup_step  # type: ignore[attr-defined]
    time_step.repeat = STEP_REPEAT  # type: ignore[attr-defined]
    time_step.warmup_time = 0.1  # type: ignore[attr-defined]
    time_step.pretty_name = f"{label}: one step"  # type: ignore[attr-defined]

    def peakmem_run(self: Any, results: Any, variant: str, framework: str) -> None:
        from harness.execute import execute

        execute(group.series[(variant, framework)][0], catalog)

    peakmem_run.pretty_name = f"{label}: peak memory of one run"  # type: ignore[attr-defined]

    attrs: dict[str, Any] = {
        "__doc__": f"{label} on the suite's variants and frameworks (generated by harness.regress.suite).",
        "__module__": module,
        "params": [list(group.variants), list(group.frameworks)],
        "param_names": ["variant", "framework"],
        "skip_params": group.skipped,
        "version": group.version,
        "timeout": max(60.0, 2 * max(r.budget.seconds for runs in group.series.values() for r in runs)),
        "setup_cache": setup_cache,
        f"track_final_{_identifier(metric.id)}": tracker("final", f"final {metric.id}", metric.unit),
        "track_seconds_per_step": tracker("per_step", "seconds per step", "seconds"),
        "time_step": time_step,
        "peakmem_run": peakmem_run,
    }
    if group.task.target is not None:
        attrs["track_time_to_target"] = tracker("to_target", "time to target", "seconds")
    return type(group.class_name, (), attrs)


def _definition(run: RunSpec) -> dict[str, Any]:
    return run.model_dump(mode="json", exclude={"suite", "code"})


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)
