"""gossip-gd (EXTRA) and dadao: linear convergence to x* with counted gradients and communications,
DADAO's fewer communications on the ring, and 2 gloo ranks giving the one-process run."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import load_entry, load_method  # noqa: E402
from _runs import run_single, single_run  # noqa: E402

from harness.spec import Budget  # noqa: E402

#: A better-conditioned decentral-ridge (mu = 1: L / mu about 13) for the short convergence and rank runs,
#: with dadao's L and mu of that problem.
EASY = {"mu": 1.0}
EASY_DADAO = {"smoothness": 12.7, "strong_convexity": 1.0}


def _module():
    method, path = load_method("decentralized", "dadao")
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


def _errors(result):
    return np.array([p["relative_node_error"] for p in result.trace])


def test_declarations_and_the_ring_spectral_constants() -> None:
    dadao, _ = load_method("decentralized", "dadao")
    gossip, _ = load_method("decentralized", "gossip-gd")
    assert dadao.requires == gossip.requires == ("node_grads", "graph")
    assert dadao.resolve_hyperparameters()["comm_rate"] == 0.0 and gossip.resolve_hyperparameters() == {
        "lr": 0.04, "mixing": 0.0}
    module = _module()
    ring = np.array([(i, (i + 1) % 10) for i in range(10)])
    chi_1, chi_2 = module.spectral_constants(10, ring)
    # L / E on the ring: lambda_2 = (2 - 2 cos(2 pi / n)) / E; an edge's resistance is (n - 1) / n, times E.
    assert chi_1 == pytest.approx(10 / (2 - 2 * np.cos(2 * np.pi / 10)), rel=1e-12)
    assert chi_2 == pytest.approx(0.5 * 10 * 0.9, rel=1e-12)
    exp = module._Exponential(module.dadao_constants(12.7, 1.0, 1.0)["ode"])
    import scipy.linalg

    np.testing.assert_allclose(exp(np.array([0.37]))[0], scipy.linalg.expm(
        module.dadao_constants(12.7, 1.0, 1.0)["ode"] * 0.37), rtol=1e-12, atol=1e-14)


def test_grouped_events_are_the_authors_event_by_event_updates() -> None:
    """DADAO's step against a numpy transcription of the authors' code: one event at a time, scipy expm per node."""
    import scipy.linalg
    import torch

    from _content import make_method, make_oracle, make_problem

    module = _module()
    prob = make_problem("decentralized", "decentral-ridge", "torch", graph="geometric", **EASY)
    oracle = make_oracle("decentralized", "decentral-ridge", prob, "torch", seed=3)
    method = make_method("decentralized", "dadao", "torch", **EASY_DADAO)
    x = prob.init_params(3)
    state = method.init(x, oracle)
    for _ in range(4):
        x, state = method.step(x, state, oracle)
    # The reference replays the same clocks (the generator is the method's), event by event.
    n, d, edges = prob.n_nodes, prob.d, np.array(prob.edges)
    chi_1, chi_2 = module.spectral_constants(n, edges)
    rate = np.sqrt(2 * chi_1 * chi_2)
    L, mu = EASY_DADAO["smoothness"], EASY_DADAO["strong_convexity"]
    nu, s = mu / 2, np.sqrt(mu / 2 / L)
    ode = module.dadao_constants(L, mu, chi_1 / rate)["ode"]
    H = np.einsum("nmd,nme->nde", prob._X, prob._X) / prob.m + prob.mu * np.eye(d)
    b = np.einsum("nmd,nm->nd", prob._X, prob._y) / prob.m
    X, Xt, Y, Yt, Z, Zt = (np.zeros((n, d)) for _ in range(6))
    last = np.zeros(n)
    clock = {"rng": np.random.default_rng([3, 0xDADA0]), "grad_rate": float(n), "comm_rate": rate, "n": n,
             "edges": edges, "time": 0.0}

    def flow(i, t):
        stack = np.stack([X[i], Xt[i], Y[i], Yt[i], Z[i], Zt[i]])
        X[i], Xt[i], Y[i], Yt[i], Z[i], Zt[i] = scipy.linalg.expm(ode * (t - last[i])) @ stack
        last[i] = t

    for _ in range(4):
        for t, i, j in method._events(clock):
            if j < 0:
                flow(i, t)
                g = H[i] @ X[i] - b[i] - nu * X[i] - Yt[i]
                X[i] -= g / (4 * L)
                Xt[i] -= g / (4 * np.sqrt(L * nu))
                Yt[i] += (s / 4 + 1) * g
            else:
                flow(i, t)
                flow(j, t)
                p = (Y[i] + Z[i]) - (Y[j] + Z[j])
                for k, sign in ((i, 1), (j, -1)):
                    Z[k] -= 0.5 * sign * p
                    Zt[k] -= 2 * (chi_1 / rate) / s * sign * p
        clock["time"] += 1.0
        for i in range(n):
            flow(i, clock["time"])
    np.testing.assert_allclose(x.numpy().reshape(n, d), X, rtol=1e-10, atol=1e-12)
    assert isinstance(x, torch.Tensor) and np.abs(X).max() > 0.1


@pytest.mark.parametrize(("method", "steps", "framework"),
                         [("gossip-gd", 300, "torch"), ("gossip-gd", 300, "jax"), ("dadao", 120, "torch"),
                          ("dadao", 120, "jax")])
def test_both_converge_linearly_to_x_star_with_counted_calls(full_catalog, framework, method, steps) -> None:
    hyper = EASY_DADAO if method == "dadao" else {"lr": 0.04}
    result = run_single(full_catalog, "decentral-ridge", method, framework, params=EASY, hyperparameters=hyper,
                        budget=Budget(steps=steps, seconds=120))
    row, steps = result.row, result.row["steps"]
    assert row["status"] in ("completed", "reached_target"), row["error"]
    errors = _errors(result)
    # Linear: the log-error falls at a steady rate, in each half of the run by a large factor.
    half = len(errors) // 2
    assert errors[half] < 0.1 * errors[0] and errors[-1] < 0.1 * errors[half] and errors[-1] < 1e-3
    n, edges = 10, 10
    if method == "gossip-gd":
        assert row["calls_node_grad"] == n * steps and row["calls_communication"] == 2 * edges * steps
    else:  # Poisson clocks: n gradients and sqrt(2 chi_1 chi_2) = 15.35 edge gossips per unit of time
        assert row["calls_node_grad"] == pytest.approx(n * steps, rel=0.1)
        assert row["calls_communication"] == pytest.approx(2 * 15.35 * steps, rel=0.1)
    assert row["consensus_error"] <= row["node_error"]


def test_dadao_needs_fewer_communications_than_gossip_gd_on_the_ring(full_catalog) -> None:
    """The catalog's setting (L / mu about 1.1e3): communications to a relative node error of 0.1."""
    precision = 0.1

    def communications(method, steps):
        result = run_single(full_catalog, "decentral-ridge", method, "torch", budget=Budget(steps=steps, seconds=120))
        for point in result.trace:
            if point["relative_node_error"] <= precision:
                return point["calls_communication"], point["calls_node_grad"]
        raise AssertionError(f"{method} did not reach {precision} in {steps} steps")

    dadao, gossip = communications("dadao", 320), communications("gossip-gd", 800)
    assert dadao[0] < 0.85 * gossip[0], (dadao, gossip)


def _ranks_run(catalog, method, hardware, hyper):
    return single_run(catalog, "decentral-ridge", method, "torch", params={"mu": 1.0}, hyperparameters=hyper,
                      budget=Budget(steps=40, seconds=60), hardware=hardware)


@pytest.mark.parametrize("method", ["gossip-gd", "dadao"])
def test_two_gloo_ranks_give_the_one_process_run(full_catalog, method) -> None:
    from harness.execute import execute
    from harness.host import hardware_unavailable
    from harness.run import execute_run

    assert hardware_unavailable(full_catalog.hardware["cpu-ranks"].spec) is None
    hyper = EASY_DADAO if method == "dadao" else {"lr": 0.04}
    solo = execute_run(_ranks_run(full_catalog, method, "cpu", hyper), full_catalog)
    ranks = execute(_ranks_run(full_catalog, method, "cpu-ranks", hyper), full_catalog)  # nodes 0-4 and 5-9
    assert solo.status == ranks.status == "completed", ranks.row["error"]
    for key in ("steps", "calls_node_grad", "calls_communication", "calls_graph"):
        assert ranks.row[key] == solo.row[key], key
    for metric in ("relative_node_error", "consensus_error", "objective"):
        np.testing.assert_allclose([p[metric] for p in ranks.trace], [p[metric] for p in solo.trace],
                                   rtol=1e-10, atol=0)
    assert solo.row["relative_node_error"] < 0.2  # 40 steps from 1: on its way to x*
