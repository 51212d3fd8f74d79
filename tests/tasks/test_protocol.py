"""The task protocol, for every catalog task: one problem class for both frameworks, its parameters
from the YAML only, and module code that never imports torch or jax.

- both ``implementations`` name the same class, and the module defines no per-framework subclass;
- the constructor takes ``backend`` and exactly the YAML's parameters, keyword-only, without
  defaults (the harness always passes every one: ``problem_cls(backend=..., **task_params)``);
- no function or method of the module has a default for a task parameter: helpers take them
  explicitly;
- the module imports neither torch nor jax (the backends own the framework: jit, detach, dtype,
  index conversion), so the numpy reference of ``f*`` stays independent of both;
- a problem built in each framework answers ``loss`` on its own ``init_params`` the same.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import REPO, backend, load_entry  # noqa: E402

from harness.catalog import Catalog  # noqa: E402

FRAMEWORKS = ("torch", "jax")
TASKS = sorted(Catalog.load(builtin=False, roots=[REPO]).tasks.values(), key=lambda e: e.spec.id)
IDS = [entry.spec.id for entry in TASKS]


@pytest.mark.parametrize("entry", TASKS, ids=IDS)
def test_one_class_for_both_frameworks(entry) -> None:
    classes = {load_entry(entry.spec.implementations[fw], entry.path) for fw in FRAMEWORKS}
    assert len(classes) == 1, f"{entry.spec.id}: {entry.spec.implementations}"
    module = sys.modules[next(iter(classes)).__module__]
    per_framework = [name for name, value in vars(module).items()
                     if isinstance(value, type) and value.__module__ == module.__name__
                     and name.endswith(("Torch", "Jax"))]
    assert per_framework == []


@pytest.mark.parametrize("entry", TASKS, ids=IDS)
def test_parameters_come_from_the_yaml_only(entry) -> None:
    cls = load_entry(entry.spec.implementations["torch"], entry.path)
    parameters = dict(inspect.signature(cls).parameters)
    assert parameters.pop("backend").kind is inspect.Parameter.KEYWORD_ONLY
    assert set(parameters) == set(entry.spec.parameters)
    for name, p in parameters.items():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty, name
    # Nowhere in the module a default for a task parameter (helpers take them explicitly).
    source = Path(inspect.getfile(cls)).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            with_default = positional[len(positional) - len(args.defaults):] if args.defaults else []
            with_default += [a for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            defaulted = {a.arg for a in with_default} & set(entry.spec.parameters)
            assert not defaulted, f"{node.name}() has defaults for the task parameters {sorted(defaulted)}"


@pytest.mark.parametrize("entry", TASKS, ids=IDS)
def test_the_module_never_imports_a_framework(entry) -> None:
    path = entry.path.parent / entry.spec.implementations["torch"].partition(":")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.partition(".")[0])
    assert not imported & {"torch", "jax", "jaxlib", "optax"}


@pytest.mark.parametrize("entry", TASKS, ids=IDS)
def test_both_frameworks_build_the_same_problem(entry) -> None:
    cls = load_entry(entry.spec.implementations["torch"], entry.path)
    parameters = entry.spec.resolve_parameters({})
    values = {}
    for framework in FRAMEWORKS:
        b = backend(framework)
        problem = cls(backend=b, **parameters)
        x = problem.init_params(0)
        values[framework] = (np.asarray(b.to_numpy(x), dtype=np.float64), float(problem.loss(x)), problem.f_star)
    (x_t, loss_t, f_t), (x_j, loss_j, f_j) = values["torch"], values["jax"]
    np.testing.assert_array_equal(x_t, x_j)
    assert f_t == f_j
    assert loss_t == pytest.approx(loss_j, rel=1e-6 if entry.spec.dtype == "float32" else 1e-13)
