"""Methods for the clock tests: work hidden in init or output, a one-step solver, compilation on the clock."""

from __future__ import annotations

from harness.arrays import namespace


class NewtonOnce:
    """One exact Newton step: on a quadratic it lands on the minimizer at step 1."""

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        xp = namespace(params)
        return params - xp.linalg.solve(oracle.hessian(params), oracle.grad(params)), state


class SolveInInit:
    """Runs gradient descent to the end inside ``init``; its steps then only return the answer."""

    def __init__(self, *, lr: float, iterations: int) -> None:
        self.lr, self.iterations = lr, iterations

    def init(self, params, oracle):
        for _ in range(self.iterations):
            params = params - self.lr * oracle.grad(params)
        return params

    def step(self, params, state, oracle):
        return state, state


class SolveInOutput:
    """Keeps the oracle from ``init`` and runs gradient descent inside ``output``."""

    def __init__(self, *, lr: float, iterations: int) -> None:
        self.lr, self.iterations = lr, iterations

    def init(self, params, oracle):
        self.oracle = oracle
        return None

    def step(self, params, state, oracle):
        return params, state

    def output(self, params, state):
        for _ in range(self.iterations):
            params = params - self.lr * self.oracle.grad(params)
        return params


class CompilesEveryStep:
    """jax: a freshly jitted function at every step, so every step compiles (on the clock)."""

    def __init__(self, *, lr: float) -> None:
        self.lr = lr

    def init(self, params, oracle):
        return 0

    def step(self, params, state, oracle):
        import jax

        scale = jax.jit(lambda x: x * (self.lr + 0.0 * state))  # a new function: a new compilation
        return params - scale(oracle.grad(params)), state + 1


class NotTraceable:
    """Declared pure (``jit: true``) but reads a value in Python: it must run eagerly, and say why."""

    def __init__(self, *, lr: float) -> None:
        self.lr = lr

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        grad = oracle.grad(params)
        scale = 1.0 if float((grad * grad).sum()) > 0 else 0.0
        return params - self.lr * scale * grad, state


class Pretrained:
    """Gradient descent with an offline phase (a stand-in for training a learned solver)."""

    def __init__(self, *, lr: float, offline_sleep_s: float) -> None:
        self.lr, self.offline_sleep_s = lr, offline_sleep_s
        self.seen_facts = None

    def offline(self, facts, operator):
        import time

        time.sleep(self.offline_sleep_s)
        self.seen_facts = facts

    def init(self, params, oracle):
        assert self.seen_facts is not None and self.seen_facts.dimension == params.shape[0]
        return None

    def step(self, params, state, oracle):
        return params - self.lr * oracle.grad(params), state
