"""``harness.losses`` and ``harness.arrays``: one code path for torch and jax, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special

from harness.arrays import like, namespace, softmax, take
from harness.losses import binary_logits, cross_entropy, cross_entropy_hessian, logistic_loss, logsumexp, sigmoid

FRAMEWORKS = ("torch", "jax")


def asarray(framework: str, values: np.ndarray):
    if framework == "torch":
        import torch

        return torch.as_tensor(values, dtype=torch.float64)
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax.numpy.asarray(values, dtype=jax.numpy.float64)


def to_numpy(x) -> np.ndarray:
    return np.asarray(x.detach() if hasattr(x, "detach") else x)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_namespace_and_like(framework: str) -> None:
    x = asarray(framework, np.arange(3.0))
    assert namespace(x).__name__ == ("torch" if framework == "torch" else "jax.numpy")
    y = like(np.ones(3, dtype=np.float32), x)
    assert type(y) is type(x) and y.dtype == x.dtype
    assert take(x, None) is x
    np.testing.assert_array_equal(to_numpy(take(x, np.array([2, 0]))), [2.0, 0.0])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_logistic_pieces_are_exact_for_large_margins(framework: str) -> None:
    margins = np.array([-800.0, -30.0, 0.0, 25.0, 800.0])
    m = asarray(framework, margins)
    assert float(logistic_loss(m)) == pytest.approx(np.mean(np.logaddexp(0.0, -margins)), rel=1e-15)
    # 25: softplus's identity branch would be off by ~1e-11 relative; logaddexp is exact.
    assert float(logistic_loss(m[3:4])) == pytest.approx(np.log1p(np.exp(-25.0)), rel=1e-14)
    np.testing.assert_array_equal(to_numpy(binary_logits(m)), np.stack([np.zeros(5), margins], axis=1))
    np.testing.assert_allclose(to_numpy(sigmoid(m)), scipy.special.expit(margins), rtol=1e-15)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_cross_entropy_and_its_logit_hessian(framework: str) -> None:
    rng = np.random.default_rng(0)
    logits_np = rng.standard_normal((6, 4)) * 3.0
    targets_np = np.eye(4)[rng.integers(0, 4, size=6)]
    logits, targets = asarray(framework, logits_np), asarray(framework, targets_np)
    p = scipy.special.softmax(logits_np, axis=1)
    np.testing.assert_allclose(to_numpy(softmax(logits)), p, rtol=1e-14)
    np.testing.assert_allclose(to_numpy(logsumexp(logits)), scipy.special.logsumexp(logits_np, axis=1), rtol=1e-14)
    expected = np.mean(scipy.special.logsumexp(logits_np, axis=1) - np.sum(targets_np * logits_np, axis=1))
    assert float(cross_entropy(logits, targets)) == pytest.approx(expected, rel=1e-14)
    hessian = to_numpy(cross_entropy_hessian(logits))
    np.testing.assert_allclose(hessian, np.stack([np.diag(q) - np.outer(q, q) for q in p]), rtol=1e-14, atol=1e-17)


def test_helpers_run_under_jit() -> None:
    import jax

    logits = asarray("jax", np.random.default_rng(1).standard_normal((5, 3)))
    np.testing.assert_allclose(
        np.asarray(jax.jit(cross_entropy_hessian)(logits)), np.asarray(cross_entropy_hessian(logits)), rtol=1e-14
    )
