"""jacobian-asym and sgn-margin against numpy/scipy on the Jacobian of sgn-game, and in a run's trace.

``J`` is read from the task (``problem.J_np``, itself checked against its recipe in
tests/tasks/test_sgn_game.py); every expected value is computed here from it: the Frobenius norms
of its symmetric and antisymmetric parts, ``lambda_min(sym J)``, the block constants, the
two-player SGN margin maximized over the weight ratio (a dense grid refined by scipy, and the
closed form ``alpha* = (mu_1 + mu_2) / 2 - sqrt(((mu_1 - mu_2) / 2)^2 + L_12 L_21)`` at
``w_1 / w_2 = L_21 / L_12``), and ``L_W = ||W^{1/2} J W^{-1/2}||_2``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_task, make_oracle, make_problem  # noqa: E402

from harness.catalog import Catalog, builtin_root  # noqa: E402
from harness.plan import make_plan  # noqa: E402
from harness.probes import ProbeContext, make_probe, probe_output  # noqa: E402
from harness.run import execute_run  # noqa: E402
from harness.spec import Budget, ProbeRef, SuiteEntry, SuiteSpec  # noqa: E402

FAMILY, TASK = "games", "sgn-game"
FRAMEWORKS = ("torch", "jax")
#: (variant, parameter overrides): the defaults, unequal curvatures, and a small-gain violation (a b > mu1 mu2).
GAMES = {
    "scalar": ("scalar", {}),
    "lq64": ("lq64", {}),
    "scalar-uneven": ("scalar", {"mu1": 2.0, "mu2": 0.5, "a": 1.5, "b": 0.4}),
    "lq64-uneven": ("lq64", {"mu1": 2.0, "mu2": 0.5, "a": 1.5, "b": 0.4, "data_seed": 2}),
    "scalar-no-gain": ("scalar", {"b": 0.2}),
    "lq64-no-gain": ("lq64", {"b": 0.2}),
}


def context(problem, framework: str, params) -> tuple[ProbeContext, object]:
    oracle = make_oracle(FAMILY, TASK, problem, framework, seal=False)
    return ProbeContext(step=0, params=params, previous_params=None, state=None, oracle=oracle.uncounted(),
                        problem=problem, method=None, backend=backend(framework), hyperparameters={}), oracle


def expected_margin(J: np.ndarray) -> dict[str, float]:
    """The sgn-margin values of a two-player ``J`` (equal halves), computed without harness.probes.games."""
    import scipy.optimize

    n = J.shape[0] // 2
    mu = [np.linalg.eigvalsh((B + B.T) / 2)[0] for B in (J[:n, :n], J[n:, n:])]
    L12, L21 = np.linalg.norm(J[:n, n:], 2), np.linalg.norm(J[n:, :n], 2)

    def alpha(log_r: float) -> float:  # r = w_1 / w_2
        c = (L12 * np.exp(log_r / 2) + L21 * np.exp(-log_r / 2)) / 2
        return float(np.linalg.eigvalsh(np.array([[mu[0], -c], [-c, mu[1]]]))[0])

    grid = np.linspace(-15, 15, 30001)
    best = grid[int(np.argmax([alpha(u) for u in grid]))]
    log_r = float(scipy.optimize.minimize_scalar(lambda u: -alpha(u), bounds=(best - 1e-3, best + 1e-3),
                                                 method="bounded", options={"xatol": 1e-12}).x)
    a_star = alpha(log_r)
    # The closed form: c(r) is least, sqrt(L12 L21), at r = L21 / L12, whatever mu.
    closed = (mu[0] + mu[1]) / 2 - np.sqrt(((mu[0] - mu[1]) / 2) ** 2 + L12 * L21)
    assert a_star == pytest.approx(closed, rel=1e-10, abs=1e-12)
    assert log_r == pytest.approx(np.log(L21 / L12), abs=1e-5)
    r = np.exp(log_r)
    scale = np.concatenate([np.full(n, r ** 0.25), np.full(n, r ** -0.25)])
    lipschitz = np.linalg.norm(scale[:, None] * J / scale[None, :], 2)
    return {
        "euclidean_margin": float(np.linalg.eigvalsh((J + J.T) / 2)[0]),
        "sgn_margin": a_star,
        "safe_step": a_star / lipschitz**2 if a_star > 0 else 0.0,
        "weight.1": r / (1 + r),
        "weight.2": 1 / (1 + r),
    }


@functools.cache
def probed(name: str, framework: str) -> tuple[np.ndarray, dict, dict, dict]:
    variant, overrides = GAMES[name]
    problem = make_problem(FAMILY, TASK, framework, variant=variant, **overrides)
    ctx, oracle = context(problem, framework, problem.init_params(1))
    asym = make_probe("jacobian-asym", {})(ctx)
    margin = make_probe("sgn-margin", {})(ctx)
    assert oracle.counts == {}  # probes use the uncounted view
    return np.array(problem.J_np), asym, margin, {**load_task(FAMILY, TASK)[0].resolve_parameters(overrides)}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", sorted(GAMES))
def test_jacobian_asymmetry_matches_numpy(framework: str, name: str) -> None:
    J, asym, _, _ = probed(name, framework)
    s = np.linalg.norm((J + J.T) / 2, "fro")
    a = np.linalg.norm((J - J.T) / 2, "fro")
    assert set(asym) == {"ratio", "sym_norm", "antisym_norm"}
    assert asym["sym_norm"] == pytest.approx(s, rel=1e-8)
    assert asym["antisym_norm"] == pytest.approx(a, rel=1e-8)
    assert asym["ratio"] == pytest.approx(s / (s + a), rel=1e-8)
    assert 0 < asym["ratio"] < 1  # neither a potential nor a pure rotation


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", sorted(GAMES))
def test_sgn_margin_matches_the_two_player_certificate(framework: str, name: str) -> None:
    J, _, margin, p = probed(name, framework)
    expected = expected_margin(J)
    assert set(margin) == set(expected)
    assert margin["euclidean_margin"] == pytest.approx(expected["euclidean_margin"], rel=1e-8)
    assert margin["sgn_margin"] == pytest.approx(expected["sgn_margin"], rel=1e-8, abs=1e-10)
    assert margin["weight.1"] + margin["weight.2"] == pytest.approx(1.0, rel=1e-12)
    # The block constants of both variants are the parameters: mu_i, L_12 = a, L_21 = b.
    closed = (p["mu1"] + p["mu2"]) / 2 - np.sqrt(((p["mu1"] - p["mu2"]) / 2) ** 2 + p["a"] * p["b"])
    assert margin["sgn_margin"] == pytest.approx(closed, rel=1e-8, abs=1e-10)
    if p["a"] * p["b"] < p["mu1"] * p["mu2"]:  # small gain: a certificate, at w_1 / w_2 = b / a
        assert margin["sgn_margin"] > 0
        assert margin["weight.1"] == pytest.approx(p["b"] / (p["a"] + p["b"]), rel=1e-5)
        assert margin["weight.1"] == pytest.approx(expected["weight.1"], rel=1e-5)
        assert margin["safe_step"] == pytest.approx(expected["safe_step"], rel=1e-5)
        assert margin["safe_step"] > 0
    else:  # a b > mu1 mu2: no block-weighted certificate, no safe step
        assert margin["sgn_margin"] < 0 and margin["safe_step"] == 0.0


@pytest.mark.parametrize("name", ["scalar", "lq64"])
def test_defaults_the_declaration_states(name: str) -> None:
    """At the defaults (mu = 1): Euclidean margin < 0, alpha* = 1 - sqrt(a b) and, scalar, 1 - (a + b) / 2."""
    J, _, margin, p = probed(name, "torch")
    assert p["mu1"] == p["mu2"] == 1.0 and p["a"] * p["b"] < 1
    assert margin["euclidean_margin"] < 0 < margin["sgn_margin"]
    assert margin["sgn_margin"] == pytest.approx(1 - np.sqrt(p["a"] * p["b"]), rel=1e-9)
    if name == "scalar":
        assert margin["euclidean_margin"] == pytest.approx(1 - (p["a"] + p["b"]) / 2, rel=1e-9)
        # One-dimensional blocks: the block bound is the exact weighted margin, so alpha* is also
        # max over w of lambda_min(sym(W^{1/2} J W^{-1/2})), found here on a dense grid.
        exact = max(np.linalg.eigvalsh((M + M.T) / 2)[0] for M in
                    (np.diag([r ** 0.25, r ** -0.25]) @ J @ np.diag([r ** -0.25, r ** 0.25])
                     for r in np.exp(np.linspace(-10, 10, 20001))))
        assert margin["sgn_margin"] == pytest.approx(exact, rel=1e-6)
        gain = np.sqrt(p["a"] * p["b"])  # alpha* = 1 - gain, L_W = 1 + gain
        assert margin["safe_step"] == pytest.approx((1 - gain) / (1 + gain) ** 2, rel=1e-6)
    else:
        # 32-dimensional blocks: the certificate is a lower bound on the exact weighted margin.
        r = margin["weight.1"] / margin["weight.2"]
        scale = np.concatenate([np.full(32, r ** 0.25), np.full(32, r ** -0.25)])
        M = scale[:, None] * J / scale[None, :]
        assert np.linalg.eigvalsh((M + M.T) / 2)[0] >= margin["sgn_margin"] - 1e-9


def test_without_player_grads_the_probes_read_the_hessian() -> None:
    """On a minimization task the Jacobian is the Hessian: symmetric, ratio 1, both margins its lambda_min."""
    import torch

    problem = make_problem("convex", "robust-logreg", "torch")
    oracle = make_oracle("convex", "robust-logreg", problem, "torch", seal=False)
    params = problem.init_params(1)
    ctx = ProbeContext(step=0, params=params, previous_params=None, state=None, oracle=oracle.uncounted(),
                       problem=problem, method=None, backend=backend("torch"), hyperparameters={})
    H = torch.autograd.functional.hessian(problem.loss, params).numpy()
    asym = make_probe("jacobian-asym", {})(ctx)
    assert asym["sym_norm"] == pytest.approx(np.linalg.norm(H, "fro"), rel=1e-6)
    assert asym["antisym_norm"] < 1e-6 * asym["sym_norm"] and asym["ratio"] == pytest.approx(1.0, abs=1e-6)
    margin = make_probe("sgn-margin", {})(ctx)
    lam_min = np.linalg.eigvalsh(H)[0]
    assert margin["euclidean_margin"] == pytest.approx(lam_min, rel=1e-5, abs=1e-8)
    assert margin["weight.1"] == 1.0  # one block without a layout
    assert oracle.counts == {}


def test_probe_columns_in_the_trace_of_a_run() -> None:
    files = [builtin_root() / "tasks" / FAMILY / f"{TASK}.yaml", builtin_root() / "methods" / FAMILY / "sim-gd.yaml"]
    catalog = Catalog.load(files=files + sorted((builtin_root() / "hardware").glob("*.yaml")), builtin=False)
    suite = SuiteSpec(id="probe", entries=(SuiteEntry(
        tasks=(TASK,), methods=("sim-gd",), budget=Budget(steps=30),
        probes=(ProbeRef(id="jacobian-asym", options={}), ProbeRef(id="sgn-margin", options={})),),))
    (run,) = make_plan(catalog, suite=suite).runs
    result = execute_run(run, catalog)
    assert result.status == "completed", result.row["error"]
    J, asym, margin, _ = probed("scalar", "torch")
    columns = {name for point in result.trace for name in point if "/" in name}
    assert columns == {f"jacobian-asym/{k}" for k in asym} | {f"sgn-margin/{k}" for k in margin}
    assert all(probe_output(c) is not None for c in columns)  # every value has a declared reading
    assert len(result.trace) == 4
    for point in result.trace:  # J is constant: the same values at every point
        for k, v in margin.items():
            assert point[f"sgn-margin/{k}"] == pytest.approx(v, rel=1e-6, abs=1e-12)
        assert point["jacobian-asym/ratio"] == pytest.approx(asym["ratio"], rel=1e-8)
    assert "calls_player_grads" in result.row and result.row["calls_player_grads"] == 30  # probing is free
