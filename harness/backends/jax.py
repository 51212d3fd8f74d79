"""The jax backend: 64-bit mode, jitted oracle derivatives, optax transformations."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # measure what a run uses, not a 75% pool

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from harness.backends import peak_rss_bytes, reset_peak_rss  # noqa: E402
from harness.oracle import CountingOracle  # noqa: E402

__all__ = ["Backend", "JaxOracle", "OptaxMethod"]


class JaxOracle(CountingOracle):
    """Derivatives by jax transformations of ``problem.loss``, each compiled once."""

    def __init__(self, problem: Any, **kwargs: Any) -> None:
        super().__init__(problem, **kwargs)
        loss = problem.loss
        self._value = jax.jit(loss)
        self._grad = jax.jit(jax.grad(loss))
        self._value_and_grad = jax.jit(jax.value_and_grad(loss))
        self._hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(loss), (x,), (v,))[1])
        self._hessian = jax.jit(jax.hessian(loss))
        # Finite-sum and logit structure (see harness.oracle), compiled on first use.
        self._batch_vg = jax.jit(jax.value_and_grad(loss))
        self._example_grads = jax.jit(jax.vmap(jax.grad(lambda p, i: loss(p, i[None])), in_axes=(None, 0)))
        logits = getattr(problem, "logits", None)
        if logits is not None:
            self._jvp_all = jax.jit(lambda x, v: jax.jvp(lambda p: logits(p), (x,), (v,)))
            self._jvp_some = jax.jit(lambda x, v, i: jax.jvp(lambda p: logits(p, i), (x,), (v,)))
            # Forward mode: one pass per parameter, fewer than the n C logits of a dense-curvature task.
            self._logit_jacobian = jax.jit(jax.jacfwd(lambda p: logits(p)))
        regularizer = getattr(problem, "regularizer", None)
        if regularizer is not None:
            self._reg_grad = jax.jit(jax.grad(regularizer))
            self._reg_hessian = jax.jit(jax.hessian(regularizer))

    def _batch_value_and_grad(self, params: jax.Array, indices: np.ndarray) -> tuple[jax.Array, jax.Array]:
        return self._batch_vg(params, jnp.asarray(indices))

    def _per_example_grads(self, params: jax.Array, indices: np.ndarray) -> jax.Array:
        return self._example_grads(params, jnp.asarray(indices))

    def _jvp_logits(self, params: jax.Array, vector: jax.Array, indices: np.ndarray | None) -> tuple[jax.Array, jax.Array]:
        if indices is None:
            return self._jvp_all(params, vector)
        return self._jvp_some(params, vector, jnp.asarray(indices))

    def _gauss_newton(self, params: jax.Array) -> jax.Array:
        logits = self.problem.logits(params)
        jac = self._logit_jacobian(params)  # (n, C, dim)
        lam_jac = jnp.einsum("nce,nef->ncf", self.problem.logit_hessian(logits), jac)
        n, classes, dim = jac.shape
        gn = jac.reshape(n * classes, dim).T @ lam_jac.reshape(n * classes, dim) / n
        return gn + self._reg_hessian(params)

    def _fisher(self, params: jax.Array) -> jax.Array:
        grads = self._per_example_grads(params, np.arange(self.problem.n_samples)) - self._reg_grad(params)
        return grads.T @ grads / grads.shape[0] + self._reg_hessian(params)


class OptaxMethod:
    """Any optax ``GradientTransformation`` as a :class:`harness.api.Method`; the update is jitted."""

    def __init__(self, transformation: Any) -> None:
        import optax

        self.transformation = transformation

        def apply(params: jax.Array, state: Any, grad: jax.Array) -> tuple[jax.Array, Any]:
            updates, state = transformation.update(grad, state, params)
            return optax.apply_updates(params, updates), state

        self._apply = jax.jit(apply)

    def init(self, params: jax.Array, oracle: Any) -> Any:
        return self.transformation.init(params)

    def step(self, params: jax.Array, state: Any, oracle: Any) -> tuple[jax.Array, Any]:
        return self._apply(params, state, oracle.grad(params))


class Backend:
    """jax on one device, in one dtype (64-bit mode is on for float64 tasks)."""

    name = "jax"

    def __init__(self, *, device: str = "cpu", dtype: str = "float64", threads: int | None = None) -> None:
        self.device = device
        self.dtype = dtype
        self._jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        self._dtype = getattr(jnp, dtype)
        self.run_seed = 0

    def seed(self, seed: int) -> None:
        np.random.seed(seed % 2**32)
        self.run_seed = int(seed)  # the oracle's minibatch sampler starts from it

    def synchronize(self, *values: Any) -> None:
        # jax dispatch is asynchronous: wait for the step's outputs before the clock is read.
        jax.block_until_ready(values)

    def asarray(self, value: Any) -> jax.Array:
        return jax.device_put(jnp.asarray(np.asarray(value), dtype=self._dtype), self._jax_device)

    def to_numpy(self, value: jax.Array) -> np.ndarray:
        return np.asarray(value)

    def reset_peak_memory(self) -> None:
        if self.device == "cpu":
            reset_peak_rss()

    def peak_memory_bytes(self) -> int | None:
        if self.device == "cpu":
            return peak_rss_bytes()
        stats = self._jax_device.memory_stats() or {}
        return stats.get("peak_bytes_in_use")

    def make_oracle(self, problem: Any, *, capabilities: frozenset[str], max_calls: int | None = None) -> JaxOracle:
        return JaxOracle(problem, capabilities=capabilities, max_calls=max_calls, seed=self.run_seed)

    def library_method(self, optimizer: str, kwargs: dict[str, Any]) -> OptaxMethod:
        import optax

        factory = getattr(optax, optimizer.removeprefix("optax."), None)
        if factory is None or not callable(factory):
            raise ValueError(f"{optimizer!r} is not an optax transformation")
        return OptaxMethod(factory(**kwargs))
