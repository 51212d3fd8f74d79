"""Game methods on sgn-game: sim-gd's exact stability threshold, sgn-step's certified step, extragradient's update.

The issue's must-show: sgn-step converges at its certified step on the scalar game, where the
Euclidean monotonicity margin is negative; sim-gd diverges just above the exact stability
threshold ``h_c = min over eigenvalues lambda of J of 2 Re(lambda) / |lambda|^2`` (the step
where an eigenvalue of the iteration matrix ``I - h J`` leaves the unit disk) and converges just
below it. Every threshold, margin and step is computed here with numpy from the task's ``J``;
the runs go through the real engine (``tests/_runs.py``).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, load_task, make_method, make_oracle, make_problem, run_method  # noqa: E402
from _runs import run_single  # noqa: E402

from harness.catalog import Catalog, builtin_root  # noqa: E402

FAMILY, TASK = "games", "sgn-game"
VARIANTS = ("scalar", "lq64")
FRAMEWORKS = ("torch", "jax")
METHODS = ("sim-gd", "extragradient", "sgn-step")


@functools.cache
def catalog() -> Catalog:
    files = [builtin_root() / "tasks" / FAMILY / f"{TASK}.yaml"]
    files += [builtin_root() / "methods" / FAMILY / f"{m}.yaml" for m in METHODS]
    return Catalog.load(files=files + sorted((builtin_root() / "hardware").glob("*.yaml")), builtin=False)


def game(variant: str, **overrides):
    problem = make_problem(FAMILY, TASK, "torch", variant=variant, **overrides)
    return problem, np.array(problem.J_np)


def threshold(J: np.ndarray) -> float:
    """``h_c``: sim-gd's iteration matrix ``I - h J`` has spectral radius < 1 iff ``h < h_c``."""
    lam = np.linalg.eigvals(J)
    assert lam.real.min() > 0
    return float(np.min(2 * lam.real / np.abs(lam) ** 2))


def spectral_radius(M: np.ndarray) -> float:
    return float(np.abs(np.linalg.eigvals(M)).max())


def certified_step(J: np.ndarray) -> tuple[float, float, float, float]:
    """``(alpha*, L_W, alpha* / L_W^2, w_1 / w_2)`` for two equal blocks, independently of harness.probes.games.

    ``alpha(r)`` for the weight ratio ``r = w_1 / w_2`` is the smallest eigenvalue of the 2 x 2
    matrix ``[[mu_1, -c], [-c, mu_2]]``, ``c = (L_12 sqrt(r) + L_21 / sqrt(r)) / 2``; it is
    maximized by a dense grid over ``log r``, refined by scipy's bounded Brent search.
    """
    import scipy.optimize

    n = J.shape[0] // 2
    mu = [np.linalg.eigvalsh((B + B.T) / 2)[0] for B in (J[:n, :n], J[n:, n:])]
    L12, L21 = np.linalg.norm(J[:n, n:], 2), np.linalg.norm(J[n:, :n], 2)

    def alpha(log_r: float) -> float:
        c = (L12 * np.exp(log_r / 2) + L21 * np.exp(-log_r / 2)) / 2
        return float(np.linalg.eigvalsh(np.array([[mu[0], -c], [-c, mu[1]]]))[0])

    grid = np.linspace(-15, 15, 30001)
    best = grid[int(np.argmax([alpha(u) for u in grid]))]
    result = scipy.optimize.minimize_scalar(lambda u: -alpha(u), bounds=(best - 1e-3, best + 1e-3), method="bounded",
                                            options={"xatol": 1e-12})
    log_r = float(result.x)
    # sqrt(w) for w proportional to (sqrt r, 1 / sqrt r)
    scale = np.concatenate([np.full(n, np.exp(log_r / 4)), np.full(n, np.exp(-log_r / 4))])
    lipschitz = float(np.linalg.norm(scale[:, None] * J / scale[None, :], 2))
    a_star = alpha(log_r)
    return a_star, lipschitz, a_star / lipschitz**2, float(np.exp(log_r))


def test_declarations() -> None:
    for method_id in METHODS:
        method, _ = load_method(FAMILY, method_id)
        assert method.requires == ("player_grads",) and method.paper.startswith("Small-Gain Nash")
    assert set(load_method(FAMILY, "sgn-step")[0].hyperparameters) == {"scale", "fd_step"}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sim_gd_threshold_is_exact(framework: str, variant: str) -> None:
    """Diverged at 1.05 h_c, reaches the target at 0.95 h_c: the iteration matrix's eigenvalues decide."""
    task, _ = load_task(FAMILY, TASK)
    _, J = game(variant)
    h_c = threshold(J)
    I = np.eye(J.shape[0])
    assert spectral_radius(I - 1.05 * h_c * J) > 1 > spectral_radius(I - 0.95 * h_c * J)
    assert abs(spectral_radius(I - h_c * J) - 1) < 1e-12
    assert np.linalg.eigvalsh((J + J.T) / 2)[0] < 0  # not monotone: no Euclidean step-size rule applies

    above = run_single(catalog(), TASK, "sim-gd", framework, params={"variant": variant},
                       hyperparameters={"lr": 1.05 * h_c})
    assert above.row["status"] == "diverged", above.row
    objective = [p["objective"] for p in above.trace]
    assert objective[-1] > 1e3 * objective[0]  # the distance to x* grows
    assert above.row["calls_player_grads"] == above.row["steps"]  # one call per step

    below = run_single(catalog(), TASK, "sim-gd", framework, params={"variant": variant},
                       hyperparameters={"lr": 0.95 * h_c})
    assert below.row["status"] == "reached_target", below.row
    assert below.row["suboptimality"] < task.target.value
    assert below.row["calls_player_grads"] == below.row["steps"] == below.row["steps_to_target"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sgn_step_is_the_certified_step(framework: str, variant: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, variant=variant)
    J = np.array(problem.J_np)
    dim = J.shape[0]
    a_star, lipschitz, step, _ = certified_step(J)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    method = make_method(FAMILY, "sgn-step", framework)
    state = method.init(problem.init_params(0), oracle)
    assert oracle.counts == {"player_grads": 2 * dim}  # the Jacobian by central differences
    assert state.alpha == pytest.approx(a_star, rel=1e-9)
    assert state.lr == pytest.approx(step, rel=1e-6)
    assert 0 < state.lr < threshold(J)
    if variant == "scalar":
        p = load_task(FAMILY, TASK)[0].resolve_parameters({})
        sqrt_ab = np.sqrt(p["a"] * p["b"])
        assert p["mu1"] == p["mu2"] == 1.0
        assert a_star == pytest.approx(1 - sqrt_ab, rel=1e-10)  # the paper's closed form at mu = 1
        assert lipschitz == pytest.approx(1 + sqrt_ab, rel=1e-8)
    # scale multiplies the bound-minimizing step.
    half = make_method(FAMILY, "sgn-step", framework, scale=0.5)
    assert half.init(problem.init_params(0), make_oracle(FAMILY, TASK, problem, framework)).lr == pytest.approx(
        0.5 * state.lr, rel=1e-9)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sgn_step_reaches_the_target_where_the_euclidean_margin_is_negative(framework: str, variant: str) -> None:
    task, _ = load_task(FAMILY, TASK)
    _, J = game(variant)
    dim = J.shape[0]
    assert np.linalg.eigvalsh((J + J.T) / 2)[0] < 0
    result = run_single(catalog(), TASK, "sgn-step", framework, params={"variant": variant})
    row = result.row
    assert row["status"] == "reached_target", row
    assert row["suboptimality"] < task.target.value == pytest.approx(1e-10)
    # init: 2 dim calls (the Jacobian); then one per step.
    assert row["calls_player_grads"] == 2 * dim + row["steps"]
    assert row["steps"] == row["steps_to_target"] <= task.budget.steps
    # The warm-up on the decoy (noise, no certificate) still compiles the step: nothing compiles on the clock.
    assert row["clock_compiles"] == 0, row


@pytest.mark.parametrize("variant", VARIANTS)
def test_sgn_step_contracts_in_the_weighted_metric(variant: str) -> None:
    """Each step shrinks ``||x||_W`` by at least the certified rate ``sqrt(1 - alpha*^2 / L_W^2)``."""
    problem = make_problem(FAMILY, TASK, "torch", variant=variant)
    J = np.array(problem.J_np)
    n = J.shape[0] // 2
    a_star, lipschitz, _, _ = certified_step(J)
    p = load_task(FAMILY, TASK)[0].resolve_parameters({})
    w = np.concatenate([np.full(n, p["b"]), np.full(n, p["a"])])  # w_1 / w_2 = b / a, the two-player optimum
    rate = np.sqrt(1 - a_star**2 / lipschitz**2)
    oracle = make_oracle(FAMILY, TASK, problem, "torch")
    run = run_method(make_method(FAMILY, "sgn-step", "torch"), problem, oracle, "torch", 60)
    norms = np.array([np.sqrt(x @ (w * x)) for x in run["iterates"]])
    assert np.all(norms[1:] <= rate * norms[:-1] * (1 + 1e-6))
    assert oracle.counts == {"player_grads": 2 * 2 * n + 60}


@pytest.mark.parametrize("variant", VARIANTS)
def test_divergence_patience_outlasts_the_certified_transient(variant: str) -> None:
    """At the certified step ``||x_k||^2 <= (w_max / w_min) (1 - alpha*^2 / L_W^2)^k ||x_0||^2``: below the
    start after ``k*`` steps, so no start can keep sgn-step above it for ``divergence_patience`` evaluations."""
    task, _ = load_task(FAMILY, TASK)
    _, J = game(variant)
    a_star, lipschitz, _, r = certified_step(J)
    k_star = np.log(max(r, 1 / r)) / -np.log(1 - a_star**2 / lipschitz**2)
    assert task.evaluation.divergence_patience * task.evaluation.every > k_star


def test_sgn_step_refuses_a_game_without_a_certificate() -> None:
    problem = make_problem(FAMILY, TASK, "torch", variant="scalar", b=0.2)  # a b = 2 > mu1 mu2 = 1
    method = make_method(FAMILY, "sgn-step", "torch")
    J = np.array(problem.J_np)
    assert certified_step(J)[0] < 0  # the best block-weighted margin is negative
    with pytest.raises(ValueError, match="no SGN certificate"):
        method.init(problem.init_params(0), make_oracle(FAMILY, TASK, problem, "torch"))
    # Through the engine the run fails at init, with the reason in its row.
    result = run_single(catalog(), TASK, "sgn-step", "torch", params={"variant": "scalar", "b": 0.2})
    assert result.row["status"] == "error", result.row
    assert "no SGN certificate" in result.row["error"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_extragradient_step_is_the_polynomial(framework: str, variant: str) -> None:
    problem = make_problem(FAMILY, TASK, framework, variant=variant)
    J = np.array(problem.J_np)
    I = np.eye(J.shape[0])
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    h = 0.3
    method = make_method(FAMILY, "extragradient", framework, lr=h)
    x = np.random.default_rng(2).standard_normal(J.shape[0])
    params = backend(framework).asarray(x.copy())
    new, _ = method.step(params, method.init(params, oracle), oracle)
    expected = (I - h * J + h * h * J @ J) @ x
    assert np.abs(np.asarray(backend(framework).to_numpy(new)) - expected).max() < 1e-12 * np.abs(expected).max()
    assert oracle.counts == {"player_grads": 2}
    # sim-gd's step, for contrast: (I - h J) x, one call.
    gd = make_method(FAMILY, "sim-gd", framework, lr=h)
    new, _ = gd.step(params, gd.init(params, oracle), oracle)
    assert np.abs(np.asarray(backend(framework).to_numpy(new)) - (I - h * J) @ x).max() < 1e-12 * np.abs(x).max() * 10
    assert oracle.counts == {"player_grads": 3}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_extragradient_through_the_engine_counts_two_calls_per_step(framework: str) -> None:
    result = run_single(catalog(), TASK, "extragradient", framework, params={"variant": "lq64"})
    row = result.row
    assert row["status"] == "reached_target", row
    assert row["calls_player_grads"] == 2 * row["steps"]
