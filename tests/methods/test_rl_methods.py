"""reinforce-loo, grpo, pacs: each method's weights against autodiff of its objective written out in
torch, PACS's gradient against the paper's gradient identity in closed form, RLOO's unbiasedness
against the exact policy gradient, and the three raising pass@1 above 0.9 on rlvr-bandit."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _content import backend, load_entry, load_method, load_task, make_method, make_oracle, make_problem, rel_diff  # noqa: E402
from _runs import run_single  # noqa: E402

FAMILY, TASK = "rl", "rlvr-bandit"
METHODS = ("reinforce-loo", "grpo", "pacs")
P = K = 64
G = 8
RL_CALLS = {"sample", "logprobs", "policy_grad"}


def _module():
    method, path = load_method(FAMILY, "pacs")
    return sys.modules[load_entry(method.implementations["torch"].entry, path).__module__]


def _task_module():
    spec, path = load_task("rl", TASK)
    return sys.modules[load_entry(spec.implementations["torch"], path).__module__]


def _batch(seed: int):
    """Rollouts from a random pi_old (correct answers raised: most groups mixed) and a perturbed current theta."""
    problem = make_problem("rl", TASK, "torch")
    b = backend("torch")
    b.seed(seed)
    oracle = make_oracle("rl", TASK, problem, "torch", seed=seed)
    rng = np.random.default_rng(seed)
    old = rng.standard_normal((P, K))
    old[np.arange(P), problem.correct] += 3.0
    theta = old + 0.4 * rng.standard_normal((P, K))
    prompts, answers, rewards = oracle.sample(b.asarray(old.reshape(-1)))
    # Writable copies: the test indexes torch tensors with them (torch will not alias read-only memory).
    return oracle, old, theta, np.array(prompts), np.array(answers), np.asarray(b.to_numpy(rewards))


def _log_pi(theta: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(theta.reshape(P, K), dim=-1)


def _loo(x: torch.Tensor) -> torch.Tensor:
    return (x.sum(1, keepdim=True) - x) / (x.shape[1] - 1)


def _oracle_direction(oracle, theta: np.ndarray, prompts, answers, weights: np.ndarray) -> np.ndarray:
    b = backend("torch")
    return np.asarray(b.to_numpy(oracle.policy_grad(b.asarray(theta.reshape(-1)), prompts, answers,
                                                    b.asarray(weights.reshape(-1)))))


def _scores(theta: np.ndarray, prompts: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """grad log pi(a_i | p_i) of the tabular policy, in closed form: row p_i is e_{a_i} - pi(. | p_i); (m, P K)."""
    pi = _task_module().policy(theta)
    scores = np.zeros((len(prompts), P, K))
    scores[np.arange(len(prompts)), prompts] = -pi[prompts]
    scores[np.arange(len(prompts)), prompts, answers] += 1.0
    return scores.reshape(len(prompts), -1)


def test_declarations() -> None:
    for method_id in METHODS:
        spec, _ = load_method(FAMILY, method_id)
        assert spec.requires == ("sample",) and not spec.implementations["jax"].jit
        assert spec.resolve_hyperparameters()["lr"] == 4.0  # one step size for the three
    assert load_method(FAMILY, "grpo")[0].resolve_hyperparameters() == {"lr": 4.0, "epochs": 4, "clip": 0.2, "eps": 1e-6}
    assert load_method(FAMILY, "pacs")[0].resolve_hyperparameters() == {"lr": 4.0, "epochs": 4, "beta": 1.0,
                                                                         "balanced": False}


def test_leave_one_out_mean_and_class_balance_by_hand() -> None:
    module = _module()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    by_hand = np.array([[np.mean([x[p, j] for j in range(4) if j != i]) for i in range(4)] for p in range(5)])
    np.testing.assert_allclose(module.leave_one_out_mean(x), by_hand, rtol=1e-14)
    rewards = (rng.random((40, G)) < 0.3).astype(float)
    rewards[0], rewards[1] = 0.0, 1.0  # one-class groups weigh 1
    expected = np.ones_like(rewards)
    for p, group in enumerate(rewards):  # scikit-learn's "balanced": n_samples / (n_classes * count of the class)
        if len(set(group)) > 1:
            expected[p] = [len(group) / (2 * list(group).count(r)) for r in group]
    np.testing.assert_allclose(module.class_balance(rewards), expected, rtol=1e-14)


def test_grpo_weights_are_the_gradient_of_the_clipped_surrogate() -> None:
    oracle, old, theta, prompts, answers, rewards = _batch(1)
    module = _module()
    log_ratio = (np.log(_task_module().policy(theta)) - np.log(_task_module().policy(old)))[prompts, answers]
    ratio = np.exp(log_ratio).reshape(P, G)
    weights = module.grpo_weights(rewards.reshape(P, G), ratio, clip=0.2, eps=1e-6)
    direction = _oracle_direction(oracle, theta, prompts, answers, weights)
    # The surrogate written out: sum_p (1/G) sum_i min(rho A, clip(rho, 0.8, 1.2) A), autodiff in torch.
    x = torch.tensor(theta.reshape(-1), requires_grad=True)
    lp_old = _log_pi(torch.tensor(old.reshape(-1)))[prompts, answers].reshape(P, G)
    rho = torch.exp(_log_pi(x)[prompts, answers].reshape(P, G) - lp_old)
    r = torch.tensor(rewards.reshape(P, G))
    adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-6)  # torch.std: Bessel's correction
    surrogate = torch.minimum(rho * adv, torch.clamp(rho, 0.8, 1.2) * adv).sum() / G
    (autodiff,) = torch.autograd.grad(surrogate, x)
    assert rel_diff(direction, autodiff.numpy()) < 1e-12
    clipped = (weights == 0) & (np.abs(adv.numpy()) > 0)
    assert 0.1 < clipped.mean() < 0.9  # the batch exercises both branches


@pytest.mark.parametrize("balanced", [False, True])
def test_pacs_gradient_is_the_bce_gradient_and_the_papers_identity(balanced: bool) -> None:
    oracle, old, theta, prompts, answers, rewards = _batch(2)
    module, beta = _module(), 1.5
    R = rewards.reshape(P, G)
    assert 0.3 < np.mean([0 < g.sum() < G for g in R]) < 1  # mixed and one-class groups
    pi, pi_old = _task_module().policy(theta), _task_module().policy(old)
    log_ratio = (np.log(pi) - np.log(pi_old))[prompts, answers].reshape(P, G)
    weights = module.pacs_weights(R, log_ratio, beta=beta, balanced=balanced)
    method = -_oracle_direction(oracle, theta, prompts, answers, weights)  # the method ascends -grad L
    class_weights = module.class_balance(R) if balanced else np.ones_like(R)
    # (a) The loss written out: sum_p (1/G) sum_i c_i BCE(sigmoid(psi_i), R_i), autodiff in torch.
    x = torch.tensor(theta.reshape(-1), requires_grad=True)
    lp_old = _log_pi(torch.tensor(old.reshape(-1)))[prompts, answers].reshape(P, G)
    r = beta * (_log_pi(x)[prompts, answers].reshape(P, G) - lp_old)
    psi = r - _loo(r)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        psi, torch.tensor(R), weight=torch.tensor(class_weights), reduction="sum") / G
    (autodiff,) = torch.autograd.grad(loss, x)
    assert rel_diff(method, autodiff.numpy()) < 1e-8
    # (b) The paper's identity: grad L = -(1/G) sum_i c_i (R_i - sigmoid(psi_i)) grad psi_i, the actor
    # grad psi_i = beta (grad log pi_i - mean_{j != i} grad log pi_j) weighted by the implicit critic's
    # error R_i - sigmoid(psi_i); the tabular score functions in closed form.
    scores = _scores(theta, prompts, answers).reshape(P, G, -1)
    grad_psi = beta * (scores - (scores.sum(1, keepdims=True) - scores) / (G - 1))
    psi_np = beta * (log_ratio - (log_ratio.sum(1, keepdims=True) - log_ratio) / (G - 1))
    critic_error = class_weights * (R - 1 / (1 + np.exp(-psi_np)))
    identity = -(critic_error[:, :, None] * grad_psi).sum((0, 1)) / G
    assert rel_diff(method, identity) < 1e-8
    assert np.linalg.norm(identity) > 1e-2  # not a vacuous zero


def test_pacs_first_epoch_is_leave_one_out_reinforce() -> None:
    module = _module()
    R = (np.random.default_rng(3).random((P, G)) < 0.4).astype(float)
    np.testing.assert_allclose(module.pacs_weights(R, np.zeros_like(R), beta=0.5, balanced=False),
                               0.5 * module.rloo_weights(R), rtol=0, atol=1e-16)
    # So one epoch of pacs at lr is reinforce-loo at lr beta: the same iterates on the same rollouts.
    problem = make_problem("rl", TASK, "torch")
    iterates = {}
    for method_id, overrides in (("pacs", {"epochs": 1, "beta": 0.5, "lr": 8.0}), ("reinforce-loo", {"lr": 4.0})):
        backend("torch").seed(7)
        oracle = make_oracle("rl", TASK, problem, "torch", seed=7)
        method = make_method(FAMILY, method_id, "torch", **overrides)
        x = problem.init_params(7)
        state = method.init(x, oracle)
        for _ in range(6):
            x, state = method.step(x, state, oracle)
        iterates[method_id] = backend("torch").to_numpy(x)
    assert np.abs(iterates["pacs"]).max() > 0.1
    np.testing.assert_allclose(iterates["pacs"], iterates["reinforce-loo"], rtol=0, atol=1e-12)


def test_reinforce_loo_is_unbiased_for_the_exact_policy_gradient_and_lowers_the_variance() -> None:
    module, task_module = _module(), _task_module()
    problem = make_problem("rl", TASK, "torch")
    b = backend("torch")
    b.seed(5)
    oracle = make_oracle("rl", TASK, problem, "torch", seed=5)
    logits = np.random.default_rng(5).standard_normal((P, K))
    logits[np.arange(P), problem.correct] += 3.0
    x = b.asarray(logits.reshape(-1))
    pi = task_module.policy(logits)

    def direction(prompts: np.ndarray, answers: np.ndarray, weights: np.ndarray) -> np.ndarray:
        # sum_i w_i (e_{p_i a_i} - pi(. | p_i)): the tabular score functions in closed form.
        d = -weights.sum(1)[:, None] * pi
        np.add.at(d, (prompts, answers), weights.reshape(-1))
        return d.reshape(-1)

    loo, plain = [], []
    for call in range(300):  # the weights of a group sum to 0: groups with all-equal rewards do not move
        prompts, answers, rewards = oracle.sample(x)
        R = np.asarray(b.to_numpy(rewards)).reshape(P, G)
        assert np.abs(module.rloo_weights(R).sum(1)).max() < 1e-15
        loo.append(direction(prompts, answers, module.rloo_weights(R)))
        plain.append(direction(prompts, answers, R / G))
        if call == 0:  # the oracle's policy_grad is the same weighted sum of scores
            np.testing.assert_allclose(_oracle_direction(oracle, logits, prompts, answers, module.rloo_weights(R)),
                                       loo[0], rtol=0, atol=1e-14)
            np.testing.assert_allclose(_scores(logits, prompts, answers).T @ module.rloo_weights(R).reshape(-1),
                                       loo[0], rtol=0, atol=1e-14)
    loo, plain = np.array(loo), np.array(plain)
    exact = task_module.expected_reward_gradient(logits, problem.correct).reshape(-1)
    # E ||mean - exact||^2 = (sum of the variances) / N for an unbiased estimator.
    squared_error = np.sum((loo.mean(0) - exact) ** 2)
    assert squared_error < 2 * loo.var(0, ddof=1).sum() / len(loo)
    assert np.linalg.norm(loo.mean(0) - exact) < 0.1 * np.linalg.norm(exact)
    # The plain REINFORCE estimate (weights R_i / G) has the same mean: the baseline only recentres.
    np.testing.assert_allclose(plain.mean(0), loo.mean(0), rtol=0, atol=5 * np.sqrt(plain.var(0).max() / len(plain)))


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_all_three_raise_pass_at_1_above_0_9_with_counted_rollouts(full_catalog, framework: str) -> None:
    # jax: pacs alone (it makes all three kinds of call; each jax run compiles its oracle's calls).
    for method_id in METHODS if framework == "torch" else ("pacs",):
        row = run_single(full_catalog, TASK, method_id, framework, seed=0).row
        assert row["status"] == "reached_target" and row["pass_at_1"] >= 0.9, (method_id, row["error"])
        epochs = 1 if method_id == "reinforce-loo" else 4
        calls = {k[len("calls_"):]: v for k, v in row.items() if k.startswith("calls_") and v}
        assert set(calls) <= RL_CALLS  # the exact value and grad the task offers are never used
        assert calls["sample"] == P * G * row["steps"] and calls["policy_grad"] == epochs * row["steps"]
        assert calls.get("logprobs", 0) == (epochs if epochs > 1 else 0) * row["steps"]


def test_pacs_needs_no_more_steps_than_grpo_and_both_fewer_than_reinforce_loo() -> None:
    """The paper's ordering (PACS ahead of GRPO) at one lr and epochs, seed by seed (rollouts differ by seed)."""
    problem = make_problem("rl", TASK, "torch")
    steps = {m: [] for m in METHODS}
    for seed in range(3):
        for method_id in METHODS:
            backend("torch").seed(seed)
            oracle = make_oracle("rl", TASK, problem, "torch", seed=seed)
            method = make_method(FAMILY, method_id, "torch")
            x = problem.init_params(seed)
            state = method.init(x, oracle)
            for step in range(1, 200):
                x, state = method.step(x, state, oracle)
                if problem.evaluate(x)["pass_at_1"] >= 0.9:
                    break
            steps[method_id].append(step)
    assert all(p <= g < r for p, g, r in zip(steps["pacs"], steps["grpo"], steps["reinforce-loo"], strict=True)), steps
