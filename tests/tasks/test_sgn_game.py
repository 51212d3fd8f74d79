"""sgn-game: the block Jacobian against its recipe, the margins it is built for, and the oracle against numpy.

Player ``i`` minimizes ``f_i``; the pseudo-gradient is ``F(x) = J x`` with
``J = [[A_11, A_12], [A_21, A_22]]``. Every expected value is computed here from the task's
declared parameters: ``J`` is rebuilt from the declaration's recipe, its block constants are read
with numpy, and the oracle's answers are checked against ``J x`` and against autodiff of each
player's own loss in the test's own framework code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "games", "sgn-game"
VARIANTS = ("scalar", "lq64")
FRAMEWORKS = ("torch", "jax")


def defaults() -> dict:
    task, _ = load_task(FAMILY, TASK)
    return task.resolve_parameters({})


def haar(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def expected_J(variant: str, *, mu1: float, mu2: float, a: float, b: float, data_seed: int, **_: object) -> np.ndarray:
    """``J`` from the declaration's notes: scalar ``[[mu1, a], [b, mu2]]``; lq64 from ``default_rng(data_seed)``."""
    if variant == "scalar":
        return np.array([[mu1, a], [b, mu2]])
    n = 32
    rng = np.random.default_rng(data_seed)
    own = []
    for mu in (mu1, mu2):
        q = haar(rng, n)
        s = np.concatenate([[1.0], rng.uniform(1.0, 2.0, n - 1)])
        own.append((q * (mu * s)) @ q.T)
    u12, u21 = haar(rng, n), haar(rng, n)
    return np.block([[own[0], a * u12], [b * u21, own[1]]])


def problem_J(problem) -> np.ndarray:
    return np.asarray(problem.J_np)


def test_declaration() -> None:
    task, _ = load_task(FAMILY, TASK)
    assert task.family == FAMILY and task.paper.startswith("Small-Gain Nash")
    assert {"value", "grad", "player_grads"} <= set(task.provides)
    assert task.target.metric == "suboptimality" and task.dtype == "float64"
    assert set(task.implementations) == set(FRAMEWORKS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("overrides", [{}, {"mu1": 2.0, "mu2": 0.5, "a": 3.0, "b": 0.25, "data_seed": 3}])
def test_jacobian_is_the_declared_formula(variant: str, overrides: dict) -> None:
    params = {**defaults(), **overrides, "variant": variant}
    problem = make_problem(FAMILY, TASK, "torch", **{**overrides, "variant": variant})
    J, expected = problem_J(problem), expected_J(**params)
    assert J.shape == expected.shape == ((2, 2) if variant == "scalar" else (64, 64))
    assert np.abs(J - expected).max() < 1e-12 * np.abs(expected).max()
    # The layout has one block per player, splitting the vector in halves.
    n = J.shape[0] // 2
    assert [(name, tuple(shape)) for name, shape in problem.layout] == [("x1", (n,)), ("x2", (n,))]


@pytest.mark.parametrize("overrides", [{}, {"mu1": 2.0, "mu2": 0.5, "a": 3.0, "b": 0.25, "data_seed": 3}])
def test_lq64_block_constants_are_exact(overrides: dict) -> None:
    params = {**defaults(), **overrides}
    J = problem_J(make_problem(FAMILY, TASK, "torch", variant="lq64", **overrides))
    n = J.shape[0] // 2
    A11, A12, A21, A22 = J[:n, :n], J[:n, n:], J[n:, :n], J[n:, n:]
    for own, mu in ((A11, params["mu1"]), (A22, params["mu2"])):
        assert np.array_equal(own, own.T)  # exactly symmetric own blocks
        eig = np.linalg.eigvalsh(own)
        assert eig[0] == pytest.approx(mu, rel=1e-12)
        assert eig[-1] <= 2 * mu * (1 + 1e-12) and eig[-1] > 1.5 * mu  # s_i in [1, 2], 31 uniform draws
    for block, norm in ((A12, params["a"]), (A21, params["b"])):
        singular = np.linalg.svd(block, compute_uv=False)
        assert singular[0] == pytest.approx(norm, rel=1e-12)
        assert singular[-1] == pytest.approx(norm, rel=1e-12)  # a multiple of an orthogonal matrix


def test_data_seed_changes_lq64_only() -> None:
    lq0 = problem_J(make_problem(FAMILY, TASK, "torch", variant="lq64"))
    lq1 = problem_J(make_problem(FAMILY, TASK, "torch", variant="lq64", data_seed=1))
    assert np.abs(lq0 - lq1).max() > 0.1
    scalar0 = problem_J(make_problem(FAMILY, TASK, "torch", variant="scalar"))
    scalar1 = problem_J(make_problem(FAMILY, TASK, "torch", variant="scalar", data_seed=1))
    assert np.array_equal(scalar0, scalar1)


def test_scalar_euclidean_margin_is_negative_while_small_gain_holds() -> None:
    p = defaults()
    J = problem_J(make_problem(FAMILY, TASK, "torch", variant="scalar"))
    margin = np.linalg.eigvalsh((J + J.T) / 2)[0]
    # sym J = [[mu, (a + b)/2], [(a + b)/2, mu]] at mu1 = mu2 = mu: lambda_min = mu - (a + b) / 2.
    assert p["mu1"] == p["mu2"]
    assert margin == pytest.approx(p["mu1"] - (p["a"] + p["b"]) / 2, rel=1e-12)
    assert margin < 0  # the Euclidean (Rosen) certificate fails ...
    assert p["a"] * p["b"] < p["mu1"] * p["mu2"]  # ... while the block small-gain condition holds
    # and J itself is stable: every eigenvalue in the right half plane.
    assert np.linalg.eigvals(J).real.min() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_lq64_euclidean_margin_is_negative(variant: str) -> None:
    J = problem_J(make_problem(FAMILY, TASK, "torch", variant=variant))
    assert np.linalg.eigvalsh((J + J.T) / 2)[0] < 0
    assert np.linalg.eigvals(J).real.min() > 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_nash_point_and_f_star(framework: str, variant: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, variant=variant)
    oracle = make_oracle(FAMILY, TASK, problem, framework, seal=False).uncounted()
    to_numpy = backend(framework).to_numpy
    J = problem_J(problem)
    assert abs(np.linalg.det(J)) > 0 and np.linalg.matrix_rank(J) == J.shape[0]  # x* = 0 is the only zero of F
    assert problem.f_star == 0.0
    x_star = np.asarray(problem.x_star)
    assert np.array_equal(x_star, np.zeros(J.shape[0]))
    at_star = backend(framework).asarray(x_star.copy())
    assert np.array_equal(np.asarray(to_numpy(oracle.player_grads(at_star))), np.zeros_like(x_star))
    assert float(to_numpy(oracle.value(at_star))) == 0.0
    assert problem.evaluate(at_star) == {"objective": 0.0, "grad_norm": 0.0}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_player_grads_is_J_x_and_autodiff_of_own_losses(framework: str, variant: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, variant=variant)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    J = expected_J(**{**defaults(), "variant": variant})
    n = J.shape[0] // 2
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.standard_normal(J.shape[0])
        params = backend(framework).asarray(x.copy())
        field = np.asarray(backend(framework).to_numpy(oracle.player_grads(params)))
        assert np.abs(field - J @ x).max() < 1e-12 * max(1.0, np.abs(J @ x).max())
        # The test's own autodiff: player i's gradient of f_i in its own block.
        if framework == "torch":
            import torch

            own = []
            for i, block in enumerate((slice(0, n), slice(n, 2 * n))):
                p = torch.tensor(x, dtype=torch.float64, requires_grad=True)
                (g,) = torch.autograd.grad(problem.player_losses(p)[i], p)
                own.append(g[block].numpy())
        else:
            import jax

            own = [np.asarray(jax.grad(lambda p, i=i: problem.player_losses(p)[i])(params))[block]
                   for i, block in enumerate((slice(0, n), slice(n, 2 * n)))]
        assert np.abs(np.concatenate(own) - J @ x).max() < 1e-12 * max(1.0, np.abs(J @ x).max())
        # The player losses themselves, from the formula.
        x1, x2 = x[:n], x[n:]
        losses = np.asarray(backend(framework).to_numpy(problem.player_losses(params)))
        f1 = 0.5 * x1 @ J[:n, :n] @ x1 + x1 @ J[:n, n:] @ x2
        f2 = 0.5 * x2 @ J[n:, n:] @ x2 + x2 @ J[n:, :n] @ x1
        assert losses == pytest.approx([f1, f2], rel=1e-12, abs=1e-12)
    assert oracle.counts == {"player_grads": 3}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_value_and_grad_are_the_hamiltonian(framework: str, variant: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, variant=variant)
    oracle = make_oracle(FAMILY, TASK, problem, framework, seal=False).uncounted()
    to_numpy = backend(framework).to_numpy
    J = expected_J(**{**defaults(), "variant": variant})
    x = np.random.default_rng(3).standard_normal(J.shape[0])
    params = backend(framework).asarray(x.copy())
    value = float(to_numpy(oracle.value(params)))
    grad = np.asarray(to_numpy(oracle.grad(params)))
    F = J @ x
    assert value == pytest.approx(0.5 * F @ F, rel=1e-12)
    assert np.abs(grad - J.T @ F).max() < 1e-11 * np.abs(J.T @ F).max()
    v2, g2 = oracle.value_and_grad(params)
    assert float(to_numpy(v2)) == pytest.approx(value, rel=1e-14)
    assert np.abs(np.asarray(to_numpy(g2)) - grad).max() < 1e-12 * np.abs(grad).max()
    # Central differences of value along random directions agree with grad.
    rng = np.random.default_rng(4)
    for _ in range(3):
        d = rng.standard_normal(x.size)
        h = 1e-5
        plus = float(to_numpy(oracle.value(backend(framework).asarray(x + h * d))))
        minus = float(to_numpy(oracle.value(backend(framework).asarray(x - h * d))))
        assert (plus - minus) / (2 * h) == pytest.approx(grad @ d, rel=1e-6)
    # The metrics: squared distance to x* = 0 and ||F||.
    metrics = problem.evaluate(params)
    assert metrics["objective"] == pytest.approx(x @ x, rel=1e-14)
    assert metrics["grad_norm"] == pytest.approx(np.linalg.norm(F), rel=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_seed_only_changes_the_start(variant: str) -> None:
    dim = expected_J(**{**defaults(), "variant": variant}).shape[0]
    starts = {}
    for framework in FRAMEWORKS:
        problem = make_problem(FAMILY, TASK, framework, variant=variant)
        for seed in (0, 1):
            x = np.asarray(backend(framework).to_numpy(problem.init_params(seed)))
            assert np.array_equal(x, np.random.default_rng(seed).standard_normal(dim))  # N(0, I) from the seed
            starts[framework, seed] = x
    assert np.array_equal(starts["torch", 0], starts["jax", 0])  # the same start in every framework
    assert not np.allclose(starts["torch", 0], starts["torch", 1])
    # The game does not depend on the run seed: one instance serves every seed, and its J is the
    # recipe's (fixed by data_seed) whichever start is drawn first.
    problem = make_problem(FAMILY, TASK, "torch", variant=variant)
    problem.init_params(5)
    assert np.array_equal(problem_J(problem), problem_J(make_problem(FAMILY, TASK, "jax", variant=variant)))
