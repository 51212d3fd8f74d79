"""The method contract, as a table over the registry: every method x every framework it implements.

The cases are read from the catalog at collection time (the built-in catalog plus the engine
tests' toy catalog; the deliberately misbehaving submissions of ``tests/submissions`` have tests
of their own), so a new method is covered without editing this file. Each method runs with its
declared hyperparameters on the first task that provides what it requires (``logreg`` first, as
``harness validate --smoke`` picks), made tiny by ``SMALL``.

What a method promises (``harness.api.Method``, its YAML):

* its state is explicit: a deep copy of ``(params, state)`` steps exactly as the original does;
  a jax method's state is a pytree that flattens and unflattens to itself;
* every step asks the oracle something, and only what ``requires`` declares;
* a task lacking a capability it requires is never paired with it: the plan skips the pair and
  names the capability;
* it runs through the harness's loop to a finished status, the trace's call counts increasing.
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.backends import make_backend
from harness.catalog import Catalog
from harness.plan import make_plan
from harness.run import build_method
from harness.oracle import COUNTED_AS
from harness.sealed import EXTRA_CALLS, facts_of, offline_operator, seal
from harness.spec import CAPABILITIES, Budget, SuiteEntry, SuiteSpec

TESTS = Path(__file__).resolve().parents[1]
TEST_CATALOG = TESTS / "catalog"
CATALOG = Catalog.load([TEST_CATALOG])

sys.path.insert(0, str(TESTS))
from _runs import QUICK_HYPERPARAMETERS, quick_hyperparameters, run_single  # noqa: E402

#: Tiny parameters of the tasks methods are tried on (only those the task declares apply).
SMALL: dict[str, dict[str, Any]] = {
    "logreg": {"dataset": "synthetic", "n": 64, "d": 5},
    "robust-logreg": {"dataset": "synthetic", "n": 64, "d": 5},
    "softmax": {"dataset": "blobs", "n": 64, "d": 5, "classes": 3},
    "nnls": {"m": 20, "d": 5},
    "teacher-student": {"n": 64, "n_test": 64, "d": 6, "teacher_hidden": 3, "student_hidden": 4},
    "modadd-grok": {"modulus": 5, "hidden": 8, "train_fraction": 0.6},
    "quadratic": {"d": 5},
}
STEPS = 3
FINISHED = {"reached_target", "completed"}


def _task_for(method_id: str, framework: str) -> str | None:
    """The first task (``logreg`` first, then by id) implementing ``framework`` that provides what the method requires."""
    method = CATALOG.methods[method_id].spec
    needs = method.requirements(method.resolve_hyperparameters())
    for task_id in sorted(CATALOG.tasks, key=lambda t: (t != "logreg", t)):
        task = CATALOG.tasks[task_id].spec
        if framework in task.implementations and needs <= set(task.provides):
            return task_id
    return None


CASES = [(method_id, framework) for method_id, entry in CATALOG.methods.items() for framework in entry.spec.implementations]
CASE_IDS = [f"{method_id}-{framework}" for method_id, framework in CASES]
CASES_PARAMS = [pytest.param(*case, id=case_id) for case, case_id in zip(CASES, CASE_IDS)]

def task_params(task_id: str) -> dict[str, Any]:
    task = CATALOG.tasks[task_id].spec
    return {k: v for k, v in SMALL.get(task_id, {}).items() if k in task.parameters}


def task_of(method_id: str, framework: str) -> str:
    task_id = _task_for(method_id, framework)
    assert task_id is not None, f"no task of the catalog provides what {method_id} requires in {framework}"
    return task_id


@functools.cache
def backend(framework: str, dtype: str) -> Any:
    return make_backend(framework, dtype=dtype)


@functools.cache
def problem(task_id: str, framework: str) -> Any:
    entry = CATALOG.tasks[task_id]
    cls = entry.resolve(entry.spec.implementations[framework])
    return cls(backend=backend(framework, entry.spec.dtype), **entry.spec.resolve_parameters(task_params(task_id)))


@functools.cache
def raw_oracle(task_id: str, framework: str) -> Any:
    """One counting oracle per problem (jax compiles each derivative once per oracle); tests read count deltas."""
    task = CATALOG.tasks[task_id].spec
    return backend(framework, task.dtype).make_oracle(problem(task_id, framework), capabilities=frozenset(task.provides))


def setup(method_id: str, framework: str) -> tuple[Any, Any, Any, Any]:
    """``(method, params, sealed oracle, backend)`` as a run builds them, at seed 0."""
    task_id = task_of(method_id, framework)
    task, spec = CATALOG.tasks[task_id].spec, CATALOG.methods[method_id].spec
    b, p, o = backend(framework, task.dtype), problem(task_id, framework), raw_oracle(task_id, framework)
    params = p.init_params(0)
    facts = facts_of(p, o, params, seed=0, to_numpy=b.to_numpy)
    sealed = seal(o, facts)
    method = build_method(spec, framework, quick_hyperparameters(spec), b, CATALOG)
    if callable(getattr(method, "offline", None)):  # as a run does, before init
        method.offline(facts, offline_operator(o, facts))
    return method, params, sealed, b


def total(oracle: Any) -> int:
    return sum(oracle.counts.values())


# -- state -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method_id", "framework"), CASES_PARAMS)
def test_a_copy_of_the_state_steps_as_the_original(method_id: str, framework: str) -> None:
    method, params, oracle, b = setup(method_id, framework)
    state = method.init(params, oracle)
    params, state = method.step(params, state, oracle)  # a state that has seen a step (momenta, histories)
    params_copy, state_copy = copy.deepcopy((params, state))
    # Both steps see the same draws of the oracle's own samplers (minibatches, rollouts).
    samplers = raw_oracle(task_of(method_id, framework), framework)
    drawn = [copy.deepcopy(rng.bit_generator.state) for rng in (samplers.sampler, samplers.rollouts)]
    from_copy, _ = method.step(params_copy, state_copy, oracle)
    for rng, state_of in zip((samplers.sampler, samplers.rollouts), drawn):
        rng.bit_generator.state = state_of
    from_original, _ = method.step(params, state, oracle)
    a, c = np.asarray(b.to_numpy(from_original)), np.asarray(b.to_numpy(from_copy))
    assert np.array_equal(a, c), (
        f"{method_id} ({framework}): a step from a deep copy of (params, state) differs from the original's "
        f"by {np.max(np.abs(a - c)):.3g}: the method keeps state outside its state")


def _leaves_equal(x: Any, y: Any) -> bool:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return type(x) is type(y) and x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))
    return x is y or x == y


@pytest.mark.parametrize("method_id", [m for m, fw in CASES if fw == "jax"])
def test_a_jax_state_is_a_pytree(method_id: str) -> None:
    import jax

    method, params, oracle, _ = setup(method_id, "jax")
    state = method.init(params, oracle)
    _, state = method.step(params, state, oracle)
    leaves, treedef = jax.tree.flatten(state)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    again, retreedef = jax.tree.flatten(rebuilt)
    assert retreedef == treedef and len(again) == len(leaves)
    assert all(_leaves_equal(x, y) for x, y in zip(leaves, again)), f"{method_id}: unflatten(flatten(state)) != state"
    if CATALOG.methods[method_id].spec.is_pure("jax"):
        # Compiled whole: every leaf must be something jit can take as an argument.
        bad = [type(leaf).__name__ for leaf in leaves
               if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, bool, int, float, complex))]
        assert not bad, f"{method_id}: a pure jax method's state has leaves jit cannot take: {bad}"


# -- oracle calls ----------------------------------------------------------------------------------


@functools.cache
def _call_history(method_id: str, framework: str) -> list[dict[str, int]]:
    """The oracle's counts after init and after each of STEPS steps (deltas from before init)."""
    method, params, oracle, _ = setup(method_id, framework)
    start = dict(oracle.counts)

    def delta() -> dict[str, int]:
        return {k: n - start.get(k, 0) for k, n in oracle.counts.items() if n - start.get(k, 0)}

    state = method.init(params, oracle)
    history = [delta()]
    for _ in range(STEPS):
        params, state = method.step(params, state, oracle)
        history.append(delta())
    return history


@pytest.mark.parametrize(("method_id", "framework"), CASES, ids=CASE_IDS)
def test_every_step_calls_the_oracle(method_id: str, framework: str) -> None:
    totals = [sum(counts.values()) for counts in _call_history(method_id, framework)]
    grew = [b - a for a, b in zip(totals, totals[1:])]
    assert all(g >= 1 for g in grew), f"{method_id} ({framework}): oracle calls per step {grew}"


@pytest.mark.parametrize(("method_id", "framework"), CASES, ids=CASE_IDS)
def test_a_method_asks_only_what_it_requires(method_id: str, framework: str) -> None:
    spec = CATALOG.methods[method_id].spec
    needs = spec.requirements(spec.resolve_hyperparameters())
    # Counted kinds back to the calls that count them (a communication is a gossip or an aggregate),
    # and calls to the capability that offers them: a kind is declared when one of its offers is.
    offers = [{EXTRA_CALLS.get(call, call) for call in COUNTED_AS.get(kind, (kind,))}
              for kind in _call_history(method_id, framework)[-1]]
    asked = {capability for offer in offers for capability in (offer & needs or offer)}
    assert asked <= needs, (
        f"{method_id} ({framework}) calls {sorted(asked - needs)}, which its requires {sorted(needs)} does not declare: "
        f"the plan would pair it with tasks that lack them")


# -- planning: a requirement the task lacks --------------------------------------------------------


def _requirement_cases() -> list[tuple[str, tuple[tuple[str, Any], ...], str]]:
    """(method, hyperparameter overrides, a capability those hyperparameters require)."""
    cases = []
    for method_id, entry in CATALOG.methods.items():
        spec = entry.spec
        for capability in sorted(spec.requirements(spec.resolve_hyperparameters())):
            cases.append((method_id, (), capability))
        for name, by_value in spec.requires_when.items():
            for text, added in by_value.items():
                typed = next((c for c in spec.choices.get(name, ()) if str(c) == text), text)
                if typed == spec.hyperparameters.get(name):
                    continue  # the default's requirements are cases already
                overrides = ((name, typed),)
                for capability in sorted(set(added) - set(spec.requires)):
                    if (method_id, overrides, capability) not in cases:
                        cases.append((method_id, overrides, capability))
    return cases


REQUIREMENTS = _requirement_cases()
REQUIREMENT_IDS = [f"{m}-{''.join(f'{k}={v}-' for k, v in hp)}{cap}" for m, hp, cap in REQUIREMENTS]
_QUADRATIC = TEST_CATALOG / "tasks" / "toy"


def _task_yaml(task_id: str, provides: list[str]) -> str:
    """The toy quadratic's declaration under another id, providing ``provides``."""
    text = (_QUADRATIC / "quadratic.yaml").read_text()
    text = re.sub(r"(?m)^id: .*$", f"id: {task_id}", text)
    return re.sub(r"(?m)^provides: .*$", f"provides: [{', '.join(provides)}]", text)


@pytest.fixture(scope="module")
def lacking_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The catalog plus ``lacks-<capability>`` tasks (every capability but that one) and ``provides-all``."""
    root = tmp_path_factory.mktemp("contract-catalog")
    tasks = root / "tasks" / "contract"
    tasks.mkdir(parents=True)
    (tasks / "quadratic.py").write_bytes((_QUADRATIC / "quadratic.py").read_bytes())
    for capability in CAPABILITIES:
        (tasks / f"lacks-{capability}.yaml").write_text(
            _task_yaml(f"lacks-{capability}", [c for c in CAPABILITIES if c != capability]))
    (tasks / "provides-all.yaml").write_text(_task_yaml("provides-all", list(CAPABILITIES)))
    return Catalog.load([TEST_CATALOG, root])


def _plan(catalog: Catalog, task_id: str, method_id: str, overrides: dict[str, Any]) -> Any:
    frameworks = tuple(catalog.methods[method_id].spec.implementations)
    entry = SuiteEntry(tasks=(task_id,), methods=(method_id,), hyperparameters={method_id: overrides} if overrides else {})
    suite = SuiteSpec(id="contract", seeds=(0,), frameworks=frameworks, hardware=("cpu",), entries=(entry,))
    return make_plan(catalog, suite=suite)


@pytest.mark.parametrize(("method_id", "overrides", "capability"), REQUIREMENTS, ids=REQUIREMENT_IDS)
def test_a_task_lacking_a_requirement_is_skipped_with_the_reason(
    lacking_catalog: Catalog, method_id: str, overrides: tuple[tuple[str, Any], ...], capability: str
) -> None:
    hp = dict(overrides)
    frameworks = set(lacking_catalog.methods[method_id].spec.implementations)
    control = _plan(lacking_catalog, "provides-all", method_id, hp)
    assert {r.framework for r in control.runs} == frameworks and not control.skipped, (
        f"{method_id}: a task providing everything is not planned in {sorted(frameworks)}: {control.skipped}")
    plan = _plan(lacking_catalog, f"lacks-{capability}", method_id, hp)
    assert not [r for r in plan.runs if r.method == method_id], (
        f"{method_id} {hp}: planned on a task that lacks {capability!r}, which it requires")
    skipped = {s.framework: s.reason for s in plan.skipped if s.method == method_id and s.task == f"lacks-{capability}"}
    assert set(skipped) == frameworks, f"{method_id} {hp}: skipped in {sorted(skipped)}, not in every framework"
    for framework, reason in skipped.items():
        assert capability in reason, f"{method_id} ({framework}): the skip's reason {reason!r} does not name {capability!r}"


# -- the harness's loop ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method_id", "framework"), CASES, ids=CASE_IDS)
def test_a_method_runs_through_the_harness_loop(method_id: str, framework: str) -> None:
    task_id = task_of(method_id, framework)
    result = run_single(CATALOG, task_id, method_id, framework, params=task_params(task_id), budget=Budget(steps=STEPS),
                        hyperparameters=QUICK_HYPERPARAMETERS.get(method_id))
    assert str(result.status) in FINISHED, (
        f"{method_id} on {task_id} ({framework}) ended {result.status}: {result.row.get('error')}")
    calls = [point["oracle_calls"] for point in result.trace]
    assert len(calls) >= 2 and result.trace[-1]["step"] == STEPS, f"trace steps {[p['step'] for p in result.trace]}"
    assert all(b > a for a, b in zip(calls, calls[1:])), f"{method_id} ({framework}): trace oracle_calls {calls}"
