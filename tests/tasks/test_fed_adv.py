"""fed-adv: the label-skewed split, the clients' losses and derivatives against numpy, the closed-form
worst perturbation, the centralized robust optimum against an independent solve, and the shards."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "federated", "fed-adv"


def _module():
    task, path = load_task(FAMILY, TASK)
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def _client_losses_numpy(prob, copies: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    margins = prob.y_np * ((prob.X_np + deltas) * copies[prob.owner]).sum(1)
    terms = np.logaddexp(0.0, -margins)
    return np.array([terms[prob.owner == k].mean() for k in range(prob.n_clients)]) + prob.l2 * (copies**2).sum(1)


def test_the_split_is_label_skewed_and_covers_the_data_once() -> None:
    from harness.datasets import binary_classification

    prob = make_problem(FAMILY, TASK, "torch")
    X, y = binary_classification("synthetic", 1000, 20, 0)
    order, sizes = _module().label_skewed_split(y, 5, 0.8, 0)
    assert sorted(order) == list(range(1000)) and sizes.tolist() == [195, 197, 200, 203, 205] == prob.client_sizes.tolist()
    np.testing.assert_array_equal(prob.X_np, X[order])
    positives = [float((prob.y_np[prob.owner == k] > 0).mean()) for k in range(5)]
    np.testing.assert_allclose(positives, [0.1, 0.3, 0.5, 0.7, 0.9], atol=0.025)  # the declared skew
    iid = _module().label_skewed_split(y, 5, 0.0, 0)[1]
    assert iid.max() - iid.min() <= 2
    with pytest.raises(ValueError, match="clients >= 2"):
        _module().label_skewed_split(y, 1, 0.5, 0)


def test_the_optimum_is_the_centralized_robust_one_by_an_independent_solve() -> None:
    import scipy.optimize

    from harness.robust import gradient, hessian, objective

    prob = make_problem(FAMILY, TASK, "torch")
    X, y = prob.X_np, prob.y_np  # client order: the centralized objective does not depend on it
    args = (X, y, 0.1, 5e-4)
    solve = scipy.optimize.minimize(objective, np.full(20, 0.1), args=args, jac=gradient, hess=hessian,
                                    method="trust-exact", options={"gtol": 1e-12})
    assert solve.success
    np.testing.assert_allclose(prob.solution, solve.x, rtol=1e-9, atol=1e-12)
    assert np.linalg.norm(gradient(prob.solution, *args)) < 1e-10
    assert prob.f_star == pytest.approx(objective(prob.solution, *args), rel=1e-15) and prob.f_star <= solve.fun + 1e-15
    np.testing.assert_array_equal(prob.x_star, np.tile(prob.solution, 5))
    # The same optimum as robust-logreg's on the same data (another task, another solve and cache entry).
    robust = make_problem("convex", "robust-logreg", "torch")
    np.testing.assert_allclose(prob.solution, robust.x_star, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_client_calls_match_numpy_and_are_counted(framework: str) -> None:
    prob = make_problem(FAMILY, TASK, framework)
    b = backend(framework)
    C, F = prob.n_clients, prob.n_features
    rng = np.random.default_rng(4)
    copies, deltas = rng.standard_normal((C, F)) * 0.3, rng.standard_normal((1000, F)) * 0.05
    oracle = make_oracle(FAMILY, TASK, prob, framework)
    assert (oracle.n_clients, oracle.local_epochs, oracle.perturbation_radius) == (5, 1, 0.1)
    assert oracle.clients().tolist() == prob.client_sizes.tolist() and not oracle.clients().flags.writeable
    x, e = b.asarray(copies.reshape(-1)), b.asarray(deltas)
    np.testing.assert_allclose(b.to_numpy(prob.client_losses(x, e)), _client_losses_numpy(prob, copies, deltas),
                               rtol=1e-12)
    # Gradients against central differences of the numpy losses (client k's loss in its own copy).
    grads = b.to_numpy(oracle.client_grads(x, e)).reshape(C, F)
    attack = b.to_numpy(oracle.perturbation_grads(x, e))
    h = 1e-6
    for k, j in ((0, 3), (4, 17)):
        bump = np.zeros((C, F))
        bump[k, j] = h
        numeric = (_client_losses_numpy(prob, copies + bump, deltas) - _client_losses_numpy(prob, copies - bump, deltas))
        assert grads[k, j] == pytest.approx(numeric[k] / (2 * h), rel=1e-6)
    for i, j in ((0, 0), (999, 5)):
        bump = np.zeros_like(deltas)
        bump[i, j] = h
        numeric = (_client_losses_numpy(prob, copies, deltas + bump) - _client_losses_numpy(prob, copies, deltas - bump))
        assert attack[i, j] == pytest.approx(numeric[prob.owner[i]] / (2 * h), rel=1e-6)
    clean = b.to_numpy(oracle.client_grads(x)).reshape(C, F)  # no perturbation: clean inputs
    assert not np.allclose(clean, grads)
    # aggregate: every copy at the size-weighted mean.
    mean = prob.client_sizes @ copies / 1000
    np.testing.assert_allclose(b.to_numpy(oracle.aggregate(x)).reshape(C, F), np.tile(mean, (C, 1)), rtol=1e-13)
    assert dict(oracle.counts) == {"clients": 2, "client_grad": 2 * C, "perturbation_grad": C, "communication": 2 * C}


def test_the_worst_perturbation_gives_the_robust_objective() -> None:
    """sum_k (n_k / n) f_k(w; -eps y w / ||w||) is robust-logreg's objective, and no other point of the ball beats it."""
    import torch

    from harness.robust import objective

    prob = make_problem(FAMILY, TASK, "torch")
    w = np.random.default_rng(5).standard_normal(20) * 0.4
    worst = -0.1 * prob.y_np[:, None] * w / np.linalg.norm(w)
    x = torch.as_tensor(np.tile(w, 5))
    weights = prob.client_sizes / 1000
    at_worst = float(weights @ prob.client_losses(x, torch.as_tensor(worst)).numpy())
    assert at_worst == pytest.approx(objective(w, prob.X_np, prob.y_np, 0.1, 5e-4), rel=1e-13)
    rng = np.random.default_rng(6)
    for _ in range(5):
        other = rng.standard_normal(worst.shape)
        other *= 0.1 * rng.random((1000, 1)) ** 0.05 / np.linalg.norm(other, axis=1, keepdims=True)
        assert float(weights @ prob.client_losses(x, torch.as_tensor(other)).numpy()) < at_worst


def test_metrics_read_the_server_model() -> None:
    import torch

    from harness.robust import objective

    prob = make_problem(FAMILY, TASK, "torch")
    copies = np.random.default_rng(7).standard_normal((5, 20))
    w = prob.client_sizes @ copies / 1000
    metrics = prob.evaluate(torch.as_tensor(copies.reshape(-1)))
    assert metrics["objective"] == pytest.approx(objective(w, prob.X_np, prob.y_np, 0.1, 5e-4), rel=1e-13)
    assert metrics["relative_error"] == pytest.approx(np.linalg.norm(w - prob.solution) / np.linalg.norm(prob.solution))
    spread = np.sqrt(prob.client_sizes @ ((copies - w) ** 2).sum(1) / 1000)
    assert metrics["client_spread"] == pytest.approx(spread, rel=1e-12)
    assert metrics["robust_accuracy"] <= metrics["train_accuracy"]
    start = prob.evaluate(prob.init_params(3))
    assert start["client_spread"] < 1e-15 and start["objective"] > prob.f_star  # every client at the server's start


def test_shards_answer_for_their_own_clients_and_sum_to_the_whole() -> None:
    import torch

    prob = make_problem(FAMILY, TASK, "torch")
    x = torch.as_tensor(np.random.default_rng(0).standard_normal(prob.dim))
    e = torch.as_tensor(np.random.default_rng(1).standard_normal((1000, 20)) * 0.05)
    shards = [prob.shard(r, 2) for r in range(2)]
    assert all(weight == 1.0 for _, weight in shards)
    losses = [s.client_losses(x, e) for s, _ in shards]
    assert [int(torch.count_nonzero(v)) for v in losses] == [3, 2]  # contiguous blocks, array_split
    torch.testing.assert_close(sum(losses), prob.client_losses(x, e), rtol=1e-14, atol=0)
    torch.testing.assert_close(sum(s.aggregate(x) for s, _ in shards), prob.aggregate(x), rtol=1e-14, atol=1e-15)
