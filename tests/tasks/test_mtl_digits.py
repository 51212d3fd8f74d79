"""mtl-digits: task losses and gradients against an independent numpy network, and honest single-task baselines."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _content import backend, load_entry, load_task, make_oracle, make_problem  # noqa: E402

FAMILY, TASK = "multitask", "mtl-digits"


def _module():
    task, path = load_task(FAMILY, TASK)
    return sys.modules[load_entry(task.implementations["torch"], path).__module__]


def _own_losses(theta: np.ndarray, problem) -> np.ndarray:
    """The three training losses by a forward pass written here, from the layout alone."""
    blocks, offset = {}, 0
    for name, shape in problem.layout:
        size = int(np.prod(shape))
        blocks[name] = theta[offset : offset + size].reshape(shape)
        offset += size
    data = problem.data
    h = np.tanh(np.tanh(data.X @ blocks["W1"].T + blocks["b1"]) @ blocks["W2"].T + blocks["b2"])
    out = {t: h @ blocks[f"{t}_W"].T + blocks[f"{t}_b"] for t in ("digit", "parity", "centroid")}
    rows = np.arange(len(data.X))

    def ce(z, y):
        return np.mean(scipy.special.logsumexp(z, axis=1) - z[rows, y])

    return np.array([ce(out["digit"], data.digit), ce(out["parity"], data.digit % 2),
                     np.mean((out["centroid"] - data.centroid) ** 2)])


def _point(problem) -> np.ndarray:
    rng = np.random.default_rng(7)
    return _module().numpy_init(3, problem.hidden) + 0.05 * rng.standard_normal(problem.dim)


def test_declaration_and_layout() -> None:
    task, _ = load_task(FAMILY, TASK)
    assert "task_grads" in task.provides and task.target is not None and task.target.metric == "delta_m"
    problem = make_problem(FAMILY, TASK, "torch")
    assert problem.n_tasks == 3 and problem.shared_dimension == 128 * 64 + 128 + 128 * 128 + 128
    assert problem.dim == problem.shared_dimension + (10 + 2 + 2) * 129
    assert problem.dim == sum(int(np.prod(s)) for _, s in problem.layout)


def test_centroid_targets_are_the_raw_pixel_mass_centroid() -> None:
    from harness.datasets import sklearn_raw, sklearn_dataset

    raw, _ = sklearn_raw("digits")
    X, _ = sklearn_dataset("digits")
    rows, cols = np.indices((8, 8))
    images = raw.reshape(-1, 8, 8)
    mass = images.sum(axis=(1, 2))
    c = np.stack([(images * rows).sum(axis=(1, 2)) / mass, (images * cols).sum(axis=(1, 2)) / mass], axis=1)
    c = (c - c.mean(0)) / c.std(0)
    problem = make_problem(FAMILY, TASK, "torch")
    order = np.random.default_rng(0).permutation(len(raw))[: len(problem.data.X)]
    assert np.allclose(problem.data.centroid, c[order], atol=1e-12)
    assert np.array_equal(problem.data.X, X[order])


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_task_grads_match_an_independent_numpy_network(framework: str) -> None:
    problem = make_problem(FAMILY, TASK, framework)
    oracle = make_oracle(FAMILY, TASK, problem, framework)
    theta = _point(problem)
    to_numpy = backend(framework).to_numpy
    losses, grads = (np.asarray(to_numpy(a)) for a in oracle.task_grads(backend(framework).asarray(theta)))
    assert oracle.counts == {"task_grads": 1}
    assert np.abs(losses - _own_losses(theta, problem)).max() < 1e-12
    value = float(to_numpy(make_oracle(FAMILY, TASK, problem, framework).value(backend(framework).asarray(theta))))
    assert value == pytest.approx(losses.sum(), rel=1e-13)
    # Central differences of the forward pass above along random directions, per task.
    rng = np.random.default_rng(1)
    for _ in range(3):
        u = rng.standard_normal(problem.dim)
        fd = (_own_losses(theta + 1e-5 * u, problem) - _own_losses(theta - 1e-5 * u, problem)) / 2e-5
        assert np.allclose(grads @ u, fd, rtol=1e-6, atol=1e-8)
    # A task's row is zero on the other tasks' heads; the module's numpy backpropagation agrees.
    module = _module()
    offset, heads = problem.shared_dimension, []
    for name, shape in problem.layout[4:]:
        heads.append((offset, offset + int(np.prod(shape))))
        offset = heads[-1][1]
    for k in range(3):
        for h, (start, stop) in enumerate(heads):
            if h // 2 != k:
                assert not grads[k, start:stop].any()
        _, g = module.numpy_task_grad(theta, problem.data, problem.hidden, k)
        assert np.abs(g - grads[k]).max() < 1e-12


def test_torch_and_jax_agree() -> None:
    answers = []
    for framework in ("torch", "jax"):
        problem = make_problem(FAMILY, TASK, framework)
        oracle = make_oracle(FAMILY, TASK, problem, framework)
        answers.append([np.asarray(backend(framework).to_numpy(a))
                        for a in oracle.task_grads(backend(framework).asarray(_point(problem)))])
    assert np.abs(answers[0][0] - answers[1][0]).max() < 1e-10
    assert np.abs(answers[0][1] - answers[1][1]).max() < 1e-10
    assert np.array_equal(backend("torch").to_numpy(make_problem(FAMILY, TASK, "torch").init_params(5)),
                          backend("jax").to_numpy(make_problem(FAMILY, TASK, "jax").init_params(5)))


def test_single_task_baselines_are_real() -> None:
    import torch

    module = _module()
    problem = make_problem(FAMILY, TASK, "torch")
    baselines, thetas = module.single_task_baselines(**problem.baseline_options)
    start = module.test_metrics(module.numpy_init(0, problem.hidden), problem.data, problem.hidden)
    names = ("test_accuracy_digit", "test_accuracy_parity", "test_mse_centroid")
    assert baselines[names[0]] > start[names[0]] + 0.5 and baselines[names[1]] > start[names[1]] + 0.2
    assert baselines[names[2]] < 0.1 * start[names[2]]
    for k, name in enumerate(names):
        # Each baseline's own vector reproduces its value: its Delta-m term is 0.
        assert module.test_metrics(np.array(thetas[k]), problem.data, problem.hidden)[name] == baselines[name]
    assert module.delta_m(baselines, baselines) == 0.0
    # Worse than the baseline on every task gives a positive Delta-m (here: the start).
    assert problem.evaluate(problem.init_params(0))["delta_m"] > 0
    # The recipe, rerun with torch.optim.Adam on torch autograd of task 0 alone, lands on the same vector.
    p = torch.tensor(module.numpy_init(0, problem.hidden), requires_grad=True)
    adam = torch.optim.Adam([p], lr=problem.baseline_options["lr"], betas=(0.9, 0.999), eps=1e-8)
    for _ in range(problem.baseline_options["steps"]):
        adam.zero_grad()
        problem.task_losses(p)[0].backward()
        adam.step()
    assert np.abs(p.detach().numpy() - thetas[0]).max() < 1e-7
