"""modadd-grok: the split, the network against numpy, and grokking only above the critical fraction."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.run import execute_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_task, make_oracle, make_problem  # noqa: E402



def test_declaration_and_split() -> None:
    task, _ = load_task("dynamics", "modadd-grok")
    assert task.paper.startswith("Provable Scaling Laws") and task.target.metric == "test_accuracy"
    problem = make_problem("dynamics", "modadd-grok", "torch", train_fraction=0.61)
    data = problem.data
    assert len(data.train_labels) == round(0.61 * 31**2) and len(data.train_labels) + len(data.test_labels) == 961
    pairs = np.concatenate([data.train_pairs, data.test_pairs])
    assert len({tuple(p) for p in pairs}) == 961  # a partition of Z_31 x Z_31
    assert np.array_equal(data.train_labels, data.train_pairs.sum(1) % 31)
    assert problem.layout == (("W1", (256, 62)), ("W2", (31, 256)))


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_loss_matches_a_numpy_one_hot_network(framework: str) -> None:
    problem = make_problem("dynamics", "modadd-grok", framework, hidden=16)
    oracle = make_oracle("dynamics", "modadd-grok", problem, framework)
    params = problem.init_params(0)
    theta = np.asarray(backend(framework).to_numpy(params), dtype=np.float64)
    W1, W2 = problem.unflatten(theta)
    data = problem.data
    onehot = np.concatenate([np.eye(31)[data.train_pairs[:, 0]], np.eye(31)[data.train_pairs[:, 1]]], axis=1)
    logits = ((onehot @ W1.T) ** 2) @ W2.T  # the literal one-hot -> x^2 -> linear network
    ce = scipy.special.logsumexp(logits, axis=1) - logits[np.arange(len(logits)), data.train_labels]
    # The paper's coupled weight decay 1e-4 (gradient 1e-4 theta) is the penalty (1e-4 / 2) ||theta||^2.
    assert problem.l2 == 5e-5
    expected = ce.mean() + 5e-5 * theta @ theta
    assert float(oracle.value(params)) == pytest.approx(expected, rel=1e-5)  # float32 task
    assert problem.evaluate(params)["objective"] == pytest.approx(expected, rel=1e-12)
    # The per-example gradients average to the gradient (each term carries the penalty).
    grads = np.asarray(backend(framework).to_numpy(oracle.per_example_grads(params)))
    assert np.abs(grads.mean(0) - np.asarray(backend(framework).to_numpy(oracle.grad(params)))).max() < 1e-6


@pytest.mark.slow
def test_grokking_appears_only_above_the_critical_fraction() -> None:
    """Adam (lr 1e-3) from the seeds suite, l2 = 5e-5 (coupled weight decay 1e-4), the task's 8000
    steps: at 0.61 test accuracy passes 0.99 (step 2100 in torch); at 0.30, near the critical
    fraction, it memorizes and generalizes a little, late (0.004 at step 3000, 0.074 at 8000: 2.3x
    chance); at 0.15 it memorizes and stays at chance (1/31) throughout: none, little, full."""
    catalog = Catalog.load()
    plan = make_plan(catalog, suite="seeds", tasks=["modadd-grok"], methods=["adam"], frameworks=["torch"], seeds=1)
    runs = {run.task_params["train_fraction"]: run for run in plan.runs}
    assert set(runs) == {0.15, 0.3, 0.61} and runs[0.61].hyperparameters["lr"] == 1e-3
    budget = catalog.tasks["modadd-grok"].spec.budget.steps
    chance = 1 / 31
    above = execute_run(runs[0.61], catalog)
    assert above.status == "reached_target", above.row["error"]
    assert above.row["test_accuracy"] > 0.99 and above.row["steps"] <= budget // 2
    below = execute_run(runs[0.15], catalog)
    assert below.status == "completed" and below.row["steps"] == budget
    assert below.row["train_accuracy"] == 1.0  # memorized
    assert max(p["test_accuracy"] for p in below.trace) < 1.5 * chance  # never generalized
    near = execute_run(runs[0.3], catalog)
    assert near.status == "completed" and near.row["steps"] == budget
    assert near.row["train_accuracy"] == 1.0  # memorized
    early = max(p["test_accuracy"] for p in near.trace if p["step"] <= budget // 2)
    late = max(p["test_accuracy"] for p in near.trace if p["step"] > budget // 2)
    assert early < 2 * chance  # next to nothing while 0.61 has already generalized (0.049 at most)
    assert 2 * chance < late < 0.5  # a little generalization, late, far from 0.61's
    assert max(p["test_accuracy"] for p in below.trace) < late
