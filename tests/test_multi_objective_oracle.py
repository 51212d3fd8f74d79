"""The oracle's multi-task and game calls, against closed forms, in both frameworks.

``task_grads`` answers a multi-task problem's losses and their gradients (one row per task);
``player_grads`` a game's simultaneous gradient (each player's own-block gradient of its own
loss). Both are counted once per call, refused where the task does not provide them, read as
facts by the sealed oracle, answered in shape by the warm-up's decoy, and charged per step by
a compiled jax program.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.arrays import namespace
from harness.backends import make_backend
from harness.sealed import DecoyOracle, facts_of, seal

FRAMEWORKS = ("torch", "jax")
RNG = np.random.default_rng(3)
A = RNG.standard_normal((3, 4, 5))  # three tasks, each 0.5 ||A_t x - b_t||^2 on the first 3 coords + its head
B = RNG.standard_normal((3, 4))
J = np.array([[1.0, 10.0, 0.0], [0.05, 1.0, 0.3], [0.0, -2.0, 2.0]])  # a game's pseudo-gradient Jacobian
C = RNG.standard_normal(3)


class ThreeTasks:
    """Shared coordinates 0..2, one head coordinate per task (3, 4, 5 after the trunk)."""

    n_tasks = 3
    shared_dimension = 3

    def __init__(self, backend):
        self.backend = backend
        self.A, self.B = backend.asarray(A), backend.asarray(B)

    def _inputs(self, params, task):
        xp = namespace(params)
        return xp.concatenate([params[:3], params[3 + task:4 + task], params[:1] * 0.0])

    def task_losses(self, params):
        xp = namespace(params)
        rows = [0.5 * xp.sum((self.A[t] @ self._inputs(params, t) - self.B[t]) ** 2) for t in range(3)]
        return xp.stack(rows)

    def loss(self, params):
        return namespace(params).mean(self.task_losses(params))


class LinearGame:
    """Player i owns coordinate i; f_i(x) = x_i (J x)_i - J_ii x_i^2 / 2 + c_i x_i, so F(x) = J x + c."""

    layout = (("x1", (1,)), ("x2", (1,)), ("x3", (1,)))

    def __init__(self, backend):
        self.J, self.C = backend.asarray(J), backend.asarray(C)

    def player_losses(self, params):
        jx = self.J @ params
        return params * jx - 0.5 * namespace(params).diagonal(self.J) * params**2 + self.C * params

    def loss(self, params):
        return namespace(params).sum(params**2)


def _task_grads_numpy(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    losses, grads = np.zeros(3), np.zeros((3, 6))
    for t in range(3):
        z = np.concatenate([x[:3], x[3 + t:4 + t], [0.0]])
        r = A[t] @ z - B[t]
        losses[t] = 0.5 * r @ r
        g = A[t].T @ r
        grads[t, :3] = g[:3]
        grads[t, 3 + t] = g[3]
    return losses, grads


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_task_grads_are_each_tasks_loss_and_gradient(framework: str) -> None:
    backend = make_backend(framework)
    problem = ThreeTasks(backend)
    oracle = backend.make_oracle(problem, capabilities=frozenset({"value", "task_grads"}))
    x = RNG.standard_normal(6)
    losses, grads = oracle.task_grads(backend.asarray(x))
    want_losses, want_grads = _task_grads_numpy(x)
    np.testing.assert_allclose(backend.to_numpy(losses), want_losses, rtol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(grads), want_grads, rtol=1e-12, atol=1e-13)
    assert dict(oracle.counts) == {"task_grads": 1}
    bare = backend.make_oracle(problem, capabilities=frozenset({"value"}))
    with pytest.raises(NotImplementedError, match="task_grads"):
        bare.task_grads(backend.asarray(x))
    facts = facts_of(problem, oracle, backend.asarray(x), seed=0, to_numpy=backend.to_numpy)
    assert (facts.n_tasks, facts.shared_dimension, facts.n_players) == (3, 3, None)
    sealed = seal(oracle, facts)
    assert (sealed.n_tasks, sealed.shared_dimension) == (3, 3)
    decoy = DecoyOracle(backend, oracle.capabilities, facts)
    values, rows = decoy.task_grads(backend.asarray(x))
    assert tuple(values.shape) == (3,) and tuple(rows.shape) == (3, 6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_player_grads_are_the_simultaneous_gradient(framework: str) -> None:
    backend = make_backend(framework)
    problem = LinearGame(backend)
    oracle = backend.make_oracle(problem, capabilities=frozenset({"value", "player_grads"}))
    x = RNG.standard_normal(3)
    answer = backend.to_numpy(oracle.player_grads(backend.asarray(x)))
    np.testing.assert_allclose(answer, J @ x + C, rtol=1e-13, atol=1e-14)
    assert dict(oracle.counts) == {"player_grads": 1}
    facts = facts_of(problem, oracle, backend.asarray(x), seed=0, to_numpy=backend.to_numpy)
    assert (facts.n_players, facts.n_tasks) == (3, None)
    assert seal(oracle, facts).n_players == 3
    assert tuple(DecoyOracle(backend, oracle.capabilities, facts).player_grads(x).shape) == (3,)


class _SurgeryFree:
    """A pure method: the mean of the task gradients, one task_grads call a step."""

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        _, grads = oracle.task_grads(params)
        return params - 0.1 * grads.mean(axis=0), state


def test_a_compiled_jax_step_charges_its_task_grads_call() -> None:
    backend = make_backend("jax")
    problem = ThreeTasks(backend)
    oracle = backend.make_oracle(problem, capabilities=frozenset({"value", "task_grads"}))
    x0 = backend.asarray(RNG.standard_normal(6))
    facts = facts_of(problem, oracle, x0, seed=0, to_numpy=backend.to_numpy)
    program = backend.make_program(_SurgeryFree(), oracle, facts, pure=True, needs=frozenset({"task_grads"}))
    program.compile(x0)
    assert program.mode == "jit" and oracle.total_calls == 0
    x, state = x0, program.init(x0)
    for _ in range(3):
        x, state = program.step(x, state)
    assert dict(oracle.counts) == {"task_grads": 3}
    want = backend.to_numpy(x0)
    for _ in range(3):
        want = want - 0.1 * _task_grads_numpy(want)[1].mean(axis=0)
    np.testing.assert_allclose(backend.to_numpy(x), want, rtol=1e-12)
