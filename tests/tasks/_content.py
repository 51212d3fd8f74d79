"""Helpers of the content tests: read catalog YAML, import entry points, build and drive runs.

Deliberately small and independent of ``harness.catalog`` (tested on its own): YAML is read
with plain ruamel.yaml (YAML 1.2) and validated by the spec models; a ``file.py:attr`` entry
is imported by file path, the way the catalog loads modules beside a YAML file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ruamel.yaml import YAML

from harness.backends import make_backend
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


def _read(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


@functools.cache
def load_task(family: str, task_id: str) -> tuple[TaskSpec, Path]:
    """The validated task ``tasks/<family>/<task_id>.yaml`` and its path."""
    path = REPO / "tasks" / family / f"{task_id}.yaml"
    return TaskSpec.model_validate(_read(path)), path


@functools.cache
def load_method(family: str, method_id: str) -> tuple[MethodSpec, Path]:
    """The validated method ``methods/<family>/<method_id>.yaml`` and its path."""
    path = REPO / "methods" / family / f"{method_id}.yaml"
    return MethodSpec.model_validate(_read(path)), path


@functools.cache
def _module_at(path: Path) -> Any:
    # One module object per file, so module-level caches (data, f*) persist across tests.
    name = "_content_" + hashlib.sha1(str(path).encode()).hexdigest()[:12] + "_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_entry(entry: str, yaml_path: Path) -> Any:
    """Resolve ``module:attr``; a module ending in ``.py`` is a file beside ``yaml_path``."""
    module, _, attr = entry.partition(":")
    if module.endswith(".py"):
        return getattr(_module_at((yaml_path.parent / module).resolve()), attr)
    return getattr(importlib.import_module(module), attr)


@functools.cache
def backend(framework: str) -> Any:
    """One float64 CPU backend per framework."""
    return make_backend(framework, dtype="float64")


@functools.cache
def _problem(family: str, task_id: str, framework: str, overrides: tuple[tuple[str, Any], ...]) -> Any:
    task, path = load_task(family, task_id)
    cls = load_entry(task.implementations[framework], path)
    return cls(backend=backend(framework), **task.resolve_parameters(dict(overrides)))


def make_problem(family: str, task_id: str, framework: str, **overrides: Any) -> Any:
    """The task's problem (cached: building it again would only recompile and re-read data)."""
    return _problem(family, task_id, framework, tuple(sorted(overrides.items())))


def make_oracle(family: str, task_id: str, problem: Any, framework: str) -> Any:
    """A fresh counting oracle with the task's declared capabilities."""
    task, _ = load_task(family, task_id)
    return backend(framework).make_oracle(problem, capabilities=frozenset(task.provides))


def make_method(family: str, method_id: str, framework: str, **overrides: Any) -> Any:
    """Build a method the way the harness does: a library optimizer or an entry factory."""
    method, path = load_method(family, method_id)
    values = method.resolve_hyperparameters(overrides)
    impl = method.implementations[framework]
    if impl.entry is not None:
        return load_entry(impl.entry, path)(**values)
    return backend(framework).library_method(impl.optimizer, method.optimizer_kwargs(framework, values))


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
