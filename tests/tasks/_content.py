"""Helpers of the content tests: read catalog YAML, import entry points, build and drive runs.

Declarations are read and entry points resolved by ``harness.catalog`` (one declaration file
at a time, so a test depends only on the files it names), and methods are built by
``harness.run.build_method``: the tests see tasks and methods exactly as a run does, and share
its module objects (so module-level caches of data and ``f*`` persist across tests).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from harness.backends import make_backend
from harness.catalog import Catalog, Entry, resolve_entry_point
from harness.run import build_method
from harness import sealed as sealing
from harness.spec import MethodSpec, TaskSpec

__all__ = [
    "REPO",
    "backend",
    "load_entry",
    "load_method",
    "load_task",
    "make_method",
    "make_oracle",
    "make_problem",
    "rel_diff",
    "run_method",
]

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def _catalog(kind_dir: str, family: str, spec_id: str) -> Catalog:
    """A catalog of the one declaration ``<kind_dir>/<family>/<spec_id>.yaml`` (validated by ``Catalog.load``)."""
    return Catalog.load(files=[REPO / kind_dir / family / f"{spec_id}.yaml"], builtin=False)


def _task_entry(family: str, task_id: str) -> Entry[TaskSpec]:
    return _catalog("tasks", family, task_id).tasks[task_id]


def load_task(family: str, task_id: str) -> tuple[TaskSpec, Path]:
    """The validated task ``tasks/<family>/<task_id>.yaml`` and its path."""
    entry = _task_entry(family, task_id)
    return entry.spec, entry.path


def load_method(family: str, method_id: str) -> tuple[MethodSpec, Path]:
    """The validated method ``methods/<family>/<method_id>.yaml`` and its path."""
    entry = _catalog("methods", family, method_id).methods[method_id]
    return entry.spec, entry.path


def load_entry(entry: str, yaml_path: Path) -> Any:
    """Resolve ``module:attr``; a module ending in ``.py`` is a file beside ``yaml_path``."""
    return resolve_entry_point(entry, relative_to=yaml_path.parent)


@functools.cache
def backend(framework: str) -> Any:
    """One float64 CPU backend per framework."""
    return make_backend(framework, dtype="float64")


@functools.cache
def _problem(family: str, task_id: str, framework: str, overrides: tuple[tuple[str, Any], ...]) -> Any:
    entry = _task_entry(family, task_id)
    cls = entry.resolve(entry.spec.implementations[framework])
    return cls(backend=backend(framework), **entry.spec.resolve_parameters(dict(overrides)))


def make_problem(family: str, task_id: str, framework: str, **overrides: Any) -> Any:
    """The task's problem (cached: building it again would only recompile and re-read data)."""
    return _problem(family, task_id, framework, tuple(sorted(overrides.items())))


def make_oracle(family: str, task_id: str, problem: Any, framework: str, *, seed: int = 0, seal: bool = True) -> Any:
    """A fresh counting oracle with the task's declared capabilities.

    Sealed as a method receives it; ``seal=False`` gives the harness's own (probes use its views).
    """
    task, _ = load_task(family, task_id)
    oracle = backend(framework).make_oracle(problem, capabilities=frozenset(task.provides))
    return sealed(oracle, problem, framework, seed=seed) if seal else oracle


def sealed(oracle: Any, problem: Any, framework: str, *, seed: int = 0) -> Any:
    """``oracle`` as the harness hands it to a method: its calls and the run's facts, nothing else."""
    facts = sealing.facts_of(problem, oracle, problem.init_params(seed), seed=seed, to_numpy=backend(framework).to_numpy)
    return sealing.seal(oracle, facts)


def make_method(family: str, method_id: str, framework: str, **overrides: Any) -> Any:
    """Build a method the way the harness does: a library optimizer or an entry factory."""
    catalog = _catalog("methods", family, method_id)
    method = catalog.methods[method_id].spec
    return build_method(method, framework, method.resolve_hyperparameters(overrides), backend(framework), catalog)


def run_method(
    method: Any,
    problem: Any,
    oracle: Any,
    framework: str,
    steps: int,
    *,
    seed: int = 0,
    stop_below: float | None = None,
) -> dict[str, Any]:
    """Drive ``init`` then up to ``steps`` steps from ``problem.init_params(seed)``.

    Returns the objective after every step (``objective[0]`` at the start), the iterates as
    numpy arrays, the final state, and the first step whose suboptimality is below
    ``stop_below`` (``None`` if none; the loop stops there).
    """
    params = problem.init_params(seed)
    state = method.init(params, oracle)
    to_numpy = backend(framework).to_numpy
    iterates = [np.array(to_numpy(params))]
    objective = [problem.evaluate(params)["objective"]]
    reached = None
    for step in range(1, steps + 1):
        params, state = method.step(params, state, oracle)
        out = method.output(params, state) if hasattr(method, "output") else params
        iterates.append(np.array(to_numpy(out)))
        objective.append(problem.evaluate(out)["objective"])
        if stop_below is not None and objective[-1] - problem.f_star < stop_below:
            reached = step
            break
    return {"objective": np.array(objective), "iterates": iterates, "state": state, "reached": reached}


def rel_diff(a: Any, b: Any) -> float:
    """``max |a - b| / max(max |b|, tiny)``, over arrays or scalars."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny))
