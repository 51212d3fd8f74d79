"""coupled-langevin on quadratic-well: stationary errors against the exact closed forms of its discretization.

Per coordinate of curvature ``h`` the N replicas' deviations ``y = x - x*`` follow the linear
recursion ``y <- M y + sigma sqrt(dt) xi`` with ``M = (1 - h dt) I - k dt L``. ``L = U diag(lam)
U^T`` decouples it into modes ``a_j <- (1 - (h + k lam_j) dt) a_j + sigma sqrt(dt) eta_j``, AR(1)
processes of stationary variance ``v_j = sigma^2 dt / (1 - (1 - (h + k lam_j) dt)^2)``. The mean is
mode 0 (``lam_0 = 0``, ``u_0 = 1 / sqrt(N)``): variance ``v_0 / N`` whatever ``k`` (the redundancy
gain, ``h v_0 / N -> sigma^2 / (2 N)`` as ``dt -> 0``); replica 0 has ``sum_j U_0j^2 v_j`` (``sigma^2
/ (2 h)`` at ``k = 0``), the spread around the mean ``(1 / N) sum_{j >= 1} v_j``. Both shrink as
``k lam_j`` grows, the ring's slowly (its ``lam_2`` is small). The tests below compare time averages
after a burn-in with these forms, computed here, within 4 standard errors from batch means.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import backend, load_entry, load_method, make_method, make_oracle, make_problem  # noqa: E402
from _runs import run_single  # noqa: E402

FAMILY, TASK = "sampling", "quadratic-well"
D, N, SIGMA, DT = 64, 8, 1.0, 0.05
BURN, BATCH = 200, 200  # steps; the slowest mode (h = 1) forgets in ~20 steps, its squares in ~20
COUPLINGS = (0.0, 0.25, 1.0)
# k = 0 is the same system on either graph; the ring at the largest k only (each config costs a compile).
CONFIGS = (("complete", 0.0), ("complete", 0.25), ("complete", 1.0), ("ring", 1.0))
SEED = 3


def _module():
    method, path = load_method(FAMILY, "coupled-langevin")
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


def _laplacian(graph: str, n: int) -> np.ndarray:
    """Degree minus adjacency, from the edge list (independent of the method's construction)."""
    edges = {(i, j) for i in range(n) for j in range(i + 1, n)} if graph == "complete" else \
        {tuple(sorted((i, (i + 1) % n))) for i in range(n) if n > 1 and i != (i + 1) % n}
    L = np.zeros((n, n))
    for i, j in edges:
        L[i, i] += 1
        L[j, j] += 1
        L[i, j] -= 1
        L[j, i] -= 1
    return L


def _closed_forms(h: np.ndarray, graph: str, k: float, *, n: int = N, sigma: float = SIGMA, dt: float = DT) -> dict:
    """Stationary energies ``sum_i h_i E[.]`` of the mean, of replica 0 and of the spread, mode by mode."""
    lam, U = np.linalg.eigh(_laplacian(graph, n))
    out = {"mean": 0.0, "replica": 0.0, "spread": 0.0}
    for hi in h:
        factor = 1 - (hi + k * lam) * dt
        assert np.all(np.abs(factor) < 1)  # a stable discretization
        v = sigma**2 * dt / (1 - factor**2)
        out["mean"] += hi * v[0] / n
        out["replica"] += hi * float(U[0] ** 2 @ v)
        out["spread"] += hi * v[1:].sum() / n
    return out


def _mean_and_se(series: np.ndarray) -> tuple[float, float]:
    """Time average after the burn-in and its standard error by batch means."""
    kept = series[BURN:]
    batches = kept[: len(kept) // BATCH * BATCH].reshape(-1, BATCH).mean(1)
    return float(batches.mean()), float(batches.std(ddof=1) / math.sqrt(len(batches)))


def _setup(framework: str, **hyperparameters):
    """Problem (d = D), sealed oracle, method, and its state started at ``x*``; the curvatures and ``x*``."""
    problem = make_problem(FAMILY, TASK, framework, d=D)
    oracle = make_oracle(FAMILY, TASK, problem, framework, seed=SEED)
    method = make_method(FAMILY, "coupled-langevin", framework, replicas=N, sigma=SIGMA, dt=DT, readout="mean",
                         **hyperparameters)
    b = backend(framework)
    params = b.asarray(np.array(problem.x_star))
    return oracle, method, params, method.init(params, oracle), b.asarray(np.array(problem.h_np)), \
        b.asarray(np.array(problem.x_star))


def _energies(X, h, c) -> list:
    """Energies ``sum_i h_i (.)_i^2`` of the replicas' mean, of replica 0 and of their spread around the mean."""
    Y = X - c
    m = Y.mean(0)
    return [h @ (m * m), h @ (Y[0] * Y[0]), h @ ((Y - m) ** 2).mean(0)]


def _torch_statistics(graph: str, k: float, steps: int) -> np.ndarray:
    """``(steps, 3)``: :func:`_energies` after every step of the eager torch loop."""
    oracle, method, params, state, h, c = _setup("torch", graph=graph, coupling=k)
    rows = []
    for _ in range(steps):
        params, state = method.step(params, state, oracle)
        rows.append([float(e) for e in _energies(state.replicas, h, c)])
    assert dict(oracle.counts) == {"grad": N * steps}
    return np.array(rows)


@functools.cache
def _jax_runs(steps: int = 6200) -> dict:
    """``config -> (steps, 3)``: :func:`_energies` after every step in jax, every config from the same seed.

    The method's own ``step`` (it is pure) is scanned under one ``jax.jit`` with the sealed oracle's
    jitted gradient inlined. jax's random draws dominate the compile time, so the scan is compiled
    once for all configs: each config's method is built by the harness, and its coupling and
    Laplacian (checked exactly in the declaration test) ride into the traced copy as arguments.
    """
    import copy

    import jax
    import jax.numpy as jnp

    built = {config: _setup("jax", graph=config[0], coupling=config[1]) for config in CONFIGS}
    oracle, template, params, state, h, c = built[CONFIGS[0]]

    def run(k, laplacian):
        method = copy.copy(template)
        method.coupling, method.laplacian = k, laplacian

        def body(carry, _):
            params, state = method.step(*carry, oracle)
            return (params, state), jnp.stack(_energies(state.replicas, h, c))

        return jax.lax.scan(body, (params, state), None, length=steps)[1]

    ks = jnp.asarray([built[config][1].coupling for config in CONFIGS])
    laplacians = jnp.asarray(np.stack([built[config][1].laplacian for config in CONFIGS]))
    ys = np.asarray(jax.jit(jax.vmap(run))(ks, laplacians))
    return {config: ys[i] for i, config in enumerate(CONFIGS)}


def _h() -> np.ndarray:
    return np.linspace(1.0, 4.0, D)  # the task's curvatures at d = D (its own test checks them)


def test_declaration_and_the_graphs_laplacians() -> None:
    method, _ = load_method(FAMILY, "coupled-langevin")
    assert method.requires == ("grad",) and method.implementations["jax"].jit
    assert method.resolve_hyperparameters() == {"replicas": 8, "graph": "complete", "coupling": 1.0, "sigma": 0.5,
                                                "dt": 0.05, "readout": "mean"}
    laplacian = _module().laplacian
    for n in range(1, 9):
        for graph in ("complete", "ring"):
            L = laplacian(graph, n)
            np.testing.assert_array_equal(L, _laplacian(graph, n))
            assert np.all(L.sum(0) == 0) and np.all(L.sum(1) == 0)  # the coupling never moves the mean
    lam_complete, lam_ring = np.linalg.eigvalsh(laplacian("complete", N)), np.linalg.eigvalsh(laplacian("ring", N))
    np.testing.assert_allclose(lam_complete, [0] + [N] * (N - 1), atol=1e-12)
    np.testing.assert_allclose(lam_ring, np.sort(2 - 2 * np.cos(2 * np.pi * np.arange(N) / N)), atol=1e-12)
    assert lam_ring[1] < lam_complete[1] / 10  # the ring's algebraic connectivity: 0.59 against 8
    with pytest.raises(ValueError, match="graph"):
        laplacian("star", 4)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("readout", ["mean", "replica"])
def test_one_step_by_hand_and_the_readout(framework: str, readout: str) -> None:
    """Two steps against the update written out, with the method's own draws regenerated here."""
    problem = make_problem(FAMILY, TASK, framework, d=3)
    oracle = make_oracle(FAMILY, TASK, problem, framework, seed=5)
    method = make_method(FAMILY, "coupled-langevin", framework, replicas=4, graph="ring", coupling=0.7, sigma=0.3,
                         dt=0.1, readout=readout)
    b = backend(framework)
    x0 = problem.init_params(5)
    params, state = x0, method.init(x0, oracle)
    X = np.tile(np.asarray(b.to_numpy(x0)), (4, 1))
    np.testing.assert_array_equal(np.asarray(b.to_numpy(state.replicas)), X)  # every replica at the start
    if framework == "torch":
        rng = np.random.default_rng([5, 0x5C1])
        draws = [rng.standard_normal((4, 3)) for _ in range(2)]
    else:
        import jax

        key, draws = jax.random.fold_in(jax.random.PRNGKey(5), 0x5C1), []
        for _ in range(2):
            key, sub = jax.random.split(key)
            draws.append(np.asarray(jax.random.normal(sub, (4, 3), dtype=np.float64)))
    L = _laplacian("ring", 4)
    for xi in draws:
        params, state = method.step(params, state, oracle)
        X = X - 0.1 * problem.h_np * (X - problem.x_star) - 0.1 * 0.7 * L @ X + 0.3 * math.sqrt(0.1) * xi
        np.testing.assert_allclose(np.asarray(b.to_numpy(state.replicas)), X, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(b.to_numpy(params)), X.mean(0) if readout == "mean" else X[0],
                                   rtol=1e-12, atol=1e-14)
    assert dict(oracle.counts) == {"grad": 8}  # one grad call per replica per step


def test_the_mean_is_the_same_whatever_the_coupling_and_matches_sigma2_over_2n() -> None:
    runs = _jax_runs()
    reference = runs[CONFIGS[0]][:, 0]
    h = _h()
    expected = _closed_forms(h, "complete", 0.0)["mean"]
    # The closed form is d sigma^2 / (2N) up to the discretization's factor 2 / (2 - h dt) per coordinate.
    assert D * SIGMA**2 / (2 * N) < expected < D * SIGMA**2 / (2 * N) * 2 / (2 - 4.0 * DT)
    for config in CONFIGS:
        # Same noise, any coupling: L's columns sum to zero and the gradient is linear, so the
        # replicas' mean follows one and the same path (to rounding).
        np.testing.assert_allclose(runs[config][:, 0], reference, rtol=1e-8, atol=1e-12)
        assert _closed_forms(h, *config)["mean"] == pytest.approx(expected, rel=1e-12)
    mean, se = _mean_and_se(reference)
    assert abs(mean - expected) < 4 * se, (mean, se, expected)
    assert se < 0.03 * expected  # the test can tell a wrong N or sigma apart


def test_each_replica_and_the_spread_shrink_with_the_coupling_faster_on_the_complete_graph() -> None:
    runs, h = _jax_runs(), _h()
    measured = {}
    for config in CONFIGS:
        graph, k = config
        forms = _closed_forms(h, graph, k)
        for column, name in ((1, "replica"), (2, "spread")):
            mean, se = _mean_and_se(runs[config][:, column])
            assert abs(mean - forms[name]) < 4 * se, (config, name, mean, se, forms[name])
            measured[config, name] = (mean, se)
    # The mode sums agree with the stationary covariance of y <- M y + noise solved as a Lyapunov equation.
    import scipy.linalg

    for graph, k in CONFIGS:
        M = (1 - 2.5 * DT) * np.eye(N) - k * DT * _laplacian(graph, N)
        C = scipy.linalg.solve_discrete_lyapunov(M, SIGMA**2 * DT * np.eye(N))
        forms = _closed_forms(np.array([2.5]), graph, k)
        assert forms["replica"] == pytest.approx(2.5 * C[0, 0], rel=1e-10)
        assert forms["mean"] == pytest.approx(2.5 * C.sum() / N**2, rel=1e-10)
        assert forms["spread"] == pytest.approx(2.5 * (np.trace(C) / N - C.sum() / N**2), rel=1e-10)
    mean_energy = _closed_forms(h, "complete", 0.0)["mean"]
    # k = 0: each replica is one Langevin learner, sigma^2 / 2 per unit curvature, N times the mean's.
    zero = _closed_forms(h, "complete", 0.0)
    assert D * SIGMA**2 / 2 < zero["replica"] < D * SIGMA**2 / 2 * 2 / (2 - 4.0 * DT)
    assert zero["replica"] == pytest.approx(N * mean_energy, rel=1e-12)
    for graph, ks in (("complete", COUPLINGS), ("ring", (0.0, 1.0))):
        configs = [("complete", 0.0) if k == 0 else (graph, k) for k in ks]
        for name in ("replica", "spread"):
            values = [measured[config, name] for config in configs]
            for (a, sa), (b, sb) in zip(values, values[1:], strict=False):  # strictly decreasing in k, beyond the errors
                assert a - b > 4 * math.hypot(sa, sb), (graph, name, values)
        assert measured[configs[-1], "replica"][0] > mean_energy  # towards the mean's error, from above
    # The complete graph synchronizes faster: a smaller error than the ring's at the same k.
    (c, sc), (r, sr) = measured[("complete", 1.0), "replica"], measured[("ring", 1.0), "replica"]
    assert r - c > 4 * math.hypot(sc, sr), (c, r)
    assert measured[("complete", 1.0), "replica"][0] < 0.4 * measured[("complete", 0.0), "replica"][0]
    # As k grows (at a step small enough to stay stable) a replica's error tends to the mean's.
    strong = _closed_forms(h, "complete", 100.0, dt=1e-4)
    assert strong["replica"] == pytest.approx(strong["mean"], rel=0.05) and strong["spread"] < 0.05 * strong["mean"]


def test_torch_and_jax_agree_in_distribution() -> None:
    config = ("complete", 1.0)
    torch_run, jax_run = _torch_statistics(*config, steps=1800), _jax_runs()[config]
    assert not np.allclose(torch_run[BURN:, 0], jax_run[BURN:1800, 0])  # their draws differ
    forms = _closed_forms(_h(), *config)
    for column, name in enumerate(("mean", "replica", "spread")):
        (t, st), (j, sj) = _mean_and_se(torch_run[:, column]), _mean_and_se(jax_run[:, column])
        assert abs(t - forms[name]) < 4 * st, (name, t, st, forms[name])
        assert abs(t - j) < 4 * math.hypot(st, sj), (name, t, j)


def test_harness_runs_count_n_grads_a_step_and_evaluate_the_readout(full_catalog) -> None:
    """The default setting through the harness: the trace's time-averaged energy of each readout."""
    h = np.linspace(1.0, 4.0, 8)
    forms = _closed_forms(h, "complete", 1.0, sigma=0.5, dt=0.05)
    energies = {}
    for readout in ("mean", "replica"):
        result = run_single(full_catalog, TASK, "coupled-langevin", "jax", hyperparameters={"readout": readout}, seed=1)
        row = result.row
        assert row["status"] == "completed" and row["steps"] == 2000, row["error"]
        assert row["calls_grad"] == 8 * row["steps"] and row["oracle_calls"] == row["calls_grad"]
        trace = np.array([p["energy"] for p in result.trace if p["step"] >= 300])  # every 10 steps
        batches = trace[: len(trace) // 10 * 10].reshape(-1, 10).mean(1)
        mean, se = batches.mean(), batches.std(ddof=1) / math.sqrt(len(batches))
        assert abs(mean - forms[readout]) < 4 * se, (readout, mean, se, forms[readout])
        energies[readout] = (mean, se)
    (m, sm), (r, sr) = energies["mean"], energies["replica"]
    assert r - m > 4 * math.hypot(sm, sr)  # one learner's error is larger than the redundant decision's
    torch_row = run_single(full_catalog, TASK, "coupled-langevin", "torch", budget={"steps": 30}).row
    assert torch_row["status"] == "completed" and torch_row["calls_grad"] == 8 * 30
