"""Gradient-surgery rules (equal weights, MGDA, PCGrad, CAGrad) against hand formulas, scipy and CAGrad's toy.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "methods" / "multitask"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cagrad_reference as toy  # noqa: E402
import surgery  # noqa: E402

RNG = np.random.default_rng(0)
PAIRS = [RNG.standard_normal((2, 5)) for _ in range(6)] + [
    np.array([[1.0, 0.0], [-1.0, 0.1]]),  # strongly conflicting
    np.array([[1.0, 2.0], [2.0, 4.1]]),  # nearly parallel
    np.array([[3.0, 0.0], [0.0, 0.2]]),  # unequal magnitudes
]


def _simplex_qp(objective, tasks):
    cons = ({"type": "eq", "fun": lambda w: w.sum() - 1},)
    best = None
    for start in [np.full(tasks, 1 / tasks)] + list(np.eye(tasks) * 0.9 + 0.1 / tasks):
        res = scipy.optimize.minimize(objective, start, method="SLSQP", bounds=[(0, 1)] * tasks, constraints=cons,
                                      options={"ftol": 1e-15, "maxiter": 1000})
        if best is None or res.fun < best.fun:
            best = res
    return best.x, best.fun


def _pcgrad_by_hand(G, order):
    rows = []
    for i in range(len(G)):
        g = G[i].copy()
        for k in order:
            dot = g @ G[k]
            if dot < 0:
                g = g - dot / (G[k] @ G[k]) * G[k]
        rows.append(g)
    return np.mean(rows, axis=0)


def test_adam_matches_torch_optim_adam_on_a_fixed_direction_sequence() -> None:
    import torch

    directions = RNG.standard_normal((50, 4)) * np.logspace(-3, 1, 50)[:, None]
    x = torch.tensor(RNG.standard_normal(4), dtype=torch.float64, requires_grad=True)
    ref = torch.optim.Adam([x], lr=0.01)
    mine, m, v = x.detach().clone(), torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    for t, d in enumerate(directions, 1):
        x.grad = torch.tensor(d)
        ref.step()
        mine, m, v = surgery.adam_update(mine, torch.tensor(d), m, v, torch.tensor(float(t), dtype=torch.float64), 0.01)
        assert torch.allclose(mine, x.detach(), rtol=0, atol=1e-14)


def test_pcgrad_and_mgda_match_directions_worked_out_by_hand() -> None:
    # Two tasks, g1 = (1, 0), g2 = (-1, 1): g1 . g2 = -1 < 0, so PCGrad projects both:
    # g1' = g1 + g2 / 2 = (1/2, 1/2), g2' = g2 + g1 = (0, 1); the mean is (1/4, 3/4).
    # MGDA: |w g1 + (1 - w) g2|^2 = (2w - 1)^2 + (1 - w)^2 is least at w = 3/5: d = (1/5, 2/5),
    # with g1 . d = g2 . d = 1/5 (equal improvement: the min-norm point's optimality condition).
    G = np.array([[1.0, 0.0], [-1.0, 1.0]])
    for order in ([0, 1], [1, 0]):
        np.testing.assert_allclose(surgery.pcgrad_direction(G, order), [1 / 4, 3 / 4], atol=1e-15)
    np.testing.assert_allclose(surgery.mgda_direction(G)[0], [1 / 5, 2 / 5], atol=1e-12)
    # Three tasks, g1 = e1, g2 = e2, g3 = (-1, 0, 1), order (1, 2, 3): only g1 and g3 conflict
    # (g1 . g3 = -1): g1' = g1 + g3 / 2 = (1/2, 0, 1/2), g2' = g2, g3' = g3 + g1 = (0, 0, 1), which
    # no longer conflicts with the original g3 (their dot is 1); the mean is (1/6, 1/3, 1/2).
    # MGDA: stationarity of |(w1 - w3, w2, w3)|^2 on the simplex gives w1 - w3 = w2 and w3 = 2 w2,
    # so w = (1/2, 1/6, 1/3) and d = (1/6, 1/6, 1/3), with g_i . d = 1/6 for every task.
    G = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(surgery.pcgrad_direction(G, [0, 1, 2]), [1 / 6, 1 / 3, 1 / 2], atol=1e-15)
    np.testing.assert_allclose(surgery.mgda_direction(G)[0], [1 / 6, 1 / 6, 1 / 3], atol=1e-12)
    np.testing.assert_allclose(surgery.min_norm_weights(G @ G.T)[0], [1 / 2, 1 / 6, 1 / 3], atol=1e-12)
    # A Pareto-stationary set (0 in the hull of e1, e2, -e1 - e2): MGDA's direction is zero.
    G = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    np.testing.assert_allclose(surgery.mgda_direction(G)[0], [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("G", PAIRS)
def test_two_task_rules_match_toy_py_and_hand_formulas(G) -> None:
    # toy.py takes columns; it is the authors' own code.
    np.testing.assert_allclose(surgery.mean_direction(G), toy.mean_grad(G.T), atol=1e-15)
    np.testing.assert_allclose(surgery.pcgrad_direction(G, [1, 0]), toy.pcgrad(G.T), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(surgery.pcgrad_direction(G, [0, 1]), _pcgrad_by_hand(G, [0, 1]), rtol=1e-12, atol=1e-14)
    # MGDA's closed form (toy.py's mgd adds 1e-8 to its denominator: agreement to ~1e-8).
    direction, gap = surgery.mgda_direction(G)
    np.testing.assert_allclose(direction, toy.mgd(G.T), rtol=1e-6, atol=1e-8)
    assert gap <= surgery.MGDA_GAP
    # CAGrad: toy.py solves its 1-D dual with minimize_scalar (xatol 1e-5); ours is closed form.
    ours, theirs = surgery.cagrad_direction(G, 0.5), toy.cagrad(G.T, c=0.5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(G).max())


@pytest.mark.parametrize("G", PAIRS)
def test_cagrad_two_task_dual_is_the_exact_minimum_of_toy_py_objective(G) -> None:
    g11, g12, g22 = G[0] @ G[0], G[0] @ G[1], G[1] @ G[1]
    coef = 0.5 * 0.5 * np.sqrt(g11 + g22 + 2 * g12 + 1e-4)
    obj = lambda x: coef * np.sqrt(x**2 * (g11 + g22 - 2 * g12) + 2 * x * (g12 - g22) + g22 + 1e-4) + \
        0.5 * x * (g11 + g22 - 2 * g12) + (0.5 + x) * (g12 - g22) + g22  # noqa: E731  (toy.py's obj)
    x = surgery._cagrad_weight_two(g11, g12, g22, coef)
    grid = np.linspace(0, 1, 100001)
    assert obj(x) <= obj(grid).min() + 1e-12
    # The general solver (SLSQP, checked) agrees with the closed form.
    w = surgery._cagrad_weights_many(G @ G.T, coef)
    assert obj(w[0]) <= obj(x) + 1e-8 * max(g11, g22)


@pytest.mark.parametrize("seed", range(4))
def test_three_task_mgda_and_cagrad_match_slsqp_and_pcgrad_matches_by_hand(seed) -> None:
    rng = np.random.default_rng(seed + 10)
    G = rng.standard_normal((3, 4))
    G[2] = -0.6 * G[0] + 0.3 * rng.standard_normal(4)  # one conflicting pair at least
    K = G @ G.T
    w_qp, f_qp = _simplex_qp(lambda w: w @ K @ w, 3)
    direction, gap = surgery.mgda_direction(G)
    assert direction @ direction <= f_qp + 1e-10 and gap <= surgery.MGDA_GAP
    np.testing.assert_allclose(direction, w_qp @ G, atol=1e-5)
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        np.testing.assert_allclose(surgery.pcgrad_direction(G, order), _pcgrad_by_hand(G, order), rtol=1e-12, atol=1e-14)
    c = 0.5
    g0 = G.mean(0)
    coef = c * np.sqrt(g0 @ g0 + 1e-4 / 9)
    dual = lambda w: w @ K @ np.full(3, 1 / 3) + coef * np.sqrt(w @ K @ w + 1e-4)  # noqa: E731  (NYUv2 code's objfn)
    # An independent reference, not the solver under test: the dual on a 1/800 grid of the 2-simplex.
    a, b = np.meshgrid(np.linspace(0, 1, 801), np.linspace(0, 1, 801))
    grid = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], 1)
    grid = grid[grid[:, 2] >= -1e-12].clip(0)
    values = (grid @ K @ np.full(3, 1 / 3)) + coef * np.sqrt(((grid @ K) * grid).sum(1) + 1e-4)
    w = surgery._cagrad_weights_many(K, coef)
    assert dual(w) <= values.min() + 1e-12 and abs(w.sum() - 1) < 1e-12 and (w >= 0).all()
    gw = w @ G
    expected = (g0 + coef / (np.sqrt(gw @ gw + 1e-4) + 1e-4) * gw) / (1 + c)
    np.testing.assert_allclose(surgery.cagrad_direction(G, c), expected, rtol=1e-12, atol=1e-14)
    near = grid[values.argmin()] @ G  # the grid's direction is within its resolution of the solver's
    assert np.linalg.norm(near - gw) <= 2e-2 * np.abs(G).max()


def test_cagrad_raises_in_torch_and_jax_when_its_dual_check_fails(monkeypatch) -> None:
    import jax
    import jax.numpy as jnp
    import torch

    G = np.random.default_rng(5).standard_normal((3, 4))
    monkeypatch.setattr(surgery, "CAGRAD_GAP", -1.0)  # no solve can pass: the failure path runs
    with pytest.raises(RuntimeError, match="CAGrad dual solve failed"):
        surgery.cagrad_direction(torch.tensor(G), 0.5)
    with pytest.raises(Exception, match="CAGrad dual solve failed"):
        np.asarray(jax.jit(lambda g: surgery.cagrad_direction(g, 0.5))(jnp.asarray(G)))


def test_mgda_raises_in_torch_and_jax_when_its_gap_check_fails(monkeypatch) -> None:
    import jax
    import jax.numpy as jnp
    import torch

    G = np.array([[1.0, 0.0], [-1.0, 0.5]])
    monkeypatch.setattr(surgery, "MGDA_GAP", -1.0)  # no solve can pass: the failure path runs
    method = surgery.MGDA(optimizer="sgd", lr=0.1)
    with pytest.raises(RuntimeError, match="Frank-Wolfe gap"):
        method._combine(torch.tensor(G), None)
    with pytest.raises(Exception, match="MGDA min-norm solve failed"):
        np.asarray(jax.jit(lambda g: method._combine(g, None)[0])(jnp.asarray(G)))


def test_frameworks_agree_on_every_rule() -> None:
    import jax
    import jax.numpy as jnp
    import torch

    jax.config.update("jax_enable_x64", True)
    G = np.random.default_rng(3).standard_normal((3, 6))
    for rule in (lambda g: surgery.mgda_direction(g)[0], lambda g: surgery.cagrad_direction(g, 0.5),
                 lambda g: surgery.pcgrad_direction(g, [2, 0, 1])):
        ref = rule(G)
        np.testing.assert_allclose(rule(torch.tensor(G)).numpy(), ref, atol=1e-10)
        np.testing.assert_allclose(np.asarray(jax.jit(rule)(jnp.asarray(G))), ref, atol=1e-10)
