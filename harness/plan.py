"""The matrix: a suite expanded to runs, each keyed by a content hash.

task x task parameters x method x hyperparameters x framework x hardware x seed -> :class:`RunSpec`.
Only compatible (task, method, framework) triples become runs; every other pair is listed in
:attr:`Plan.skipped` with the reason.

A run id covers everything that determines the run's result: the resolved parameters above,
the declarations of its task, method and hardware profile (less their cosmetic fields, see
:func:`run_identity`) and the source of the catalog modules the run loads (the module file
and the catalog-local files it imports). The harness's own code is not hashed: its version
and commit are stored with every run instead. :func:`stale_implementation` tells whether
what is on disk now still matches a run's id.

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
from harness.spec import (
    Budget,
    Framework,
    HardwareProfile,
    MethodSpec,
    ProbeRef,
    Scalar,
    Spec,
    SuiteEntry,
    SuiteSpec,
    TaskSpec,
)

__all__ = [
    "ADHOC_SEEDS",
    "ADHOC_SUITE",
    "COSMETIC_FIELDS",
    "FRAMEWORKS",
    "Plan",
    "RunSpec",
    "Skip",
    "adhoc_suite",
    "content_digest",
    "make_plan",
    "parse_overrides",
    "run_identity",
    "stale_implementation",
]

#: Version of what a run id hashes (bumped when that content changes form). Kept apart from the
#: store's layout (``harness.store.SCHEMA_VERSION``): a store migrated to a new layout holds the
#: same runs under the same ids, so a bench after ``harness compact`` redoes none of them.
RUN_ID_VERSION = 2

#: Every framework, in the order plans list them.
FRAMEWORKS: tuple[str, ...] = Framework.__args__  # type: ignore[attr-defined]

#: Declaration fields that describe and never change a result: left out of run ids.
COSMETIC_FIELDS = frozenset({"name", "family", "paper", "description", "notes"})

#: The suite name of ``harness bench --task T --method M`` without ``--suite``.
ADHOC_SUITE = "ad-hoc"
#: Its seeds, 0..N-1, unless ``--seeds`` says otherwise.
ADHOC_SEEDS = 3


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
    declarations: dict[str, str] = Field(
        default_factory=dict, description="'task', 'method', 'hardware' -> digest of what of that declaration shapes the result."
    )
    code: dict[str, str] = Field(
        default_factory=dict, description="'task/<file>' or 'method/<file>' -> digest of each catalog-local file the run loads."
    )

    @property
    def run_id(self) -> str:
        """16 hex digits of the SHA-256 of the run's content (the suite name excluded).

        The content includes :attr:`declarations` and :attr:`code`, which :func:`make_plan`
        fills in: a run made by hand without them identifies its parameters only.
        """
        return self._digest(exclude={"suite"})

    @property
    def program_key(self) -> str:
        """:attr:`run_id`'s digest less the seed, budget and probes: what the run's method and problem are built from.

        Runs that share it build the same problem (a task is a deterministic function of its
        parameters) and, for a library optimizer, the same method: a backend may reuse the
        program it compiled for one of them (:class:`harness.backends.jax.JitProgram`).
        """
        return self._digest(exclude={"suite", "seed", "budget", "probes"})

    def _digest(self, *, exclude: set[str]) -> str:
        return content_digest(self.model_dump(mode="json", exclude=exclude) | {"schema_version": RUN_ID_VERSION})

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
    """The runs of a suite, in a stable order, the combinations skipped, and filters that matched nothing."""

    suite: str
    runs: list[RunSpec] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def why_empty(self) -> str:
        """Why the plan has no runs, in one line (filters that match nothing, pairs skipped)."""
        reasons = list(self.unmatched)
        if self.skipped:
            shown = [f"{s.task} x {s.method} ({s.framework}): {s.reason}" for s in self.skipped[:_SHOWN_SKIPS]]
            more = len(self.skipped) - len(shown)
            reasons.append("every pair is skipped: " + "; ".join(shown) + (f"; and {more} more" if more > 0 else ""))
        if not reasons:
            reasons.append(f"no entry of suite {self.suite!r} combines the selected tasks, methods and frameworks")
        return "; ".join(reasons)


_SHOWN_SKIPS = 5


def run_identity(
    catalog: Catalog, *, task: str, method: str, framework: str, hardware: str
) -> tuple[dict[str, str], dict[str, str]]:
    """What a run's id covers beyond its parameters: ``(declarations, code)`` digests.

    ``declarations`` digests, per kind, what of the task, method and hardware declarations can
    change the result: every field but :data:`COSMETIC_FIELDS` and those the run holds
    resolved already (task ``parameters``, ``budget``, ``probes``; method ``hyperparameters``),
    less what only decides which pairs are planned (method ``requires``, ``requires_when``)
    and other frameworks' implementations. ``code`` digests each catalog-local file the run
    loads (the task's and the method's modules of ``framework`` and what they import).
    """
    task_entry, method_entry = catalog.tasks[task], catalog.methods[method]
    task_spec, method_spec = task_entry.spec, method_entry.spec
    hardware_spec: HardwareProfile = catalog.hardware[hardware].spec
    declarations = {
        "task": content_digest(_task_content(task_spec, framework)),
        "method": content_digest(_method_content(method_spec, framework)),
        "hardware": content_digest(hardware_spec.model_dump(mode="json", exclude=COSMETIC_FIELDS)),
    }
    code = {f"task/{f}": d for f, d in task_entry.digests(task_spec.implementations[framework]).items()}
    entry = method_spec.implementations[framework].entry
    if entry is not None:
        code |= {f"method/{f}": d for f, d in method_entry.digests(entry).items()}
    return declarations, code


def stale_implementation(run: RunSpec, catalog: Catalog) -> str | None:
    """Why ``run``'s id no longer describes what would run, in one line; ``None`` when it still does.

    Compares the declarations and catalog-local code that ``catalog`` and the disk hold now
    with those ``run``'s id was computed on (a file edited after the plan was made, a worker
    with another checkout). A run made without them (:attr:`RunSpec.declarations` empty)
    has nothing to compare: ``None``.
    """
    if not run.declarations:
        return None
    try:
        declarations, code = run_identity(
            catalog, task=run.task, method=run.method, framework=run.framework, hardware=run.hardware
        )
    except (KeyError, OSError) as exc:
        return f"cannot check the run's implementation: {exc}"
    owners = {"task": run.task, "method": run.method, "hardware": run.hardware}
    for kind, digest in declarations.items():
        if run.declarations.get(kind) != digest:
            path = _table(catalog, kind)[owners[kind]].path
            return f"the declaration of {kind} {owners[kind]!r} ({path}) changed after run {run.run_id} was planned"
    for key in sorted(set(code) | set(run.code)):
        if code.get(key) != run.code.get(key):
            kind, _, file = key.partition("/")
            change = "is new" if key not in run.code else "is gone" if key not in code else "changed"
            where = _table(catalog, kind)[owners[kind]].path.parent / file
            return f"{where} ({kind} {owners[kind]!r}) {change} since run {run.run_id} was planned"
    return None


def _table(catalog: Catalog, kind: str) -> Mapping[str, Any]:
    return {"task": catalog.tasks, "method": catalog.methods, "hardware": catalog.hardware}[kind]


def _task_content(task: TaskSpec, framework: str) -> dict[str, Any]:
    content = task.model_dump(mode="json", exclude=COSMETIC_FIELDS | {"parameters", "budget", "probes", "implementations"})
    content["implementation"] = task.implementations[framework]
    content["metrics"] = [{k: v for k, v in m.items() if k != "description"} for m in content["metrics"]]
    return content


def _method_content(method: MethodSpec, framework: str) -> dict[str, Any]:
    content = method.model_dump(
        mode="json", exclude=COSMETIC_FIELDS | {"hyperparameters", "requires", "requires_when", "implementations"}
    )
    content["implementation"] = method.implementations[framework].model_dump(mode="json")
    return content


def content_digest(content: Any) -> str:
    """16 hex digits of the SHA-256 of ``content`` (JSON values) in canonical JSON: run ids, declaration digests, study ids."""
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def adhoc_suite(
    catalog: Catalog, *, tasks: Sequence[str] = (), methods: Sequence[str] = (), seeds: int = ADHOC_SEEDS
) -> SuiteSpec:
    """The suite of ``harness bench --task T --method M`` without ``--suite``.

    Every given task (every task of the catalog when none is) with every given method
    (likewise), at their declared parameters and hyperparameters, on the ``cpu`` profile,
    seeds ``0..seeds-1``, in every framework that both the task and the method implement
    (a pair with none in common is planned in both's frameworks, so the plan says why it
    is skipped).

    Raises
    ------
    KeyError
        For an unknown task or method id, naming the known ones.
    """
    for kind, ids in (("task", tasks), ("method", methods)):
        for spec_id in ids:
            catalog.get(kind, spec_id)
    entries = []
    for task_id in tasks or sorted(catalog.tasks):
        task_fw = catalog.tasks[task_id].spec.implementations
        for method_id in methods or sorted(catalog.methods):
            method_fw = catalog.methods[method_id].spec.implementations
            common = tuple(f for f in FRAMEWORKS if f in task_fw and f in method_fw)
            either = tuple(f for f in FRAMEWORKS if f in task_fw or f in method_fw)
            entries.append(SuiteEntry(tasks=(task_id,), methods=(method_id,), frameworks=common or either))
    return SuiteSpec(
        id=ADHOC_SUITE,
        description="harness bench --task/--method without --suite: declared defaults",
        seeds=tuple(range(seeds)),
        frameworks=FRAMEWORKS,
        hardware=("cpu",),
        entries=tuple(entries),
    )


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
    A ``tasks``/``methods``/``frameworks`` filter that names nothing of the suite is listed
    in :attr:`Plan.unmatched`. Every run carries its :func:`run_identity`.
    """
    spec = catalog.get("suite", suite).spec if isinstance(suite, str) else suite
    for kind, ids in (("task", tasks), ("method", methods), ("hardware", hardware)):
        for spec_id in ids:
            catalog.get(kind, spec_id)  # unknown ids fail early, naming the known ones
    plan = Plan(suite=spec.id)
    used: set[str] = set()
    seed_list = tuple(range(seeds)) if seeds is not None else spec.seeds
    identities: dict[tuple[str, str, str, str], tuple[dict[str, str], dict[str, str]]] = {}
    for entry in spec.entries:
        for run in _expand(catalog, spec, entry, tasks, methods, frameworks, hardware or spec.hardware,
                           seed_list, overrides or {}, used, plan):
            key = (run.task, run.method, run.framework, run.hardware)
            if key not in identities:
                identities[key] = run_identity(catalog, task=run.task, method=run.method,
                                               framework=run.framework, hardware=run.hardware)
            declarations, code = identities[key]
            plan.runs.append(run.model_copy(update={"declarations": declarations, "code": code}))
    for kind, wanted, listed in (
        ("task", tasks, {t for e in spec.entries for t in e.tasks}),
        ("method", methods, {m for e in spec.entries for m in e.methods}),
        ("framework", frameworks, {f for e in spec.entries for f in (e.frameworks or spec.frameworks)}),
    ):
        for spec_id in wanted:
            if spec_id not in listed:
                plan.unmatched.append(f"{kind} {spec_id!r} is not in suite {spec.id!r} (it has: {', '.join(sorted(listed))})")
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
                for point in entry.hyperparameter_grid(method_id):
                    hp = point | _pick(overrides, method.id, method.hyperparameters, used)
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
