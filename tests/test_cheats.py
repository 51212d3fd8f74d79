"""A catalog of cheating methods (tests/catalog/methods/cheats): each trick fails with a clear
error or is counted and timed like honest work, and the honest runs beside it are unaffected."""

from __future__ import annotations

import pytest
from _runs import run_single

from harness.spec import CAPABILITIES, Budget

FRAMEWORKS = ["torch", "jax"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    ("cheat", "message"),
    [
        ("cheat-uncounted", "has no attribute 'uncounted'"),
        ("cheat-problem-loss", "has no attribute 'problem'"),
        ("cheat-x-star", "has no attribute 'problem'"),
        ("cheat-f-star", "has no attribute 'problem'"),
        ("cheat-counting-off", "the oracle is sealed: 'counting' cannot be set"),
        ("cheat-counts-clear", "'mappingproxy' object has no attribute 'clear'"),
    ],
)
def test_every_door_of_the_sealed_oracle_is_shut(full_catalog, framework, cheat, message):
    row = run_single(full_catalog, "quadratic", cheat, framework, budget=Budget(steps=30, oracle_calls=20)).row
    assert row["status"] == "error" and message in row["error"].strip().splitlines()[-1]
    assert row["oracle_calls"] <= 20 and row["time_to_target_s"] is None


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("cheat", ["cheat-f-star-everywhere", "cheat-evaluate-everywhere"])
def test_the_evaluation_uses_an_optimum_and_a_problem_the_method_never_held(full_catalog, framework, cheat):
    """Even reached through the garbage collector, a problem the method finds is not the one that scores it."""
    honest = run_single(full_catalog, "quadratic", "sleepy-gd", framework, budget=Budget(steps=30))
    cheated = run_single(full_catalog, "quadratic", cheat, framework, budget=Budget(steps=30))
    assert honest.row["status"] == cheated.row["status"] == "completed"
    assert [p["suboptimality"] for p in cheated.trace] == [p["suboptimality"] for p in honest.trace]
    assert cheated.row["suboptimality"] > 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cached_data_cannot_be_poisoned_for_the_next_runs(full_catalog, framework):
    before = {m: run_single(full_catalog, "logreg", m, framework, budget=Budget(steps=40)).row for m in ("gd", "adam")}
    poisoned = run_single(full_catalog, "logreg", "cheat-poison-data", framework, budget=Budget(steps=40)).row
    assert poisoned["status"] == "error" and "cannot set WRITEABLE flag" in poisoned["error"]
    for method, row in before.items():
        again = run_single(full_catalog, "logreg", method, framework, budget=Budget(steps=40)).row
        assert again["suboptimality"] == row["suboptimality"], method


def test_the_sealed_oracle_exposes_calls_and_facts_only(full_catalog):
    """What a method can read: the declared calls, counts (read only) and the documented facts."""
    from harness.backends import make_backend
    from harness.sealed import OracleFacts, seal

    backend = make_backend("torch")
    problem = full_catalog.tasks["quadratic"].resolve("quadratic.py:QuadraticTorch")(backend=backend)
    inner = backend.make_oracle(problem, capabilities=frozenset({"grad", "value"}))
    oracle = seal(inner, OracleFacts(dimension=10, seed=3, layout=(("x", (10,)),)))
    public = {name for name in dir(oracle) if not name.startswith("_")}
    calls = set(CAPABILITIES)  # each declared call, or one that raises NotImplementedError
    facts = {"capabilities", "counts", "total_calls", "last_indices", "stochastic", "warmup", "dimension", "seed",
             "layout", "n_samples", "batch_size", "n_tasks", "shared_dimension", "n_players", "values",
             "upper_dimension", "n_constraints", "policy_shape", "group_size", "logprobs", "policy_grad",
             "n_nodes", "gossip", "n_clients", "local_epochs", "perturbation_radius", "client_grads",
             "perturbation_grads", "aggregate"}
    assert public == calls | facts
    oracle.grad(problem.init_params(0))
    assert dict(oracle.counts) == {"grad": 1} and oracle.total_calls == 1
    with pytest.raises(NotImplementedError, match="does not provide 'hessian'"):
        oracle.hessian(problem.init_params(0))
    for name in ("counts", "seed", "capabilities", "problem"):
        with pytest.raises(AttributeError, match="sealed"):
            setattr(oracle, name, None)
    assert not hasattr(oracle, "__dict__")


def test_a_compiled_method_cannot_solve_the_system_while_it_compiles(full_catalog):
    # Inside the traced init, matrix() answers with tracers: the numpy solve cannot run off the clock
    # during tracing, so the method runs eagerly and its solve is timed in init, like honest work.
    row = run_single(full_catalog, "poisson2d", "cheat-matrix-at-trace", "jax", params={"side": 32},
                     budget=Budget(steps=3)).row
    assert row["program"] == "eager" and "TracerArrayConversionError" in row["program_fallback"]
    assert row["status"] == "reached_target" and (row["calls_matrix"], row["calls_grad"]) == (1, 1)
    assert 0 < row["init_s"] <= row["time_to_target_s"] == row["timed_s"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_offline_phase_gets_the_operator_not_the_right_hand_side(full_catalog, framework):
    row = run_single(full_catalog, "poisson2d", "cheat-offline-rhs", framework, params={"side": 32},
                     budget=Budget(steps=3)).row
    assert row["status"] == "error" and "has no attribute 'grad'" in row["error"], row["error"]
