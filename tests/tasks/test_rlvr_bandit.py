"""rlvr-bandit: the seeded correct answers, the rewards, the metrics, the oracle's rollouts and the
reference, the exact policy gradient in closed form, against both frameworks' autodiff and a
Monte-Carlo estimate from many ``sample`` calls."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "rl", "rlvr-bandit"
FRAMEWORKS = ("torch", "jax")
P = K = 64
G = 8


def _module():
    spec, path = load_task(FAMILY, TASK)
    return sys.modules[load_entry(spec.implementations["torch"], path).__module__]


def _point(problem, seed: int) -> np.ndarray:
    """Logits N(0, 1) with the correct answers raised by 3: pi(c) spread over (0, 1), rewards neither rare nor certain."""
    logits = np.random.default_rng(seed).standard_normal((P, K))
    logits[np.arange(P), problem.correct] += 3.0
    return logits


def _pi(logits: np.ndarray) -> np.ndarray:
    """Softmax row by row, written out (not the module's)."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_declaration() -> None:
    spec, _ = load_task(FAMILY, TASK)
    assert spec.resolve_parameters() == {"prompts": 64, "answers": 64, "group": 8, "data_seed": 0}
    assert spec.target.metric == "pass_at_1" and spec.target.value == 0.9
    assert not spec.metric("pass_at_1").lower_is_better and not spec.metric("pass_at_8").lower_is_better
    assert "sample" in spec.provides and set(spec.implementations) == set(FRAMEWORKS)


def test_correct_answers_come_from_the_data_seed_and_the_start_is_uniform() -> None:
    module = _module()
    c = module.correct_answers(prompts=P, answers=K, data_seed=0)
    np.testing.assert_array_equal(c, np.random.default_rng(0).integers(K, size=P))
    assert not np.array_equal(c, module.correct_answers(prompts=P, answers=K, data_seed=1))
    problem = make_problem(FAMILY, TASK, "torch")
    np.testing.assert_array_equal(problem.correct, c)
    start = backend("torch").to_numpy(problem.init_params(3))
    assert start.shape == (P * K,) and not start.any()
    metrics = problem.evaluate(problem.init_params(3))
    assert metrics["pass_at_1"] == pytest.approx(1 / K, rel=1e-14)
    assert metrics["pass_at_8"] == pytest.approx(1 - (1 - 1 / K) ** 8, rel=1e-14)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_metrics_and_loss_by_hand(framework: str) -> None:
    problem = make_problem(FAMILY, TASK, framework)
    b = backend(framework)
    logits = _point(problem, 1)
    pi = _pi(logits)
    pi_c = np.array([pi[p, problem.correct[p]] for p in range(P)])
    metrics = problem.evaluate(b.asarray(logits.reshape(-1)))
    assert metrics["pass_at_1"] == pytest.approx(pi_c.mean(), rel=1e-13)
    assert metrics["pass_at_8"] == pytest.approx(np.mean([1 - (1 - q) ** 8 for q in pi_c]), rel=1e-13)
    assert metrics["worst_pass_at_1"] == pytest.approx(pi_c.min(), rel=1e-13)
    assert metrics["objective"] == pytest.approx(1 - pi_c.mean(), rel=1e-13)
    assert float(problem.loss(b.asarray(logits.reshape(-1)))) == pytest.approx(metrics["objective"], rel=1e-13)
    # Rewards: 1 exactly on the correct answer.
    prompts, answers = np.repeat(np.arange(P), K), np.tile(np.arange(K), P)
    expected = np.array([float(a == problem.correct[p]) for p, a in zip(prompts, answers)])
    np.testing.assert_array_equal(problem.rewards(prompts, answers), expected)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_closed_form_policy_gradient_is_the_autodiff_gradient(framework: str) -> None:
    module, problem, b = _module(), make_problem(FAMILY, TASK, framework), backend(framework)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    logits = _point(problem, 2)
    exact = module.expected_reward_gradient(logits, problem.correct)
    # The loss is 1 - (1/P) sum_p pi(c_p | p): its gradient is -(1/P) times the policy gradient.
    autodiff = np.asarray(b.to_numpy(oracle.grad(b.asarray(logits.reshape(-1))))).reshape(P, K)
    np.testing.assert_allclose(autodiff, -exact / P, rtol=0, atol=1e-15)
    # Row p is the softmax Jacobian's column c_p; zero on the other prompts' rows by construction.
    pi = _pi(logits)
    p = 5
    jacobian = np.diag(pi[p]) - np.outer(pi[p], pi[p])
    np.testing.assert_allclose(exact[p], jacobian[:, problem.correct[p]], rtol=0, atol=1e-15)
    assert np.abs(exact.sum(axis=1)).max() < 1e-15  # softmax is shift-invariant


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rollouts_follow_the_policy_and_their_score_estimate_is_the_exact_gradient(framework: str) -> None:
    module, problem, b = _module(), make_problem(FAMILY, TASK, framework), backend(framework)
    oracle = make_oracle(FAMILY, TASK, problem, framework, seed=4)
    logits = _point(problem, 3)
    x = b.asarray(logits.reshape(-1))
    calls = 400
    draws = [oracle.sample(x) for _ in range(calls)]
    assert dict(oracle.counts) == {"sample": calls * P * G}
    prompts = np.concatenate([d[0] for d in draws])
    answers = np.concatenate([d[1] for d in draws])
    rewards = np.concatenate([np.asarray(b.to_numpy(d[2])) for d in draws])
    np.testing.assert_array_equal(draws[0][0], np.repeat(np.arange(P), G))  # grouped by prompt
    np.testing.assert_array_equal(rewards, (answers == problem.correct[prompts]).astype(float))
    # Answer frequencies match pi within 5 standard errors (calls * G draws per prompt).
    pi = _pi(logits)
    n = calls * G
    freq = np.zeros((P, K))
    np.add.at(freq, (prompts, answers), 1.0 / n)
    assert (np.abs(freq - pi) <= 5 * np.sqrt(pi * (1 - pi) / n) + 1e-12).all()
    # logprobs is log pi of the pairs.
    lp = np.asarray(b.to_numpy(oracle.logprobs(x, prompts[:512], answers[:512])))
    np.testing.assert_allclose(lp, np.log(pi[prompts[:512], answers[:512]]), rtol=1e-13)
    # REINFORCE: E[(1/G) sum_i R_i grad log pi(a_i | p_i)] is the exact policy gradient. One
    # policy_grad call over all rollouts gives the Monte-Carlo mean; its error is checked against
    # the spread of the tabular score: entry (p, k) of R (e_a - pi(. | p)) is (1[k = c] - pi_k) 1[a = c].
    weights = b.asarray(rewards / (G * calls))
    estimate = np.asarray(b.to_numpy(oracle.policy_grad(x, prompts, answers, weights))).reshape(P, K)
    exact = module.expected_reward_gradient(logits, problem.correct)
    q = pi[np.arange(P), problem.correct][:, None]
    per_call_sd = np.abs(np.eye(K)[problem.correct] - pi) * np.sqrt(q * (1 - q) / G)
    assert (np.abs(estimate - exact) <= 5 * per_call_sd / np.sqrt(calls) + 1e-12).all()
    assert np.linalg.norm(estimate - exact) < 0.1 * np.linalg.norm(exact)


def test_the_uncounted_view_draws_no_rollout_of_the_run() -> None:
    problem = make_problem(FAMILY, TASK, "torch")
    x = problem.init_params(0)
    untouched = make_oracle(FAMILY, TASK, problem, "torch", seal=False).sample(x)[1]
    oracle = make_oracle(FAMILY, TASK, problem, "torch", seal=False)
    probed = oracle.uncounted().sample(x)[1]  # a probe's rollouts: a stream of its own, uncounted
    assert dict(oracle.counts) == {} and not np.array_equal(probed, untouched)
    np.testing.assert_array_equal(oracle.sample(x)[1], untouched)
