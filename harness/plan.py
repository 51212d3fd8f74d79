"""The matrix: a suite expanded to runs, each keyed by a content hash.

task x task parameters x method x hyperparameters x framework x hardware x seed -> :class:`RunSpec`.
Only compatible (task, method, framework) triples become runs; every other pair is listed in
:attr:`Plan.skipped` with the reason.

Examples
--------
>>> from harness.catalog import Catalog
>>> plan = make_plan(Catalog.load(), suite="quick")  # doctest: +SKIP
>>> plan.runs[0].run_id  # doctest: +SKIP
'3f1c0a9e2b7d4c55'
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from harness.catalog import Catalog
from harness.spec import Budget, Framework, ProbeRef, Scalar, Spec, SuiteEntry, SuiteSpec
from harness.store import SCHEMA_VERSION

__all__ = ["Plan", "RunSpec", "Skip", "make_plan", "parse_overrides"]


class RunSpec(Spec):
    """Everything that defines one run; its hash is the run id."""

    suite: str
    task: str
    task_params: dict[str, Scalar] = Field(default_factory=dict)
    method: str
    hyperparameters: dict[str, Scalar] = Field(default_factory=dict)
    framework: Framework
    hardware: str
    seed: int
    budget: Budget
    probes: tuple[ProbeRef, ...] = ()

    @property
    def run_id(self) -> str:
        """16 hex digits of the SHA-256 of the run's content (the suite name excluded)."""
        content = self.model_dump(mode="json", exclude={"suite"})
        content["schema_version"] = SCHEMA_VERSION
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short human-readable name of the run."""
        params = ",".join(f"{k}={v}" for k, v in sorted(self.task_params.items()))
        return f"{self.task}[{params}] / {self.method} / {self.framework} / {self.hardware} / seed {self.seed}"


@dataclass(frozen=True)
class Skip:
    """A (task, method, framework) combination of the suite that is not run, and why."""

    task: str
    method: str
    framework: str
    reason: str


@dataclass
class Plan:
    """The runs of a suite, in a stable order, and the combinations skipped."""

    suite: str
    runs: list[RunSpec] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def parse_overrides(items: Sequence[str]) -> dict[str, Scalar]:
    """Parse ``--set`` items ``[ID.]NAME=VALUE``; values are YAML scalars.

    Examples
    --------
    >>> parse_overrides(["lr=0.5", "logreg.dataset=digits"])
    {'lr': 0.5, 'logreg.dataset': 'digits'}
    """
    from harness.yamlio import DeclarationError, parse_text

    out: dict[str, Scalar] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE or ID.NAME=VALUE")
        try:
            value = parse_text(text or "''", path="--set").data
        except DeclarationError as exc:
            raise ValueError(f"--set {item!r}: {exc}") from None
        if not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"--set {item!r}: the value must be a scalar")
        out[key.strip()] = value
    return out


def make_plan(
    catalog: Catalog,
    *,
    suite: str | SuiteSpec,
    tasks: Sequence[str] = (),
    methods: Sequence[str] = (),
    frameworks: Sequence[str] = (),
    hardware: Sequence[str] = (),
    seeds: int | None = None,
    overrides: Mapping[str, Scalar] | None = None,
) -> Plan:
    """Expand ``suite`` (filtered by ``tasks``/``methods``/``frameworks``) into runs.

    ``hardware`` and ``seeds`` replace the suite's; ``overrides`` (from ``--set``) set a task
    parameter or method hyperparameter ``NAME`` everywhere it exists, or only in task or
    method ``ID`` for ``ID.NAME``. An override that matches nothing raises ``ValueError``.
    """
    spec = catalog.get("suite", suite).spec if isinstance(suite, str) else suite
    for kind, ids in (("task", tasks), ("method", methods), ("hardware", hardware)):
        for spec_id in ids:
            catalog.get(kind, spec_id)  # unknown ids fail early, naming the known ones
    plan = Plan(suite=spec.id)
    used: set[str] = set()
    seed_list = tuple(range(seeds)) if seeds is not None else spec.seeds
    for entry in spec.entries:
        for run in _expand(catalog, spec, entry, tasks, methods, frameworks, hardware or spec.hardware,
                           seed_list, overrides or {}, used, plan):
            plan.runs.append(run)
    unused = set(overrides or {}) - used
    if unused:
        raise ValueError(f"--set {', '.join(sorted(unused))}: no task parameter or method hyperparameter of this plan has that name")
    seen: set[str] = set()
    plan.runs = [r for r in plan.runs if not (r.run_id in seen or seen.add(r.run_id))]
    return plan


def _expand(
    catalog: Catalog,
    suite: SuiteSpec,
    entry: SuiteEntry,
    only_tasks: Sequence[str],
    only_methods: Sequence[str],
    only_frameworks: Sequence[str],
    hardware: Sequence[str],
    seeds: Sequence[int],
    overrides: Mapping[str, Scalar],
    used: set[str],
    plan: Plan,
) -> list[RunSpec]:
    runs = []
    frameworks = [f for f in (entry.frameworks or suite.frameworks) if not only_frameworks or f in only_frameworks]
    for task_id in entry.tasks:
        if only_tasks and task_id not in only_tasks:
            continue
        task = catalog.tasks[task_id].spec
        grid_names = list(entry.grid)
        for grid_values in itertools.product(*(entry.grid[n] for n in grid_names)):
            params = dict(zip(grid_names, grid_values))
            params.update(_pick(overrides, task.id, task.parameters, used))
            task_params = task.resolve_parameters(params)
            for method_id in entry.methods:
                if only_methods and method_id not in only_methods:
                    continue
                method = catalog.methods[method_id].spec
                hp = dict(entry.hyperparameters.get(method_id, {}))
                hp.update(_pick(overrides, method.id, method.hyperparameters, used))
                hyperparameters = method.resolve_hyperparameters(hp)
                missing = sorted(method.requirements(hyperparameters) - set(task.provides))
                for framework in frameworks:
                    reason = _incompatible(task, method, framework, missing)
                    if reason:
                        skip = Skip(task.id, method.id, framework, reason)
                        if skip not in plan.skipped:
                            plan.skipped.append(skip)
                        continue
                    for hw, seed in itertools.product(hardware, seeds):
                        runs.append(
                            RunSpec(
                                suite=suite.id,
                                task=task.id,
                                task_params=task_params,
                                method=method.id,
                                hyperparameters=hyperparameters,
                                framework=framework,
                                hardware=hw,
                                seed=seed,
                                budget=entry.budget or task.budget,
                                probes=task.probes + entry.probes,
                            )
                        )
    return runs


def _incompatible(task: Any, method: Any, framework: str, missing: list[str]) -> str | None:
    if missing:
        return f"the task does not provide {', '.join(missing)}"
    if framework not in task.implementations:
        return f"the task has no {framework} implementation"
    if framework not in method.implementations:
        return f"the method has no {framework} implementation"
    return None


def _pick(overrides: Mapping[str, Scalar], owner: str, names: Mapping[str, Any], used: set[str]) -> dict[str, Scalar]:
    """The overrides that apply to ``owner``: ``NAME`` when it has it, ``owner.NAME`` always."""
    picked = {}
    for key, value in overrides.items():
        prefix, _, name = key.rpartition(".")
        if (not prefix and name in names) or prefix == owner:
            picked[name] = value
            used.add(key)
    return picked
