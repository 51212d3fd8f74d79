"""tensor-pca: the tensor against loops, its symmetry, the loss by hand, scale invariance, torch == jax, the unfolding reference.

The reference is the tensor-unfolding estimator, written here in numpy from the tensor alone
(not the module's helper): ``T`` as ``d^2 x d^2``, its top eigenvector reshaped ``d x d``, that
matrix's top eigenvector. It recovers ``theta*`` once ``n`` is a few times ``d^2``; at ``n = d/2``
nobody does: neither the unfolding, nor gradient descent, nor the averaged Langevin iterate.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_task, make_method, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "sampling", "tensor-pca"
FRAMEWORKS = ("torch", "jax")
PERMS = list(itertools.permutations(range(4)))


def _by_loops(d: int, n: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``T`` entry by entry: the draws in the documented order, ``G = sum_pi Z^pi / sqrt(24)``."""
    rng = np.random.default_rng(data_seed)
    theta = rng.standard_normal(d)
    theta /= np.linalg.norm(theta)
    Z = rng.standard_normal((d,) * 4)
    T = np.empty((d,) * 4)
    for idx in itertools.product(range(d), repeat=4):
        noise = sum(Z[tuple(idx[p] for p in perm)] for perm in PERMS) / math.sqrt(24)
        T[idx] = theta[idx[0]] * theta[idx[1]] * theta[idx[2]] * theta[idx[3]] + noise / math.sqrt(n)
    return T, theta


def _value_by_loops(T: np.ndarray, x: np.ndarray) -> float:
    u = x / math.sqrt(sum(xi * xi for xi in x))
    d = len(u)
    return -sum(T[i, j, k, l] * u[i] * u[j] * u[k] * u[l] for i in range(d) for j in range(d)
                for k in range(d) for l in range(d))


def _unfolding(T: np.ndarray) -> np.ndarray:
    d = T.shape[0]
    M = T.reshape(d * d, d * d)
    w, V = np.linalg.eigh(M)
    top = V[:, np.argmax(w)].reshape(d, d)
    w, V = np.linalg.eigh(top)
    return V[:, np.argmax(np.abs(w))]


def test_declaration() -> None:
    spec, _ = load_task(FAMILY, TASK)
    assert spec.resolve_parameters() == {"d": 16, "n": 1024, "data_seed": 0}
    assert spec.target.metric == "overlap" and spec.target.value == 0.95
    assert not spec.metric("overlap").lower_is_better and set(spec.implementations) == set(FRAMEWORKS)
    assert spec.evaluation.divergence_patience > spec.budget.steps  # hovering near the start is no divergence


def test_the_tensor_by_loops_is_symmetric_with_unit_off_diagonal_noise() -> None:
    problem = make_problem(FAMILY, TASK, "torch", d=3, n=5, data_seed=2)
    T, theta = _by_loops(3, 5, 2)
    np.testing.assert_allclose(problem.tensor, T, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(problem.theta_star, theta, rtol=1e-15)
    assert np.linalg.norm(problem.theta_star) == pytest.approx(1.0, rel=1e-14)
    big = make_problem(FAMILY, TASK, "torch", d=8, n=1).tensor
    for perm in PERMS:
        np.testing.assert_allclose(big, big.transpose(perm), rtol=1e-14, atol=1e-14)  # symmetric (to rounding)
    # Noise of distinct indices is N(0, 1) (the spike's part is tiny there at d = 8), aaaa is N(0, 24).
    idx = [i for i in itertools.combinations(range(8), 4)]
    spike = np.einsum("i,j,k,l->ijkl", *[make_problem(FAMILY, TASK, "torch", d=8, n=1).theta_star] * 4)
    distinct = np.array([(big - spike)[i] for i in idx])
    assert distinct.std() == pytest.approx(1.0, abs=0.15)
    assert np.diagonal(np.diagonal(np.diagonal(big - spike))).std() > 2.0  # the aaaa entries: variance 24


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_loss_by_loops_scale_invariance_and_gradient(framework: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, d=3, n=5, data_seed=2)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    b = backend(framework)
    rng = np.random.default_rng(7)
    for x in rng.standard_normal((4, 3)):
        expected = _value_by_loops(problem.tensor, x)
        got = float(b.to_numpy(oracle.value(b.asarray(x))))
        assert got == pytest.approx(expected, rel=1e-12)
        assert problem.evaluate(b.asarray(x))["objective"] == pytest.approx(expected, rel=1e-12)
        assert float(b.to_numpy(oracle.value(b.asarray(3.7 * x)))) == pytest.approx(expected, rel=1e-12)
        # grad = -(4 / ||x||) (I - u u^T) T(u, u, u): tangent to the sphere, 1/||x|| times the unit one.
        u = x / np.linalg.norm(x)
        Tu = np.einsum("ijkl,j,k,l->i", problem.tensor, u, u, u)
        closed = -4 * (Tu - u * (u @ Tu)) / np.linalg.norm(x)
        g = np.asarray(b.to_numpy(oracle.grad(b.asarray(x))))
        np.testing.assert_allclose(g, closed, rtol=1e-10, atol=1e-12)
        assert abs(g @ x) < 1e-12
        np.testing.assert_allclose(np.asarray(b.to_numpy(oracle.grad(b.asarray(3.7 * x)))), closed / 3.7,
                                   rtol=1e-10, atol=1e-12)


def test_torch_equals_jax_and_the_start() -> None:
    torch_p, jax_p = (make_problem(FAMILY, TASK, f) for f in FRAMEWORKS)
    x = np.random.default_rng(3).standard_normal(16)
    values = [float(backend(f).to_numpy(p.loss(backend(f).asarray(x)))) for f, p in zip(FRAMEWORKS, (torch_p, jax_p))]
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    assert values[0] == pytest.approx(torch_p.evaluate(torch_p.backend.asarray(x))["objective"], rel=1e-12)
    starts = np.array([np.asarray(jax_p.init_params(s)) for s in range(300)])
    np.testing.assert_allclose(np.linalg.norm(starts, axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(starts[4], torch_p.init_params(4).numpy())
    assert np.abs(starts.mean(0)).max() < 0.1  # uniform on the sphere: centred, isotropic
    np.testing.assert_allclose(starts.T @ starts / 300, np.eye(16) / 16, atol=0.03)
    overlaps = [torch_p.evaluate(torch_p.init_params(s))["overlap"] for s in range(300)]
    assert np.median(overlaps) < 0.25  # a random start knows nothing of theta*


def test_unfolding_recovers_theta_star_from_a_few_d_squared_samples() -> None:
    medians = {}
    for n in (1024, 2048, 4096):
        overlaps = []
        for data_seed in range(5):
            problem = make_problem(FAMILY, TASK, "torch", n=n, data_seed=data_seed)
            overlaps.append(abs(_unfolding(np.array(problem.tensor)) @ problem.theta_star))
        medians[n] = float(np.median(overlaps))
        if n == 4096:
            assert min(overlaps) >= 0.95, overlaps
    assert medians[2048] >= 0.95 and 0.85 < medians[1024] < medians[2048] < medians[4096], medians
    # The module's helper is the same estimator.
    problem = make_problem(FAMILY, TASK, "torch", n=2048)
    module = sys.modules[type(problem).__module__]
    assert abs(module.unfolding_estimate(np.array(problem.tensor)) @ _unfolding(np.array(problem.tensor))) == \
        pytest.approx(1.0, abs=1e-10)


def _drive(method, problem, oracle, steps: int, seed: int) -> float:
    x = problem.init_params(seed)
    state = method.init(x, oracle)
    for _ in range(steps):
        x, state = method.step(x, state, oracle)
    out = method.output(x, state) if hasattr(method, "output") else x
    return problem.evaluate(out)["overlap"]


def test_nobody_recovers_theta_star_at_n_d_over_2() -> None:
    """n = d/2 = 8: the median overlap over data seeds stays below 0.3 for the unfolding, gd and langevin-avg."""
    unfolding, gd, langevin = [], [], []
    for data_seed in range(5):
        problem = make_problem(FAMILY, TASK, "torch", n=8, data_seed=data_seed)
        unfolding.append(abs(_unfolding(np.array(problem.tensor)) @ problem.theta_star))
        gd.append(_drive(make_method("baselines", "gd", "torch", lr=0.1), problem,
                         make_oracle(FAMILY, TASK, problem, "torch", seed=data_seed), 100, data_seed))
        langevin.append(_drive(make_method(FAMILY, "langevin-avg", "torch", burn_in=50), problem,
                               make_oracle(FAMILY, TASK, problem, "torch", seed=data_seed), 150, data_seed))
    for name, overlaps in (("unfolding", unfolding), ("gd", gd), ("langevin-avg", langevin)):
        assert np.median(overlaps) < 0.3, (name, overlaps)
