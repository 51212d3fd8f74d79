"""``harness.reference``: the scipy L-BFGS-B + Newton-polish solver behind the tasks' ``f_star``.

Checked on ridge regression, whose optimum is closed-form: the solver must reach machine
precision (gradient norm ~1e-14), where scipy's L-BFGS-B alone stops orders of magnitude above.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from harness.reference import Reference, minimize, optimum


def ridge(n: int = 200, d: int = 30, lam: float = 1e-3, seed: int = 0, condition: float = 1e3):
    """``f(w) = ||A w - b||^2 / (2n) + lam/2 ||w||^2`` with ill-conditioned ``A``, and its exact optimum."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)) * np.logspace(0, np.log10(condition), d)  # column scales 1 .. condition
    b = rng.standard_normal(n)
    H = A.T @ A / n + lam * np.eye(d)

    def fun(w):
        r = A @ w - b
        return float(r @ r / (2 * n) + 0.5 * lam * (w @ w))

    def grad(w):
        return A.T @ (A @ w - b) / n + lam * w

    def hess(w):
        return H

    w_star = np.linalg.solve(H, A.T @ b / n)
    return fun, grad, hess, w_star


def test_reaches_machine_precision_on_the_closed_form_optimum() -> None:
    fun, grad, hess, w_star = ridge()
    x = minimize(fun, grad, hess, np.zeros(w_star.size))
    assert np.linalg.norm(grad(x)) < 1e-13
    assert np.linalg.norm(x - w_star) / np.linalg.norm(w_star) < 1e-10
    assert fun(x) == pytest.approx(fun(w_star), rel=1e-14, abs=1e-15)


def test_matches_scipy_and_polish_only_improves_it() -> None:
    fun, grad, hess, w_star = ridge(seed=1)
    x0 = np.zeros(w_star.size)
    options = {"gtol": 1e-12, "ftol": 0.0, "maxiter": 20_000, "maxcor": 30}
    plain = scipy.optimize.minimize(lambda x: (fun(x), grad(x)), x0, jac=True, method="L-BFGS-B", options=options).x
    # Without polish it is scipy's L-BFGS-B, to the bit; the polish then shrinks the gradient.
    np.testing.assert_array_equal(minimize(fun, grad, hess, x0, polish_steps=0), plain)
    polished = minimize(fun, grad, hess, x0)
    assert np.linalg.norm(grad(polished)) <= np.linalg.norm(grad(plain))
    np.testing.assert_allclose(polished, plain, rtol=0, atol=1e-6 * np.abs(w_star).max())
    # Another scipy solver (exact trust region) lands on the same point.
    other = scipy.optimize.minimize(fun, x0, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-13})
    np.testing.assert_allclose(polished, other.x, rtol=1e-9, atol=1e-12)


def test_a_loose_gtol_is_finished_by_newton() -> None:
    fun, grad, hess, w_star = ridge(seed=2)
    x = minimize(fun, grad, hess, np.zeros(w_star.size), gtol=1e-6, polish_steps=20)
    assert np.linalg.norm(grad(x)) < 1e-13


def test_a_step_that_does_not_shrink_the_gradient_is_discarded() -> None:
    fun, grad, _, w_star = ridge(seed=3)
    x0 = np.zeros(w_star.size)
    plain = minimize(fun, grad, lambda w: np.eye(w.size), x0, polish_steps=0)
    # A wrong Hessian (the identity) makes "Newton" steps that grow the gradient: none is kept.
    np.testing.assert_array_equal(minimize(fun, grad, lambda w: np.eye(w.size) * 1e-3, x0), plain)


def test_optimum_is_a_read_only_reference() -> None:
    fun, grad, hess, w_star = ridge(seed=4)
    ref = optimum(fun, grad, hess, np.zeros(w_star.size))
    assert isinstance(ref, Reference) and isinstance(ref.f_star, float)
    assert ref.f_star == fun(ref.x_star)
    assert not ref.x_star.flags.writeable
    np.testing.assert_allclose(ref.x_star, w_star, rtol=1e-10, atol=1e-13)


def test_importing_it_does_not_import_scipy_optimize() -> None:
    import subprocess
    import sys

    code = "import sys, harness.reference; print('scipy.optimize' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
