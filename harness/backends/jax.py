"""The jax backend: 64-bit mode, jitted oracle derivatives, optax transformations, compiled programs.

Compilation stays off the method's clock. A pure method (every optax transformation, and a
module that declares ``jit: true``) becomes a :class:`JitProgram`: its ``init``, ``step`` and
``output`` are each traced once, with the oracle's derivatives inlined, and compiled ahead of
time (``jit(...).lower(...).compile()``) on the exact arguments the loop passes. Any other
method runs eagerly (:class:`harness.program.EagerProgram`) after the oracle's jitted
derivatives and the method's own primitives were compiled on a warm-up. Whatever still
compiles on the clock is counted by :func:`compile_counter` (jax's compile events) and the
run is flagged.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # measure what a run uses, not a 75% pool

import jax  # noqa: E402

from harness.cache import cache_dir  # noqa: E402

jax.config.update("jax_enable_x64", True)


def enable_compilation_cache(directory: str | None = None) -> str | None:
    """Turn on jax's persistent compilation cache (every executable, however small or fast to build).

    The cache is keyed by jax on the lowered module (the problem's data, baked in as constants,
    included), the compile options, the jax/XLA version and the device: only an identical
    computation is reused, so results are unchanged. A hit still emits jax's backend-compile
    event, so :func:`compile_counter` counts it like a compilation (an on-clock hit still flags).
    """
    if directory is None:
        folder = cache_dir("HARNESS_JAX_CACHE_DIR", "jax")
        directory = None if folder is None else str(folder)
    if not directory:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


CACHE_DIR = enable_compilation_cache()

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from harness.api import OracleBudgetExceeded  # noqa: E402
from harness.backends import MemoryPeak  # noqa: E402
from harness.oracle import CountingOracle, layout_blocks, own_blocks  # noqa: E402
from harness.program import EagerProgram  # noqa: E402
from harness.sealed import OracleFacts, seal  # noqa: E402

__all__ = ["Backend", "JaxOracle", "JitProgram", "OptaxMethod", "compile_counter"]

# Every compilation of this process, from jax's own monitoring events: a backend compile is
# one compilation; tracing and lowering to MLIR add to its seconds.
_COMPILES = {"count": 0, "seconds": 0.0}
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_COMPILE_STAGES = (_COMPILE_EVENT, "/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")


def _on_duration(event: str, seconds: float, **_: Any) -> None:
    if event in _COMPILE_STAGES:
        _COMPILES["seconds"] += seconds
        if event == _COMPILE_EVENT:
            _COMPILES["count"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_duration)


def compile_counter() -> tuple[int, float]:
    """Compilations so far in this process and their seconds (tracing and lowering included)."""
    return _COMPILES["count"], _COMPILES["seconds"]


class _Jitted:
    """Jitted functions made on first use (``jax.jit`` costs about 0.2 ms apiece, and a run needs few).

    An oracle's views share the one instance, so a function is made, and compiled, once per oracle.
    """

    def __init__(self, makers: dict[str, Callable[[], Callable[..., Any]]]) -> None:
        self._makers = makers

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            made = self._makers[name]()
        except KeyError:
            raise AttributeError(name) from None
        setattr(self, name, made)
        return made


def _values_and_jacobian(terms: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], tuple[jax.Array, jax.Array]]:
    """Compiled: a vector function's values ``(m,)`` and Jacobian ``(m, dim)``, reverse mode, one pass per row."""
    def twice(q: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = terms(q)
        return out, out  # the values ride along as the auxiliary output

    return jax.jit(lambda p: tuple(reversed(jax.jacrev(twice, has_aux=True)(p))))


class JaxOracle(CountingOracle):
    """Derivatives by jax transformations of ``problem.loss``, each compiled once; the problem's closed forms jitted."""

    def _closed_form(self, hook: Any) -> Any:
        """``jax.jit`` of the bound hook: compiled once per oracle (and inlined in a traced step)."""
        return jax.jit(hook)

    def __init__(self, problem: Any, **kwargs: Any) -> None:
        super().__init__(problem, **kwargs)
        loss = problem.loss
        makers: dict[str, Callable[[], Callable[..., Any]]] = {
            "value": lambda: jax.jit(loss),
            "values": lambda: jax.jit(jax.vmap(loss)),
            "grad": lambda: jax.jit(jax.grad(loss)),
            "value_and_grad": lambda: jax.jit(jax.value_and_grad(loss)),
            "hvp": lambda: jax.jit(lambda x, v: jax.jvp(jax.grad(loss), (x,), (v,))[1]),
            "hessian": lambda: jax.jit(jax.hessian(loss)),
            # Finite-sum and logit structure (see harness.oracle).
            "batch_vg": lambda: jax.jit(jax.value_and_grad(loss)),
            "example_grads": lambda: jax.jit(jax.vmap(jax.grad(lambda p, i: loss(p, i[None])), in_axes=(None, 0))),
        }
        logits = getattr(problem, "logits", None)
        if logits is not None:
            makers["jvp_all"] = lambda: jax.jit(lambda x, v: jax.jvp(lambda p: logits(p), (x,), (v,)))
            makers["jvp_some"] = lambda: jax.jit(lambda x, v, i: jax.jvp(lambda p: logits(p, i), (x,), (v,)))
            # Forward mode: one pass per parameter, fewer than the n C logits of a dense-curvature task.
            makers["logit_jacobian"] = lambda: jax.jit(jax.jacfwd(lambda p: logits(p)))
        regularizer = getattr(problem, "regularizer", None)
        if regularizer is not None:
            makers["reg_grad"] = lambda: jax.jit(jax.grad(regularizer))
            makers["reg_hessian"] = lambda: jax.jit(jax.hessian(regularizer))
        for kind, hook in (("task_grads", "task_losses"), ("bilevel_grads", "bilevel_terms")):
            terms = getattr(problem, hook, None)
            if terms is not None:
                makers[kind] = functools.partial(_values_and_jacobian, terms)
        node_losses = getattr(problem, "node_losses", None)
        if node_losses is not None:  # separable in the nodes' copies: block i is grad f_i(x_i)
            makers["node_grads"] = lambda: jax.jit(jax.grad(lambda p: node_losses(p).sum()))
        client_losses = getattr(problem, "client_losses", None)
        if client_losses is not None:  # separable: client k's losses depend on its own copy and examples only
            makers["client_grads"] = lambda: jax.jit(jax.grad(lambda p, e: client_losses(p, e).sum(), argnums=0))
            makers["perturbation_grads"] = lambda: jax.jit(jax.grad(lambda p, e: client_losses(p, e).sum(), argnums=1))
        policy_logits = getattr(problem, "policy_logits", None)
        if policy_logits is not None:
            def log_policy(p: jax.Array, prompts: jax.Array, answers: jax.Array) -> jax.Array:
                return jax.nn.log_softmax(policy_logits(p), axis=-1)[prompts, answers]

            makers["logprobs"] = lambda: jax.jit(log_policy)
            makers["policy_grad"] = lambda: jax.jit(jax.grad(lambda p, i, a, w: (w * log_policy(p, i, a)).sum()))
        player_losses = getattr(problem, "player_losses", None)
        if player_losses is not None:
            makers["player_grads"] = lambda: jax.jit(
                lambda p: own_blocks(jax.jacrev(player_losses)(p), layout_blocks(problem.layout), jnp.concatenate))
        self._jit = _Jitted(makers)

    def _value(self, params: jax.Array) -> jax.Array:
        return self._jit.value(params)

    def _values(self, points: jax.Array) -> jax.Array:
        return self._jit.values(points)

    def _grad(self, params: jax.Array) -> jax.Array:
        return self._jit.grad(params)

    def _value_and_grad(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self._jit.value_and_grad(params)

    def _hvp(self, params: jax.Array, vector: jax.Array) -> jax.Array:
        return self._jit.hvp(params, vector)

    def _hessian(self, params: jax.Array) -> jax.Array:
        return self._jit.hessian(params)

    def _batch_value_and_grad(self, params: jax.Array, indices: np.ndarray) -> tuple[jax.Array, jax.Array]:
        return self._jit.batch_vg(params, jnp.asarray(indices))

    def _per_example_grads(self, params: jax.Array, indices: np.ndarray) -> jax.Array:
        return self._jit.example_grads(params, jnp.asarray(indices))

    def _jvp_logits(self, params: jax.Array, vector: jax.Array, indices: np.ndarray | None) -> tuple[jax.Array, jax.Array]:
        if indices is None:
            return self._jit.jvp_all(params, vector)
        return self._jit.jvp_some(params, vector, jnp.asarray(indices))

    def _task_grads(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self._jit.task_grads(params)

    def _player_grads(self, params: jax.Array) -> jax.Array:
        return self._jit.player_grads(params)

    def _bilevel_grads(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self._jit.bilevel_grads(params)

    def _node_grads(self, params: jax.Array) -> jax.Array:
        return self._jit.node_grads(params)

    def _client_grads(self, params: jax.Array, perturbations: jax.Array) -> jax.Array:
        return self._jit.client_grads(params, perturbations)

    def _perturbation_grads(self, params: jax.Array, perturbations: jax.Array) -> jax.Array:
        return self._jit.perturbation_grads(params, perturbations)

    def _logprobs(self, params: jax.Array, prompts: Any, answers: Any) -> jax.Array:
        return self._jit.logprobs(params, jnp.asarray(prompts), jnp.asarray(answers))

    def _policy_grad(self, params: jax.Array, prompts: Any, answers: Any, weights: jax.Array) -> jax.Array:
        return self._jit.policy_grad(params, jnp.asarray(prompts), jnp.asarray(answers), weights)

    def _gauss_newton(self, params: jax.Array) -> jax.Array:
        logits = self.problem.logits(params)
        jac = self._jit.logit_jacobian(params)  # (n, C, dim)
        lam_jac = jnp.einsum("nce,nef->ncf", self.problem.logit_hessian(logits), jac)
        n, classes, dim = jac.shape
        gn = jac.reshape(n * classes, dim).T @ lam_jac.reshape(n * classes, dim) / n
        return gn + self._jit.reg_hessian(params)

    def _fisher(self, params: jax.Array) -> jax.Array:
        grads = self._per_example_grads(params, np.arange(self.problem.n_samples)) - self._jit.reg_grad(params)
        return grads.T @ grads / grads.shape[0] + self._jit.reg_hessian(params)


class OptaxMethod:
    """Any optax ``GradientTransformation`` as a :class:`harness.api.Method` (pure: the backend jits it whole)."""

    def __init__(self, transformation: Any) -> None:
        self.transformation = transformation

    def init(self, params: jax.Array, oracle: Any) -> Any:
        return self.transformation.init(params)

    def step(self, params: jax.Array, state: Any, oracle: Any) -> tuple[jax.Array, Any]:
        import optax

        updates, state = self.transformation.update(oracle.grad(params), state, params)
        return optax.apply_updates(params, updates), state


#: Programs compiled for earlier runs of this process, by (reuse key, argument specs, facts less
#: the seed). A run that shares all three would trace and compile the very same executables:
#: jax's own caches are keyed by function objects, which are new for every run. The oldest goes
#: first past :data:`PROGRAMS_KEPT`, since each executable holds its problem's data as constants.
_PROGRAMS: OrderedDict[Any, dict[str, Any]] = OrderedDict()
PROGRAMS_KEPT = 16
# What a compiled program is: its executables and the oracle calls and draws each charges.
_COMPILED = tuple(f"_{fn}{part}" for fn in ("init", "step", "output") for part in ("", "_calls", "_draws")) + ("_step_rest",)


class _Untraceable(Exception):
    """A pure method's function cannot be compiled whole (the reason is its message)."""


def _specs(tree: Any) -> Any:
    """The (structure, shape, dtype, weak type) of a pytree of arrays or shape structs."""
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(leaf.shape), str(leaf.dtype), bool(getattr(leaf, "weak_type", False))) for leaf in leaves)


class JitProgram:
    """A pure method compiled whole, ahead of time; counts are charged per call.

    Each function (``init``, ``step``, ``output``) is traced once against a tracing view of
    the oracle: the calls it makes are recorded then, and every execution charges them to
    the run's counts (and its call budget, before it runs: a step that would pass the budget
    does not run). Minibatches are drawn from the run's sampler outside the compiled code,
    in the order an eager run draws them, and passed in. When the step's outputs differ in
    type from its inputs (a Python number in the initial state becomes an array), a second
    executable is compiled for steps 2..N, before the clock too.

    An oracle call inside jax control flow (``lax.cond``, ``while_loop``, ``scan``, ``vmap``)
    would execute a number of times that tracing cannot see: such a method, and any that
    fails to trace, runs as an :class:`~harness.program.EagerProgram` instead, with the
    reason in :attr:`fallback`.

    ``reuse_key`` (:attr:`harness.plan.RunSpec.program_key`, given only where the method is a
    pure function of its declaration) lets a run take the executables compiled for an earlier
    run of this process with the same key, argument specs and facts but its seed; :attr:`reused`
    says it did. Nothing of the earlier run's state is in them: they are the same computation,
    and the calls and draws they charge are the same.
    """

    def __init__(self, method: Any, oracle: JaxOracle, facts: OracleFacts, backend: Backend, *,
                 needs: frozenset[str], reuse_key: str | None = None) -> None:
        self.method = method
        self.needs = needs
        self.reuse_key = reuse_key
        self.reused = False
        self.inner = oracle
        self.facts = facts
        self.backend = backend
        self.mode = "jit"
        self.fallback: str | None = None
        self._eager: EagerProgram | None = None
        self._view = oracle.tracing_view()
        self._top: Any = None
        self._view._guard = self._guard
        self._sealed_view = seal(self._view, facts)
        self._first_step = True

    # -- compilation, before the clock ------------------------------------------------------------

    def compile(self, params: jax.Array) -> None:
        key = None
        if self.reuse_key is not None:
            key = (self.reuse_key, _specs(params), dataclasses.replace(self.facts, seed=0), self.needs)
            kept = _PROGRAMS.get(key)
            if kept is not None:
                _PROGRAMS.move_to_end(key)
                self.__dict__.update(kept)
                self.reused = True
                return
        try:
            self._compile(params)
        except Exception as exc:  # noqa: BLE001 - an untraceable method still runs, eagerly
            self.fallback = str(exc) if isinstance(exc, _Untraceable) else f"{type(exc).__name__}: {exc}"
            self.mode = "eager"
            self._eager = EagerProgram(self.method, self.inner, self.facts, self.backend, fallback=self.fallback,
                                       warm_oracle=lambda p: _warm_oracle(self.inner, p, self.backend, self.needs))
            self._eager.compile(params)
            return
        if key is not None:
            _PROGRAMS[key] = {name: self.__dict__[name] for name in _COMPILED if name in self.__dict__}
            while len(_PROGRAMS) > PROGRAMS_KEPT:
                _PROGRAMS.popitem(last=False)

    def _guard(self) -> None:
        from jax._src import core

        if core.trace_ctx.trace is not self._top:
            raise _Untraceable("an oracle call inside jax control flow (lax.cond, while_loop, scan, vmap) "
                               "cannot be counted at trace time")

    def _traced(self, fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def traced(*args: Any) -> Any:
            from jax._src import core

            self._top = core.trace_ctx.trace
            return fn(*args)

        traced.__name__ = name
        return traced

    def _lower(self, fn: Callable[..., Any], name: str, *args: Any) -> tuple[Any, Counter[str], int]:
        """Compile ``fn(*args, batches)``; return the executable, its oracle calls and minibatch draws."""
        draws = 0
        if self.facts.stochastic:
            # A first, abstract trace counts the draws: the batches argument is shaped by them.
            counter = {"n": 0}
            size = self.inner.batch_size

            def placeholder() -> Any:
                counter["n"] += 1
                return jnp.zeros(size, dtype=jnp.int64)

            self._view.counts = Counter()
            self._view._draw = placeholder
            jax.make_jaxpr(self._traced(lambda *a: fn(*a[:-1]), name))(*args, None)
            draws = counter["n"]
        batches = jax.ShapeDtypeStruct((draws, self.inner.batch_size), jnp.int64) if draws else None
        taken = {"n": 0}

        def take(batch: Any) -> Callable[[], Any]:
            def draw() -> Any:
                taken["n"] += 1
                return batch[taken["n"] - 1]
            return draw

        def with_batches(*a: Any) -> Any:
            *rest, batch = a
            self._view._draw = take(batch) if batch is not None else None
            return fn(*rest)

        self._view.counts = Counter()
        compiled = jax.jit(self._traced(with_batches, name)).lower(*args, batches).compile()
        return compiled, Counter(self._view.counts), draws

    def _compile(self, params: jax.Array) -> None:
        method, oracle = self.method, self._sealed_view
        self._init, self._init_calls, self._init_draws = self._lower(lambda p: method.init(p, oracle), "init", params)
        state = self._init.out_info
        step = lambda p, s: method.step(p, s, oracle)  # noqa: E731
        self._step, self._step_calls, self._step_draws = self._lower(step, "step", params, state)
        out = self._step.out_info
        self._step_rest = self._step
        if _specs(out) != _specs((params, state)):
            self._step_rest, calls, draws = self._lower(step, "step", *out)
            if _specs(self._step_rest.out_info) != _specs(out) or calls != self._step_calls or draws != self._step_draws:
                raise _Untraceable("the step's outputs change type from one step to the next")
        self._output = None
        output = getattr(method, "output", None)
        if callable(output):
            self._output, self._output_calls, self._output_draws = self._lower(output, "output", *self._step_rest.out_info)

    # -- on the clock ------------------------------------------------------------------------------

    def _charge(self, calls: Counter[str], draws: int) -> Any:
        inner = self.inner
        if inner.max_calls is not None and inner.total_calls + sum(calls.values()) > inner.max_calls:
            raise OracleBudgetExceeded(f"oracle-call budget of {inner.max_calls} exhausted")
        inner.counts.update(calls)
        if not draws:
            return None
        batches = np.stack([inner.sample_indices() for _ in range(draws)])
        return self.backend.asarray_int(batches)

    def init(self, params: jax.Array) -> Any:
        if self._eager is not None:
            return self._eager.init(params)
        return self._init(params, self._charge(self._init_calls, self._init_draws))

    def step(self, params: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        if self._eager is not None:
            return self._eager.step(params, state)
        compiled = self._step if self._first_step else self._step_rest
        self._first_step = False
        return compiled(params, state, self._charge(self._step_calls, self._step_draws))

    @property
    def has_output(self) -> bool:
        return callable(getattr(self.method, "output", None))

    def output(self, params: jax.Array, state: Any) -> jax.Array:
        if self._eager is not None:
            return self._eager.output(params, state)
        return self._output(params, state, self._charge(self._output_calls, self._output_draws))


def _warm_oracle(oracle: JaxOracle, params: jax.Array, backend: Backend, needs: frozenset[str]) -> None:
    """Compile the oracle's jitted derivatives that the method needs, on zeros, off the clock.

    Harness calls on the real problem whose answers nobody sees: only the executables are kept.
    """
    zeros = backend.asarray(np.zeros(int(params.shape[0])))
    view = oracle.uncounted()
    warm = {"value": lambda: view.value(zeros), "grad": lambda: view.grad(zeros),
            "value_and_grad": lambda: view.value_and_grad(zeros), "hvp": lambda: view.hvp(zeros, zeros),
            "hessian": lambda: view.hessian(zeros), "gauss_newton": lambda: view.gauss_newton(zeros),
            "fisher": lambda: view.fisher(zeros), "task_grads": lambda: view.task_grads(zeros),
            "player_grads": lambda: view.player_grads(zeros), "matvec": lambda: view.matvec(zeros),
            "matrix": view.matrix, "bilevel_grads": lambda: view.bilevel_grads(zeros),
            "node_grads": lambda: view.node_grads(zeros),
            "clients": lambda: (view.client_grads(zeros), view.perturbation_grads(zeros, None), view.aggregate(zeros))}
    for kind, call in warm.items():
        if kind in oracle.capabilities and kind in needs:
            try:
                jax.block_until_ready(call())
            except Exception:  # noqa: BLE001, S112 - a call the method never makes may fail here
                continue
    if oracle.stochastic and needs & {"grad", "value_and_grad"}:
        jax.block_until_ready(oracle._batch_value_and_grad(zeros, np.arange(oracle.batch_size)))


class Backend:
    """jax on one device, in one dtype (64-bit mode is on for float64 tasks)."""

    name = "jax"

    def __init__(self, *, device: str = "cpu", dtype: str = "float64", threads: int | None = None) -> None:
        self.device = device
        self.dtype = dtype
        self._jax_device = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        self._dtype = getattr(jnp, dtype)
        self.run_seed = 0
        if device == "cpu":
            self._memory = MemoryPeak()
        else:  # XLA's allocator keeps a lifetime peak, which cannot be reset
            self._memory = MemoryPeak(current=lambda: self._device_stat("bytes_in_use"),
                                      high=lambda: self._device_stat("peak_bytes_in_use"))

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
        self._memory.reset()

    def peak_memory_bytes(self) -> int | None:
        return self._memory.peak()

    def baseline_memory_bytes(self) -> int | None:
        return self._memory.baseline

    def _device_stat(self, name: str) -> int:
        return int((self._jax_device.memory_stats() or {}).get(name, 0))

    def asarray_int(self, value: Any) -> jax.Array:
        """Integer indices on the run's device (minibatches passed into compiled steps)."""
        return jax.device_put(jnp.asarray(np.asarray(value), dtype=jnp.int64), self._jax_device)

    def make_oracle(self, problem: Any, *, capabilities: frozenset[str], max_calls: int | None = None) -> JaxOracle:
        return JaxOracle(problem, capabilities=capabilities, max_calls=max_calls, seed=self.run_seed)

    def make_program(self, method: Any, oracle: Any, facts: OracleFacts, *, pure: bool, needs: frozenset[str],
                     reuse_key: str | None = None) -> Any:
        """A :class:`JitProgram` for a pure method on a one-process oracle, else an eager program.

        ``needs``: the calls the method requires, whose derivatives an eager program compiles first.
        ``reuse_key``: see :class:`JitProgram`.
        """
        if pure and isinstance(oracle, JaxOracle):
            return JitProgram(method, oracle, facts, self, needs=needs, reuse_key=reuse_key)
        warm = (lambda params: _warm_oracle(oracle, params, self, needs)) if isinstance(oracle, JaxOracle) else None
        return EagerProgram(method, oracle, facts, self, warm_oracle=warm)

    def compile_counter(self) -> tuple[int, float]:
        return compile_counter()

    def library_method(self, optimizer: str, kwargs: dict[str, Any]) -> OptaxMethod:
        import optax

        factory = getattr(optax, optimizer.removeprefix("optax."), None)
        if factory is None or not callable(factory):
            raise ValueError(f"{optimizer!r} is not an optax transformation")
        return OptaxMethod(factory(**kwargs))
