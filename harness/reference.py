"""Reference optima for the task modules, computed in numpy/scipy independently of torch and jax.

A task's ``f_star`` must not come from the frameworks it benchmarks. :func:`minimize` runs scipy's
L-BFGS-B to a tight gradient tolerance, then polishes with Newton steps on the task's closed-form
Hessian while they shrink the gradient: L-BFGS alone stalls a few orders of magnitude above
machine precision on ill-conditioned data, and from there Newton converges quadratically in one
or two steps. :func:`optimum` wraps the result as a read-only :class:`Reference`.

Given a ``task`` id, :func:`optimum` caches the minimizer on disk (:mod:`harness.cache`, folder
``HARNESS_CACHE_DIR``), keyed by the SHA-256 of the task id, the task's ``params``, the contents
of its ``sources`` (its module and YAML) and ``data``, the start, the solver's options,
:data:`SOLVER_VERSION` and the numpy and scipy versions: a worker process, and the next bench,
reads ``x*`` instead of solving again. A cached ``x*`` is never trusted: ``f*`` is recomputed
as ``fun(x*)``, and ``x*`` accepted only where the gradient is within :data:`CACHE_GTOL` (the
solver reaches ~1e-17); else the problem is solved and the file overwritten. An accepted
point is then optimal to within rounding: for a ``mu``-strongly convex ``f``,
``f(x) - f* <= ||g||^2 / (2 mu) <= dim CACHE_GTOL^2 / (2 mu)``: under 1e-18 at the catalog's
defaults (dimension 640 at most, ``mu = 2 l2 = 1e-3``), far below one ulp of ``f*``. A forged
file (a method's code may write the folder) costs a solve, never a wrong ``f*``.

numpy only at import; scipy is imported when a reference is computed.

Examples
--------
>>> import numpy as np
>>> A = np.array([[2.0, 0.0], [0.0, 4.0]])
>>> ref = optimum(lambda x: 0.5 * x @ A @ x - x.sum(), lambda x: A @ x - 1.0, lambda x: A, np.zeros(2))
>>> np.allclose(ref.x_star, [0.5, 0.25]), round(ref.f_star, 12)
(True, -0.375)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from harness.arrays import immutable

__all__ = ["CACHE_GTOL", "SOLVER_VERSION", "Reference", "cache_key", "minimize", "optimum"]

#: Part of every cache key: bump it when :func:`minimize` changes what it returns.
SOLVER_VERSION = 1

#: A minimizer is cached, and a cached one accepted, only where the gradient's largest
#: component is at most this (or the solver's ``gtol``, when tighter).
CACHE_GTOL = 1e-12

Function = Callable[[np.ndarray], float]
Gradient = Callable[[np.ndarray], np.ndarray]


class Reference(NamedTuple):
    """The reference optimum: minimizer and minimum."""

    x_star: np.ndarray
    f_star: float


def minimize(
    fun: Function,
    grad: Gradient,
    hess: Gradient,
    x0: np.ndarray,
    *,
    gtol: float = 1e-12,
    polish_steps: int = 8,
    maxiter: int = 20_000,
    maxcor: int = 30,
) -> np.ndarray:
    """scipy L-BFGS-B to ``gtol``, then Newton steps while they shrink the gradient norm.

    Parameters
    ----------
    fun, grad, hess
        The objective, its gradient and its (dense) Hessian, as numpy functions of ``x``.
    x0
        The starting point.
    gtol
        L-BFGS-B's projected-gradient tolerance (``ftol`` is 0: only ``gtol`` or ``maxiter``
        stop it). A looser one (1e-6) leaves more of the work to Newton, which is cheaper on
        ill-conditioned problems.
    polish_steps
        The most Newton steps ``x <- x - H(x)^{-1} g(x)``; the polish stops at the first step
        that does not shrink ``||g||``, which is then discarded.
    maxiter, maxcor
        L-BFGS-B's iteration limit and number of stored corrections.

    Returns
    -------
    numpy.ndarray
        The minimizer.
    """
    import scipy.optimize

    result = scipy.optimize.minimize(
        lambda x: (fun(x), grad(x)),
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"gtol": gtol, "ftol": 0.0, "maxiter": maxiter, "maxcor": maxcor},
    )
    x = result.x
    g = grad(x)
    for _ in range(polish_steps):
        candidate = x - np.linalg.solve(hess(x), g)
        g_candidate = grad(candidate)
        if not np.linalg.norm(g_candidate) < np.linalg.norm(g):
            break
        x, g = candidate, g_candidate
    return x


def optimum(
    fun: Function,
    grad: Gradient,
    hess: Gradient,
    x0: np.ndarray,
    *,
    task: str | None = None,
    params: Mapping[str, Any] | None = None,
    sources: Iterable[str | os.PathLike[str]] = (),
    data: Sequence[np.ndarray] = (),
    **options: float,
) -> Reference:
    """:func:`minimize` (``options`` are its keywords), as a :class:`Reference` with a read-only ``x_star``.

    With ``task`` (an id), the minimizer is cached on disk under :func:`cache_key` of ``task``,
    ``params`` (the problem's resolved parameters, JSON values), ``sources`` (files whose
    contents define the problem: the task's module and YAML) and ``data`` (its arrays), unless
    ``HARNESS_CACHE_DIR`` is ``off``. A cached minimizer is used only when it passes the
    gradient check (module docstring); ``f_star`` is always ``fun(x_star)`` computed here, so
    a cache hit returns the very ``Reference`` a solve returns, to the bit.
    """
    from harness.cache import cache_dir

    x0 = np.asarray(x0, dtype=np.float64)
    tolerance = min(float(options.get("gtol", 1e-12)), CACHE_GTOL)
    folder = cache_dir() if task is not None else None
    path = None
    if folder is not None and task is not None:
        key = cache_key(task, params or {}, sources, data, x0=x0, options=options)
        path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', task)[:64]}-{key}.npz"
        x_star = _cached(path, grad, x0, tolerance)
        if x_star is not None:
            return Reference(x_star, float(fun(x_star)))
    x_star = immutable(minimize(fun, grad, hess, x0, **options))
    if path is not None and _passes(x_star, grad, x0, tolerance):
        from harness.cache import save_arrays

        save_arrays(path, x_star=x_star)
    return Reference(x_star, float(fun(x_star)))


def cache_key(
    task: str,
    params: Mapping[str, Any],
    sources: Iterable[str | os.PathLike[str]] = (),
    data: Sequence[np.ndarray] = (),
    *,
    x0: np.ndarray | None = None,
    options: Mapping[str, Any] | None = None,
) -> str:
    """The SHA-256 (hex) that names a cached minimizer: everything that determines :func:`minimize`'s result.

    The task id, ``params`` (JSON, keys sorted), the contents of each file of ``sources`` (a
    missing one counts as missing), each array of ``data`` and ``x0`` (dtype, shape, bytes),
    the solver's ``options``, :data:`SOLVER_VERSION` and the numpy and scipy versions.

    Examples
    --------
    >>> cache_key("t", {"a": 1}) == cache_key("t", {"a": 1}) != cache_key("t", {"a": 2})
    True
    """
    import scipy

    digest = hashlib.sha256()

    def add(label: str, payload: bytes) -> None:
        digest.update(f"{label}:{len(payload)}:".encode())
        digest.update(payload)

    head = {"task": task, "params": dict(params), "options": dict(options or {}), "solver": SOLVER_VERSION,
            "numpy": np.__version__, "scipy": scipy.__version__}
    add("head", json.dumps(head, sort_keys=True, default=repr).encode())
    for source in sources:
        try:
            add(f"source {Path(source).name}", Path(source).read_bytes())
        except OSError:
            add(f"missing {Path(source).name}", b"")
    for array in (*data, *(() if x0 is None else (x0,))):
        array = np.ascontiguousarray(array)
        add(f"array {array.dtype.str} {array.shape}", array.tobytes())
    return digest.hexdigest()


def _passes(x: np.ndarray, grad: Gradient, x0: np.ndarray, tolerance: float) -> bool:
    """Whether ``x`` is a minimizer: of ``x0``'s shape, finite, and every gradient component within ``tolerance``."""
    if x.shape != x0.shape or x.dtype != np.float64 or not np.all(np.isfinite(x)):
        return False
    g = np.asarray(grad(x), dtype=np.float64)
    return g.shape == x.shape and bool(np.all(np.isfinite(g))) and float(np.max(np.abs(g), initial=0.0)) <= tolerance


def _cached(path: Path, grad: Gradient, x0: np.ndarray, tolerance: float) -> np.ndarray | None:
    """The minimizer cached at ``path`` (read-only), or ``None``: missing, damaged, forged or stale."""
    from harness.cache import load_arrays

    arrays = load_arrays(path)
    if arrays is None or set(arrays) != {"x_star"}:
        return None
    x_star = immutable(arrays["x_star"]) if arrays["x_star"].dtype == np.float64 else arrays["x_star"]
    return x_star if _passes(x_star, grad, x0, tolerance) else None
