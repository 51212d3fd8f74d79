"""Methods that try to win without doing the work: each trick a submitter could try first.

Every one is run by ``tests/test_cheats.py``: each trick must either fail with a clear error
or be counted and timed like honest work, and honest runs beside it must not be affected.
"""

from __future__ import annotations

import gc


class _GD:
    def __init__(self, *, lr: float) -> None:
        self.lr = lr

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        return params - self.lr * oracle.grad(params), state


class Uncounted(_GD):
    """Asks for the uncounted view that probes use."""

    def step(self, params, state, oracle):
        return params - self.lr * oracle.uncounted().grad(params), state


class ProblemLoss(_GD):
    """Differentiates the problem's loss itself, past the oracle."""

    def step(self, params, state, oracle):
        oracle.problem.loss(params)
        return super().step(params, state, oracle)


class CountingOff(_GD):
    """Switches the oracle's counting off."""

    def init(self, params, oracle):
        oracle.counting = False
        return None


class CountsClear(_GD):
    """Empties the call counts after each step."""

    def step(self, params, state, oracle):
        out = super().step(params, state, oracle)
        oracle.counts.clear()
        return out


class XStar(_GD):
    """Returns the reference minimizer."""

    def step(self, params, state, oracle):
        return oracle.problem.x_star, state


class FStar(_GD):
    """Moves the reference optimum through the oracle's problem."""

    def init(self, params, oracle):
        oracle.problem.f_star = 1e9
        return None


def _problems():
    found = [o for o in gc.get_objects() if hasattr(type(o), "evaluate") and hasattr(type(o), "init_params")
             and hasattr(o, "f_star")]
    if len(found) < 2:  # the method's problem and the evaluation's: the trick must really be tried
        raise RuntimeError(f"found {len(found)} problem object(s)")
    return found


class FStarEverywhere(_GD):
    """Finds every problem object alive (garbage collector) and moves its optimum far above."""

    def init(self, params, oracle):
        for problem in _problems():
            problem.f_star = 1e9
        return None


class EvaluateEverywhere(_GD):
    """Finds every problem object alive and replaces its evaluate() by one reporting the optimum."""

    def init(self, params, oracle):
        for problem in _problems():
            best = problem.f_star
            problem.evaluate = lambda x, best=best: {"objective": best}
        return None


class PoisonData(_GD):
    """Takes the cached data of the logreg task (the shared loader) and tries to make them writable."""

    def init(self, params, oracle):
        from harness.datasets import binary_classification

        X, y = binary_classification("synthetic", 1000, 20, 0)  # the arrays every logreg run shares
        X.setflags(write=True)
        X[...] = 0.0
        return None


class MatrixAtTrace:
    """Solves the linear system with numpy from ``matrix()`` while its compiled program is traced (off the clock)."""

    def init(self, params, oracle):
        import numpy as np
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        rows, cols, values = (np.asarray(a) for a in oracle.matrix())  # a tracer refuses this
        n = params.shape[0]
        b = -np.asarray(oracle.grad(params))
        return spla.spsolve(sp.csc_matrix((values, (rows, cols)), shape=(n, n)), b)

    def step(self, params, state, oracle):
        return params * 0 + state, state


class OfflineRightHandSide(_GD):
    """Reads the right-hand side (a gradient) in its offline phase, before the clock."""

    def offline(self, facts, operator):
        self.b = -operator.grad(None)
