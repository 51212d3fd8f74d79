"""decentral-ridge: x* against scipy's least squares, the graphs, node_grads / gossip / shard against numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "decentralized", "decentral-ridge"


def _module():
    task, path = load_task(FAMILY, TASK)
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def test_x_star_is_scipys_least_squares_on_the_stacked_problem() -> None:
    import scipy.linalg
    import scipy.optimize

    prob = make_problem(FAMILY, TASK, "torch")
    n, m, d, mu = prob.n_nodes, prob.m, prob.d, prob.mu
    X, y = prob._X, prob._y
    # sum_i ||X_i x - y_i||^2 / (2m) + n mu ||x||^2 / 2 = ||A x - c||^2 / 2 with a ridge block.
    A = np.vstack([X.reshape(n * m, d) / np.sqrt(m), np.sqrt(n * mu) * np.eye(d)])
    c = np.concatenate([y.reshape(-1) / np.sqrt(m), np.zeros(d)])
    reference = scipy.linalg.lstsq(A, c)[0]
    np.testing.assert_allclose(prob.solution, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(prob.x_star, np.tile(prob.solution, prob.n_nodes))  # every copy at x*
    value = scipy.optimize.minimize(prob._objective, np.zeros(d), method="L-BFGS-B", options={"ftol": 1e-15}).fun
    assert prob.f_star <= value + 1e-9 and prob.f_star == pytest.approx(0.5 * np.sum((A @ reference - c) ** 2))
    # The declared conditioning (notes and dadao's defaults): L = 11.7, mu_min = 0.0103.
    H = np.einsum("nmd,nme->nde", X, X) / m
    eig = np.array([np.linalg.eigvalsh(h) for h in H])
    assert eig.max() + mu == pytest.approx(11.68, abs=0.01) and eig.min() + mu == pytest.approx(0.01035, abs=1e-4)


def test_the_graphs_are_the_ring_and_a_connected_geometric_graph() -> None:
    module = _module()
    ring = make_problem(FAMILY, TASK, "torch").edges
    assert len(ring) == 10 and np.all(np.bincount(ring.reshape(-1)) == 2) and module.connected(10, ring)
    geo = make_problem(FAMILY, TASK, "torch", graph="geometric").edges
    assert len(geo) == 26 and np.all(geo[:, 0] < geo[:, 1]) and len(np.unique(geo, axis=0)) == len(geo)
    assert module.connected(10, geo)
    assert not module.connected(4, np.array([[0, 1], [2, 3]]))
    with pytest.raises(ValueError, match="ring"):
        module.graph_edges("star", 10, 0)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_node_grads_gossip_and_metrics_match_numpy(framework: str) -> None:
    prob = make_problem(FAMILY, TASK, framework, graph="geometric")
    b = backend(framework)
    n, d, m, mu = prob.n_nodes, prob.d, prob.m, prob.mu
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d))
    H = np.einsum("nmd,nme->nde", prob._X, prob._X) / m + mu * np.eye(d)
    grads = np.einsum("nde,ne->nd", H, x) - np.einsum("nmd,nm->nd", prob._X, prob._y) / m
    oracle = make_oracle(FAMILY, TASK, prob, framework)
    np.testing.assert_allclose(b.to_numpy(oracle.node_grads(b.asarray(x.reshape(-1)))).reshape(n, d), grads,
                               rtol=1e-10, atol=1e-12)
    part = b.to_numpy(oracle.node_grads(b.asarray(x.reshape(-1)), nodes=[2, 7])).reshape(n, d)
    np.testing.assert_allclose(part[[2, 7]], grads[[2, 7]], rtol=1e-10)
    assert np.all(part[[0, 1, 3, 4, 5, 6, 8, 9]] == 0)
    # gossip: the weighted Laplacian, two communications per edge of nonzero weight.
    weights = rng.random(len(prob.edges)) * (rng.random(len(prob.edges)) < 0.5)
    lap = np.zeros((n, n))
    for (i, j), w in zip(prob.edges, weights):
        lap[[i, j], [i, j]] += w
        lap[i, j] -= w
        lap[j, i] -= w
    answer = b.to_numpy(oracle.gossip(b.asarray(x.reshape(-1)), b.asarray(weights))).reshape(n, d)
    np.testing.assert_allclose(answer, lap @ x, rtol=1e-10, atol=1e-12)
    assert dict(oracle.counts) == {"node_grad": 12, "communication": 2 * int(np.count_nonzero(weights))}
    # value is the consensus-free sum; the metrics are their numpy definitions.
    losses = 0.5 * ((np.einsum("nmd,nd->nm", prob._X, x) - prob._y) ** 2).mean(1) + 0.5 * mu * (x**2).sum(1)
    assert float(prob.loss(b.asarray(x.reshape(-1)))) == pytest.approx(losses.sum(), rel=1e-12)
    metrics = prob.evaluate(b.asarray(x.reshape(-1)))
    error = ((x - prob.solution) ** 2).sum(1).mean()
    assert metrics["node_error"] == pytest.approx(error, rel=1e-12)
    assert metrics["relative_node_error"] == pytest.approx(error / (prob.solution @ prob.solution), rel=1e-12)
    assert metrics["consensus_error"] == pytest.approx(((x - x.mean(0)) ** 2).sum(1).mean(), rel=1e-12)
    assert metrics["objective"] == pytest.approx(prob._objective(x.mean(0)), rel=1e-12)
    assert prob.evaluate(prob.init_params(0))["relative_node_error"] == pytest.approx(1.0, rel=1e-14)  # every copy at 0


def test_shards_answer_for_their_own_nodes_and_sum_to_the_whole() -> None:
    import torch

    prob = make_problem(FAMILY, TASK, "torch", graph="geometric")
    x = torch.as_tensor(np.random.default_rng(0).standard_normal(prob.dim))
    w = torch.as_tensor(np.random.default_rng(1).random(len(prob.edges)))
    shards = [prob.shard(r, 3) for r in range(3)]
    assert all(weight == 1.0 for _, weight in shards)
    losses = [s.node_losses(x) for s, _ in shards]
    assert [int(torch.count_nonzero(v)) for v in losses] == [4, 3, 3]  # contiguous blocks, array_split
    torch.testing.assert_close(sum(losses), prob.node_losses(x), rtol=1e-14, atol=0)
    torch.testing.assert_close(sum(s.gossip(x, w) for s, _ in shards), prob.gossip(x, w), rtol=1e-14, atol=1e-15)
    own = shards[1][0].gossip(x, w).reshape(prob.n_nodes, prob.d)
    assert torch.all(own[:4] == 0) and torch.all(own[7:] == 0)
    torch.testing.assert_close(prob.node_losses(x), make_problem(FAMILY, TASK, "torch", graph="geometric").node_losses(x))
