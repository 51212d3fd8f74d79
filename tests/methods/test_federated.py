"""fedavg and fal on fed-adv: FAL with one local epoch is centralized robust gradient descent (it reaches
the centralized robust optimum), five local epochs on label-skewed clients leave a positive gap, natural
training a larger one; counted rounds; the attack finds the closed-form worst perturbation; 2 gloo ranks
(clients spread over them) give the one-process run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import backend, make_method, make_oracle, make_problem  # noqa: E402
from _runs import run_single, single_run  # noqa: E402

from harness.spec import Budget  # noqa: E402

FAMILY, TASK = "federated", "fed-adv"


def _gaps(result):
    return np.array([p["suboptimality"] for p in result.trace])


def test_the_attack_finds_the_closed_form_worst_perturbation() -> None:
    prob = make_problem(FAMILY, TASK, "torch")
    oracle = make_oracle(FAMILY, TASK, prob, "torch")
    fal = make_method(FAMILY, "fal", "torch")
    params = prob.init_params(2)
    state = fal.init(params, oracle)
    deltas = fal.perturbations(params, state, oracle).numpy()
    w = params.numpy()[:20]
    np.testing.assert_allclose(deltas, -0.1 * prob.y_np[:, None] * w / np.linalg.norm(w), rtol=1e-12, atol=1e-15)
    assert oracle.counts["perturbation_grad"] == 5 * 3  # attack_steps calls, one per client each


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_fal_with_one_local_epoch_is_centralized_robust_gradient_descent(full_catalog, framework) -> None:
    """Every round is w <- w - lr grad F(w) of the robust-logreg objective (numpy): it reaches the centralized optimum."""
    from harness.robust import gradient, objective

    prob = make_problem(FAMILY, TASK, framework)
    result = run_single(full_catalog, TASK, "fal", framework, seed=1, budget=Budget(steps=300, seconds=120))
    row = result.row
    assert row["status"] == "reached_target", row["error"]
    assert row["suboptimality"] < 1e-8 and row["relative_error"] < 1e-3
    # The numpy recursion, round by round, against the server model's objective at the trace's steps.
    w = backend(framework).to_numpy(prob.init_params(1))[:20]
    steps = {p["step"]: p["objective"] for p in result.trace}
    for k in range(1, max(steps) + 1):
        w = w - 2.0 * gradient(w, prob.X_np, prob.y_np, 0.1, 5e-4)
        if k in steps:
            assert steps[k] == pytest.approx(objective(w, prob.X_np, prob.y_np, 0.1, 5e-4), rel=1e-12, abs=0)
    C, steps_run = 5, row["steps"]
    assert row["calls_client_grad"] == C * steps_run and row["calls_perturbation_grad"] == 3 * C * steps_run
    assert row["calls_communication"] == 2 * C * steps_run and row["calls_clients"] == 1


def test_local_epochs_on_skewed_clients_leave_a_positive_gap_and_natural_training_a_larger_one(full_catalog) -> None:
    def final(method, epochs):
        result = run_single(full_catalog, TASK, method, "torch", params={"local_epochs": epochs},
                            budget=Budget(steps=200, seconds=120))
        assert result.row["status"] == "completed", result.row["error"]
        return result

    fal5, fedavg1 = final("fal", 5), final("fedavg", 1)
    gaps = _gaps(fal5)
    # A fixed point short of the optimum: the gap stops falling (client drift), far above the target.
    assert 1e-5 < gaps[-1] < 1e-3 and abs(gaps[-1] - gaps[len(gaps) // 2]) < 1e-6 * gaps[-1]
    assert fal5.row["calls_client_grad"] == 5 * 5 * 200 and fal5.row["calls_communication"] == 2 * 5 * 200
    # Natural training minimizes the clean loss: its robust gap stays larger still.
    assert _gaps(fedavg1)[-1] > 5 * gaps[-1]


def _ranks_run(catalog, method, hardware):
    return single_run(catalog, TASK, method, "torch", params={"local_epochs": 2}, budget=Budget(steps=20, seconds=60),
                      hardware=hardware)


@pytest.mark.parametrize("method", ["fedavg", "fal"])
def test_two_gloo_ranks_give_the_one_process_run(full_catalog, method) -> None:
    from harness.execute import execute
    from harness.host import hardware_unavailable
    from harness.run import execute_run

    assert hardware_unavailable(full_catalog.hardware["cpu-ranks"].spec) is None
    solo = execute_run(_ranks_run(full_catalog, method, "cpu"), full_catalog)
    ranks = execute(_ranks_run(full_catalog, method, "cpu-ranks"), full_catalog)  # clients 0-2 and 3-4
    assert solo.status == ranks.status == "completed", ranks.row["error"]
    for key in ("steps", "calls_client_grad", "calls_communication", "calls_perturbation_grad", "calls_clients"):
        assert ranks.row.get(key) == solo.row.get(key), key
    for metric in ("suboptimality", "relative_error", "objective"):
        np.testing.assert_allclose([p[metric] for p in ranks.trace], [p[metric] for p in solo.trace], rtol=1e-10, atol=0)
    assert solo.row["suboptimality"] < 0.5 * solo.trace[0]["suboptimality"]  # 20 rounds in: on its way
