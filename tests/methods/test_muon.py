"""muon: Newton-Schulz against an SVD reference, the update against torch.optim.Muon."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import backend, load_method, make_method, make_oracle, make_problem  # noqa: E402



def module():
    return importlib.import_module(type(make_method("matrix", "muon", "torch")).__module__)


def svd_reference(G: np.ndarray, steps: int = 5) -> np.ndarray:
    """U phi(S / ||G||_F) V^T with phi the scalar quintic map iterated: the odd polynomial's action."""
    a, b, c = 3.4445, -4.7750, 2.0315
    U, s, Vt = np.linalg.svd(G, full_matrices=False)
    s = s / np.linalg.norm(G)
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return (U * s) @ Vt


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (31, 256)])
def test_newton_schulz_matches_the_svd_reference(framework: str, shape: tuple[int, int]) -> None:
    G = np.random.default_rng(shape[0]).standard_normal(shape)
    out = np.asarray(backend(framework).to_numpy(module().newton_schulz(backend(framework).asarray(G))))
    expected = svd_reference(G)
    assert np.abs(out - expected).max() < 1e-12
    singular = np.linalg.svd(out, compute_uv=False)
    assert singular.min() > 0.5 and singular.max() < 1.25  # near-orthogonal, as designed


def test_one_step_matches_torch_optim_muon() -> None:
    """torch's Muon orthogonalizes in bfloat16: the updates agree to bfloat16 precision."""
    problem = make_problem("dynamics", "modadd-grok", "torch", train_fraction=0.3, hidden=64)
    oracle = make_oracle("dynamics", "modadd-grok", problem, "torch")
    params = problem.init_params(0)
    ours = make_method("matrix", "muon", "torch", weight_decay=0.1)
    state = ours.init(params, oracle)
    for _ in range(2):
        previous = params
        params, state = ours.step(params, state, oracle)
    W1, W2 = (t.detach().clone().requires_grad_(True) for t in problem.unflatten(problem.init_params(0)))
    reference = torch.optim.Muon([W1, W2], lr=0.02, weight_decay=0.1, momentum=0.95, nesterov=True)
    for _ in range(2):
        flat = torch.cat([W1.detach().ravel(), W2.detach().ravel()])
        g1, g2 = problem.unflatten(torch.func.grad(problem.loss)(flat))
        W1.grad, W2.grad = g1.clone(), g2.clone()
        reference.step()
    expected = torch.cat([W1.detach().ravel(), W2.detach().ravel()])
    step_ours, step_torch = params - previous, expected - previous
    relative = float((step_ours - step_torch).norm() / step_torch.norm())
    assert relative < 5e-2
    assert float(torch.nn.functional.cosine_similarity(step_ours, step_torch, dim=0)) > 0.999


def test_vectors_get_adamw() -> None:
    """A problem without a layout is one vector: the step is AdamW's."""
    problem = make_problem("convex", "logreg", "torch")
    oracle = make_oracle("convex", "logreg", problem, "torch")
    params = problem.init_params(0)
    muon = make_method("matrix", "muon", "torch", adam_lr=0.05, weight_decay=0.01)
    adamw = torch.optim.AdamW([leaf := params.clone().requires_grad_(True)], lr=0.05, weight_decay=0.01, eps=1e-8)
    state = muon.init(params, oracle)
    for _ in range(5):
        leaf.grad = oracle.grad(leaf.detach())
        adamw.step()
        params, state = muon.step(params, state, oracle)
        assert float((params - leaf.detach()).abs().max()) < 1e-13


def test_torch_and_jax_agree() -> None:
    steps = {}
    for framework in ("torch", "jax"):
        problem = make_problem("dynamics", "teacher-student", framework)
        oracle = make_oracle("dynamics", "teacher-student", problem, framework)
        method = make_method("matrix", "muon", framework)
        params = problem.init_params(0)
        state = method.init(params, oracle)
        for _ in range(3):
            params, state = method.step(params, state, oracle)
        steps[framework] = np.asarray(backend(framework).to_numpy(params))
    assert np.abs(steps["torch"] - steps["jax"]).max() < 1e-10
    assert load_method("matrix", "muon")[0].paper.startswith("Provable Scaling Laws")
