"""The task contract, as a table over the registry: every task x every framework it implements.

The cases are read from the catalog at collection time (the built-in catalog plus the engine
tests' toy catalog), so a new task is covered without editing this file. Each task runs at its
declared parameters, except where a parameter exists to make a slow default small (``SMALL``).

What a task promises (``harness.api.Problem``, its YAML):

* ``f_star`` is independent of the framework (computed without torch or jax: the same float for
  every framework's instance), is the objective at ``x_star`` where the problem has one, and is
  below every objective one can produce (the starts of 3 seeds, 20 steps of gradient descent);
  a task without ``f_star`` declares no ``suboptimality`` metric or target.
* ``evaluate`` reports exactly the declared metrics (``suboptimality`` is the harness's), as
  finite floats.
* ``provides`` is what the oracle answers: each declared call answers with its shape, counted
  once under its kind; every other capability raises ``NotImplementedError``, uncounted.
* the gradient agrees with a central finite difference of the value.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _capabilities import CALLS, ask, counted, rows, shapes

from harness.backends import make_backend
from harness.catalog import Catalog
from harness.sealed import facts_of, seal
from harness.spec import CAPABILITIES, SUBOPTIMALITY, TaskSpec, is_split_metric

TEST_CATALOG = Path(__file__).resolve().parents[1] / "catalog"
CATALOG = Catalog.load([TEST_CATALOG])

#: Smaller values of parameters whose defaults make a check slow (only those the task declares apply).
SMALL: dict[str, dict[str, Any]] = {
    # a 2550 x 2550 Hessian and Gauss-Newton matrix at the defaults (5 s in torch)
    "teacher-student": {"n": 200, "n_test": 200, "d": 10, "teacher_hidden": 4, "student_hidden": 8},
    # 23808 parameters at the defaults: every jax derivative compiles for seconds
    "modadd-grok": {"hidden": 32},
}

CASES = [(task_id, framework) for task_id, entry in CATALOG.tasks.items() for framework in entry.spec.implementations]
CASE_IDS = [f"{task_id}-{framework}" for task_id, framework in CASES]
TASKS = [task_id for task_id in CATALOG.tasks]
SEEDS = (0, 1, 2)
GD_STEPS = 20


def spec_of(task_id: str) -> TaskSpec:
    return CATALOG.tasks[task_id].spec


def parameters(task_id: str) -> dict[str, Any]:
    spec = spec_of(task_id)
    return spec.resolve_parameters({k: v for k, v in SMALL.get(task_id, {}).items() if k in spec.parameters})


@functools.cache
def backend(framework: str, dtype: str) -> Any:
    return make_backend(framework, dtype=dtype)


def problem(task_id: str, framework: str, dtype: str | None = None) -> Any:
    """The task's problem, built as a run builds it (in the task's dtype unless ``dtype`` says otherwise)."""
    return _problem(task_id, framework, dtype or spec_of(task_id).dtype)


def oracle(task_id: str, framework: str, dtype: str | None = None) -> Any:
    """One oracle per problem, with the declared capabilities (reused: jax compiles each derivative once per oracle)."""
    return _oracle(task_id, framework, dtype or spec_of(task_id).dtype)


@functools.cache
def _problem(task_id: str, framework: str, dtype: str) -> Any:
    entry = CATALOG.tasks[task_id]
    cls = entry.resolve(entry.spec.implementations[framework])
    return cls(backend=backend(framework, dtype), **parameters(task_id))


@functools.cache
def _oracle(task_id: str, framework: str, dtype: str) -> Any:
    spec = spec_of(task_id)
    return backend(framework, dtype).make_oracle(_problem(task_id, framework, dtype), capabilities=frozenset(spec.provides))


def numpy(framework: str, value: Any) -> np.ndarray:
    return np.asarray(backend(framework, "float64").to_numpy(value))


def array_type(framework: str) -> type:
    if framework == "torch":
        import torch

        return torch.Tensor
    import jax

    return jax.Array


def lower_bound(f_star: float) -> float:
    return f_star - 1e-10 * max(1.0, abs(f_star))


# -- f_star ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", TASKS)
def test_f_star_is_one_float_for_every_framework(task_id: str) -> None:
    """Computed without the framework: a plain float (not a tensor), the same exactly in torch and jax."""
    spec = spec_of(task_id)
    values = {fw: problem(task_id, fw).f_star for fw in spec.implementations}
    for framework, value in values.items():
        assert value is None or (isinstance(value, float) and math.isfinite(value)), (
            f"{task_id} ({framework}): f_star is {type(value).__name__} {value!r}, not a finite float or None")
    assert len(set(values.values())) == 1, f"{task_id}: f_star differs between frameworks: {values}"


@pytest.mark.parametrize("task_id", TASKS)
def test_a_task_without_f_star_declares_no_suboptimality(task_id: str) -> None:
    spec = spec_of(task_id)
    framework = next(iter(spec.implementations))
    ids = [m.id for m in spec.metrics]
    if problem(task_id, framework).f_star is None:
        assert SUBOPTIMALITY not in ids, f"{task_id} has no f_star but declares the metric {SUBOPTIMALITY!r}"
        assert spec.target is None or spec.target.metric != SUBOPTIMALITY, (
            f"{task_id} has no f_star but its target is {SUBOPTIMALITY!r}")
    else:
        # The harness computes suboptimality from f_star: a task with one reports it.
        assert SUBOPTIMALITY in ids, f"{task_id} has f_star but does not declare {SUBOPTIMALITY!r}"


@pytest.mark.parametrize(("task_id", "framework"), CASES, ids=CASE_IDS)
def test_f_star_is_the_objective_at_x_star(task_id: str, framework: str) -> None:
    p = problem(task_id, framework)
    if p.f_star is None or getattr(p, "x_star", None) is None:
        pytest.skip(f"{task_id} exposes no x_star")
    x_star = backend(framework, spec_of(task_id).dtype).asarray(np.asarray(p.x_star))
    objective = p.evaluate(x_star)["objective"]
    assert abs(objective - p.f_star) <= 1e-12 * max(1.0, abs(p.f_star)), (
        f"{task_id} ({framework}): objective at x_star {objective!r} != f_star {p.f_star!r}")


def _descend(task_id: str, framework: str, steps: int) -> tuple[list[float], int]:
    """Gradient descent with Armijo backtracking through the oracle; the objectives after each step."""
    p, o = problem(task_id, framework), oracle(task_id, framework)
    x = p.init_params(0)
    lr, objectives, descents = 1.0, [], 0
    for _ in range(steps):
        f, g = float(o.value(x)), o.grad(x)
        gg = float(numpy(framework, g) @ numpy(framework, g))
        while True:
            trial = x - lr * g
            f_trial = float(o.value(trial))
            if f_trial <= f - 0.5 * lr * gg or lr < 1e-12:
                break
            lr *= 0.5
        descents += f_trial < f
        x, lr = trial, lr * 2.0
        objectives.append(p.evaluate(x)["objective"])
    return objectives, descents


@pytest.mark.parametrize(("task_id", "framework"), CASES, ids=CASE_IDS)
def test_f_star_is_below_every_objective_reached(task_id: str, framework: str) -> None:
    p = problem(task_id, framework)
    if p.f_star is None:
        pytest.skip(f"{task_id} has no f_star")
    bound = lower_bound(p.f_star)
    for seed in SEEDS:
        objective = p.evaluate(p.init_params(seed))["objective"]
        assert objective >= bound, f"{task_id} ({framework}) seed {seed}: objective {objective!r} < f_star {p.f_star!r}"
    if not {"value", "grad"} <= set(spec_of(task_id).provides):
        return  # no global gradient to descend (a federated task): its methods' tests reach f_star
    objectives, descents = _descend(task_id, framework, GD_STEPS)
    assert descents >= GD_STEPS // 2, f"{task_id} ({framework}): gradient descent descended {descents}/{GD_STEPS} times"
    worst = min(objectives)
    assert worst >= bound, f"{task_id} ({framework}): gradient descent reached {worst!r} < f_star {p.f_star!r}"


# -- metrics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task_id", "framework"), CASES, ids=CASE_IDS)
def test_evaluate_reports_exactly_the_declared_metrics(task_id: str, framework: str) -> None:
    p = problem(task_id, framework)
    declared = {m.id for m in spec_of(task_id).metrics} - {SUBOPTIMALITY}
    values = p.evaluate(p.init_params(0))
    # A held-out metric (validation_*, test_*) is absent where the variant holds nothing out.
    declared -= {m for m in declared - set(values) if is_split_metric(m)}
    assert set(values) == declared, (
        f"{task_id} ({framework}): evaluate() reports {sorted(values)}, the YAML declares {sorted(declared)}")
    for name, value in values.items():
        assert isinstance(value, float) and math.isfinite(value), (
            f"{task_id} ({framework}): metric {name!r} is {type(value).__name__} {value!r}, not a finite float")


# -- provides --------------------------------------------------------------------------------------


#: The calls checked here by their own rules (below); the others as the oracle contract asks them.
_OWN_RULES = ("value", "value_and_grad", "grad", "hvp", "stochastic_grad", "hessian", "gauss_newton", "fisher",
              "per_example_grads", "jvp_logits")


def _ask(o: Any, kind: str, x: Any) -> Any:
    """One call of ``kind`` at ``x`` (a vector argument is ``x`` itself)."""
    if kind not in _OWN_RULES:
        return ask(o, kind, x, x)
    if kind in ("hvp", "jvp_logits"):
        return getattr(o, kind)(x, x)
    return getattr(o, kind)(x)


def _shape(framework: str, answer: Any) -> tuple[int, ...]:
    assert isinstance(answer, array_type(framework)), f"answered {type(answer).__name__}, not a {framework} array"
    return tuple(answer.shape)


def _check_answer(kind: str, answer: Any, framework: str, dim: int, n: int | None, problem_of_answer: Any) -> None:
    def vector(a: Any) -> None:
        assert _shape(framework, a) == (dim,), f"{kind}: shape {tuple(a.shape)}, expected ({dim},)"

    def matrix(a: Any) -> None:
        assert _shape(framework, a) == (dim, dim), f"{kind}: shape {tuple(a.shape)}, expected ({dim}, {dim})"
        m = numpy(framework, a)
        assert np.allclose(m, m.T, rtol=1e-6, atol=1e-6 * np.abs(m).max()), f"{kind}: not symmetric"

    def scalar(a: Any) -> None:
        assert _shape(framework, a) == (), f"{kind}: shape {tuple(a.shape)}, expected a scalar"

    if kind == "value":
        scalar(answer)
    elif kind == "value_and_grad":
        value, grad = answer
        scalar(value)
        vector(grad)
    elif kind in ("grad", "hvp", "stochastic_grad"):
        vector(answer)
    elif kind in ("hessian", "gauss_newton", "fisher"):
        matrix(answer)
    elif kind == "per_example_grads":
        assert n is not None, "per_example_grads on a problem without n_samples"
        assert _shape(framework, answer) == (n, dim), f"{kind}: shape {tuple(answer.shape)}, expected ({n}, {dim})"
    elif kind == "jvp_logits":
        logits, tangent = answer
        assert len(_shape(framework, logits)) == 2 and _shape(framework, tangent) == tuple(logits.shape), (
            f"{kind}: logits {tuple(logits.shape)} and tangent {tuple(tangent.shape)}")
        if n is not None:
            assert logits.shape[0] == n, f"{kind}: {logits.shape[0]} rows of logits, n_samples is {n}"
    else:  # the structured calls: shapes as the oracle contract states them
        assert shapes(answer) == CALLS[kind][1](dim, (), rows(problem_of_answer, kind)), f"{kind}: shapes {shapes(answer)}"


@pytest.mark.parametrize(("task_id", "framework"), CASES, ids=CASE_IDS)
def test_every_declared_capability_answers_and_is_counted_once(task_id: str, framework: str) -> None:
    spec, p, o = spec_of(task_id), problem(task_id, framework), oracle(task_id, framework)
    x = p.init_params(0)
    dim, n = int(x.shape[0]), getattr(p, "n_samples", None)
    failures = []
    for kind in spec.provides:
        before, total = o.counts[next(iter(counted(p, kind)))], o.total_calls
        try:
            answer = _ask(o, kind, x)
            _check_answer(kind, answer, framework, dim, n, p)
        except Exception as exc:  # noqa: BLE001 - every declared call is reported
            failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            continue
        ((count_kind, expected),) = counted(p, kind).items()
        if (o.counts[count_kind] - before, o.total_calls - total) != (expected, expected):
            failures.append(f"{kind}: one call counted {o.counts[count_kind] - before} as {count_kind!r}, "
                            f"{o.total_calls - total} in all, not {expected} (counts {dict(o.counts)})")
    if "per_example_grads" in spec.provides:
        rows = o.per_example_grads(x, np.array([0, 2, 1]))
        assert _shape(framework, rows) == (3, dim)
    assert not failures, f"{task_id} ({framework}): " + "; ".join(failures)


@pytest.mark.parametrize(("task_id", "framework"), CASES, ids=CASE_IDS)
def test_an_undeclared_capability_raises_not_implemented_uncounted(task_id: str, framework: str) -> None:
    spec, p, o = spec_of(task_id), problem(task_id, framework), oracle(task_id, framework)
    x = p.init_params(0)
    sealed = seal(o, facts_of(p, o, x, seed=0, to_numpy=backend(framework, spec.dtype).to_numpy))
    failures = []
    for kind in sorted(set(CAPABILITIES) - set(spec.provides)):
        # The sealed oracle a method gets offers every capability; the harness's oracle those it implements.
        for name, target in (("sealed", sealed), ("oracle", o)):
            if name == "oracle" and not callable(getattr(o, kind, None)):
                continue
            total = sum(o.counts.values())
            try:
                _ask(target, kind, x)
                failures.append(f"{name}.{kind} answered")
            except NotImplementedError:
                pass
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{name}.{kind} raised {type(exc).__name__}: {exc}")
            if sum(o.counts.values()) != total:
                failures.append(f"{name}.{kind} was counted")
    assert not failures, f"{task_id} ({framework}): " + "; ".join(failures)


# -- derivatives -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("task_id", "framework"), CASES, ids=CASE_IDS)
def test_grad_agrees_with_a_central_difference_of_value(task_id: str, framework: str) -> None:
    """In float64 (a float32 task is rebuilt in float64: a difference quotient needs the digits)."""
    if not {"value", "grad"} <= set(spec_of(task_id).provides):
        pytest.skip(f"{task_id} provides no value and grad (its own derivative calls are checked in its tests)")
    p, o = problem(task_id, framework, "float64"), oracle(task_id, framework, "float64")
    x = p.init_params(0)
    dim = int(x.shape[0])
    u_np = np.random.default_rng(12345).standard_normal(dim)
    u = backend(framework, "float64").asarray(u_np / np.linalg.norm(u_np))
    g = numpy(framework, o.grad(x))
    directional = float(g @ numpy(framework, u))
    h = 1e-5 * max(1.0, float(np.linalg.norm(numpy(framework, x))) / math.sqrt(dim))
    difference = (float(o.value(x + h * u)) - float(o.value(x - h * u))) / (2 * h)
    scale = max(abs(directional), float(np.linalg.norm(g)) / math.sqrt(dim))
    assert abs(difference - directional) <= 1e-5 * scale, (
        f"{task_id} ({framework}): grad.u = {directional!r}, central difference {difference!r} (h = {h:g})")
