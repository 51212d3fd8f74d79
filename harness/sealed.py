"""What a method holds of its task: a sealed oracle, and a decoy to warm methods up on.

A method is code from a submitter who wants to win. The oracle it receives
(:func:`seal`) is a new object that exposes the calls the task declares and a few read-only
facts (:class:`OracleFacts`), and nothing else: no problem object, no uncounted view, no
switch that turns counting off, counts behind a read-only view. Every attribute assignment
raises. The evaluation, ``f*`` and the target test use a problem instance of their own that
the method never gets a reference to (:mod:`harness.run`).

The seal closes every attribute-level door. It does not (cannot, inside one CPython
process) hide objects from introspection (``gc.get_objects``, frame walking, ``__closure__``);
a submission that goes there is not a method but an attack, and the cheating-method tests
(``tests/test_cheats.py``) pin what each such trick still gets: an error or honest counting.

:class:`DecoyOracle` answers every call with seeded noise of the right shapes and dtypes. The
harness runs a copy of the method one step against it before the clock starts, so that lazy
compilation (jax's per-primitive kernels) and first-call caches are paid off the clock, while
no information about the problem reaches the method.

Examples
--------
>>> import numpy as np
>>> class Counted:
...     capabilities = frozenset({"grad"})
...     counts = {"grad": 0}
...     def grad(self, x):
...         self.counts["grad"] += 1
...         return 2 * x
>>> oracle = seal(Counted(), OracleFacts(dimension=2, seed=0))
>>> oracle.grad(np.ones(2)).tolist(), dict(oracle.counts)
([2.0, 2.0], {'grad': 1})
>>> oracle.counting = False
Traceback (most recent call last):
...
AttributeError: the oracle is sealed: 'counting' cannot be set
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.spec import CAPABILITIES

__all__ = ["EXTRA_CALLS", "FACTS", "DecoyOracle", "OracleFacts", "WarmupAborted", "facts_of", "offline_operator", "seal"]

#: Calls offered with a capability besides the call of its own name (call -> the capability it needs):
#: the batched ``values`` (counted as one value per row), the log-probabilities and policy
#: gradients of ``sample``'s rollouts, a decentralized graph's ``gossip``, and a federated problem's
#: client gradients, attack gradients and server aggregation.
EXTRA_CALLS = {"values": "value", "logprobs": "sample", "policy_grad": "sample", "gossip": "graph",
               "client_grads": "clients", "perturbation_grads": "clients", "aggregate": "clients"}
#: Decoy calls allowed in one warm-up: a method looping on noise is cut off here.
DECOY_CALL_LIMIT = 200


@dataclass(frozen=True)
class OracleFacts:
    """The read-only facts of a run that a method may know besides the oracle's answers.

    Attributes
    ----------
    dimension
        Length of the flat parameter vector.
    seed
        The run seed, for methods that draw random numbers of their own.
    layout
        ``((name, shape), ...)``: the blocks of the parameter vector, or ``None``.
    n_samples
        Terms of a finite-sum objective, or ``None``.
    batch_size
        Minibatch size of a stochastic oracle (0: full batch).
    logits_shape
        Shape ``(n, C)`` of the task's logits when it offers ``jvp_logits`` (the decoy needs it).
    n_tasks, shared_dimension
        A multi-task problem's number of tasks, and how many leading coordinates all of them
        share (the rest are task heads); ``None`` otherwise.
    n_players
        A game's number of players (each owns one ``layout`` block); ``None`` otherwise.
    upper_dimension, n_constraints
        A bilevel problem's upper-level coordinates (``x``, leading; ``y`` follows) and its number
        of lower-level constraints ``g_j <= 0``; ``None`` otherwise.
    policy_shape, group_size
        A policy's ``(prompts, answers)`` and the rollouts ``sample`` draws per prompt; ``None``
        otherwise.
    n_nodes
        A decentralized problem's nodes (the vector stacks one copy per node); ``None`` otherwise.
    n_clients, local_epochs, perturbation_radius
        A federated problem's clients (the vector stacks one model copy per client), the local
        epochs its protocol allows between two aggregations, and the radius of its threat model's
        l2 ball of input perturbations; ``None`` otherwise.
    """

    dimension: int
    seed: int
    layout: tuple[tuple[str, tuple[int, ...]], ...] | None = None
    n_samples: int | None = None
    batch_size: int = 0
    logits_shape: tuple[int, ...] | None = None
    n_tasks: int | None = None
    shared_dimension: int | None = None
    n_players: int | None = None
    upper_dimension: int | None = None
    n_constraints: int | None = None
    policy_shape: tuple[int, int] | None = None
    group_size: int | None = None
    n_nodes: int | None = None
    n_clients: int | None = None
    local_epochs: int | None = None
    perturbation_radius: float | None = None

    @property
    def stochastic(self) -> bool:
        return bool(self.batch_size)


#: The facts a sealed oracle shows a method: every field of :class:`OracleFacts` but the decoy's logits shape.
FACTS = tuple(field.name for field in dataclasses.fields(OracleFacts) if field.name != "logits_shape")


def facts_of(problem: Any, oracle: Any, params: Any, *, seed: int, to_numpy: Callable[[Any], Any]) -> OracleFacts:
    """The facts of a run: read off the problem and its oracle by the harness, before the method runs.

    Parameters
    ----------
    problem
        The task's problem (its ``layout`` and, when the oracle offers ``jvp_logits``, the shape
        of its ``logits``).
    oracle
        The run's counting oracle (``n_samples``, ``batch_size``).
    params
        The initial parameter vector.
    seed
        The run seed.
    to_numpy
        The backend's array conversion.
    """
    layout = getattr(problem, "layout", None)
    n_tasks = getattr(problem, "n_tasks", None) if "task_grads" in oracle.capabilities else None
    shared = None
    if n_tasks is not None:  # every coordinate is shared unless the problem says how many are
        shared = getattr(problem, "shared_dimension", None)
        shared = int(params.shape[0]) if shared is None else int(shared)
    n_players = len(layout) if "player_grads" in oracle.capabilities and layout is not None else None
    bilevel = "bilevel_grads" in oracle.capabilities
    upper = getattr(problem, "upper_dimension", None) if bilevel else None
    constraints = getattr(problem, "n_constraints", None) if bilevel else None
    policy_shape = group = None
    if "sample" in oracle.capabilities and callable(getattr(problem, "policy_logits", None)):
        prompts, answers = (int(n) for n in to_numpy(problem.policy_logits(params)).shape)
        policy_shape, group = (prompts, answers), int(problem.group_size)
    n_nodes = getattr(problem, "n_nodes", None) if {"node_grads", "graph"} & oracle.capabilities else None
    federated = "clients" in oracle.capabilities
    n_clients, epochs, radius = ((int(problem.n_clients), int(problem.local_epochs), float(problem.perturbation_radius))
                                 if federated else (None, None, None))
    logits_shape = None
    if "jvp_logits" in oracle.capabilities and callable(getattr(problem, "logits", None)):
        logits_shape = tuple(to_numpy(problem.logits(params)).shape)
    return OracleFacts(
        dimension=int(params.shape[0]),
        seed=int(seed),
        layout=None if layout is None else tuple((str(name), tuple(map(int, shape))) for name, shape in layout),
        n_samples=getattr(oracle, "n_samples", None),
        batch_size=int(getattr(oracle, "batch_size", 0) or 0),
        logits_shape=logits_shape,
        n_tasks=None if n_tasks is None else int(n_tasks),
        shared_dimension=shared,
        n_players=n_players,
        upper_dimension=None if upper is None else int(upper),
        n_constraints=None if constraints is None else int(constraints),
        policy_shape=policy_shape,
        group_size=group,
        n_nodes=None if n_nodes is None else int(n_nodes),
        n_clients=n_clients,
        local_epochs=epochs,
        perturbation_radius=radius,
    )


def seal(oracle: Any, facts: OracleFacts, *, warmup: bool = False) -> Any:
    """The oracle a method receives: ``oracle``'s declared calls and ``facts``, nothing else.

    Parameters
    ----------
    oracle
        The harness's counting oracle (:class:`harness.oracle.CountingOracle`, or a rank's
        sharded one): it keeps counting and enforcing the budget.
    facts
        What the method may read besides the answers.
    warmup
        Read by the method as ``oracle.warmup``: ``True`` on the decoy of the warm-up step
        (whose answers are noise), so a method can skip side effects there (logs, files).
    """
    capabilities = frozenset(oracle.capabilities)
    members: dict[str, Any] = {
        "__slots__": (),
        "__doc__": "A sealed oracle: the task's declared calls, counted; read-only facts.",
        "capabilities": capabilities,
        "counts": property(_counts_view(oracle)),
        "total_calls": property(lambda self: sum(oracle.counts.values())),
        "last_indices": property(lambda self: _read_only_copy(oracle.last_indices)),
        "stochastic": facts.stochastic,
        "warmup": warmup,
        "__setattr__": _refuse_setattr,
        "__delattr__": _refuse_setattr,
        "__repr__": lambda self: f"<sealed oracle: {', '.join(sorted(capabilities))}>",
    }
    for name in FACTS:
        members[name] = getattr(facts, name)
    for name in CAPABILITIES:
        offered = name in capabilities and callable(getattr(oracle, name, None))
        members[name] = _call(oracle, name) if offered else _unavailable(name, capabilities)
    for name, capability in EXTRA_CALLS.items():
        offered = capability in capabilities and callable(getattr(oracle, name, None))
        members[name] = _call(oracle, name) if offered else _unavailable(capability, capabilities)
    if callable(getattr(oracle, "sample_indices", None)) and facts.n_samples is not None:
        members["sample_indices"] = _call(oracle, "sample_indices")
    return type("SealedOracle", (), members)()


def offline_operator(oracle: Any, facts: OracleFacts) -> Any:
    """What a method's offline phase may use besides ``facts``: the task's operator, never its data.

    A linear system's ``matvec`` (``A v``), answered by an uncounted view of ``oracle``, sealed
    like the run's oracle; ``None`` when the task has no operator. The right-hand side, the
    objective and its gradient stay out of reach: an offline phase learns the operator (a learned
    solver is trained for ``A`` and amortized over right-hand sides, as DCDM is), not the answer.
    """
    if "matvec" not in oracle.capabilities:
        return None
    members: dict[str, Any] = {
        "__slots__": (),
        "__doc__": "The task's operator for an offline phase: matvec, uncounted; read-only facts.",
        "dimension": facts.dimension,
        "layout": facts.layout,
        "matvec": _call(oracle.uncounted(), "matvec"),
        "__setattr__": _refuse_setattr,
        "__delattr__": _refuse_setattr,
        "__repr__": lambda self: "<offline operator: matvec>",
    }
    return type("OfflineOperator", (), members)()


def _counts_view(oracle: Any) -> Callable[[Any], Mapping[str, int]]:
    def counts(self: Any) -> Mapping[str, int]:
        return types.MappingProxyType(oracle.counts)

    return counts


def _read_only_copy(indices: Any) -> Any:
    if indices is None:
        return None
    if isinstance(indices, np.ndarray):
        copy = indices.copy()
        copy.setflags(write=False)
        return copy
    return indices  # a tracer inside a compiled step


def _refuse_setattr(self: Any, name: str, value: Any = None) -> None:
    raise AttributeError(f"the oracle is sealed: {name!r} cannot be set")


def _call(oracle: Any, name: str) -> Any:
    bound = getattr(oracle, name)

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return bound(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = getattr(bound, "__doc__", None)
    return call


def _unavailable(name: str, capabilities: frozenset[str]) -> Any:
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"this task does not provide {name!r} (it provides {sorted(capabilities)})")

    call.__name__ = name
    return call


class WarmupAborted(RuntimeError):
    """The warm-up step against the decoy oracle went past :data:`DECOY_CALL_LIMIT` calls."""


class DecoyOracle:
    """Answers every declared call with seeded noise of the call's shape and dtype.

    Noise carries no information about the problem: a method stepped against it compiles
    and warms its caches, and learns nothing. Hessian-like answers are symmetric positive
    definite, so that solves and Cholesky factorizations in a warm-up step succeed.

    Parameters
    ----------
    backend
        The run's backend (makes arrays of its framework, device and dtype).
    capabilities
        The task's declared calls.
    facts
        Dimensions of the answers.
    """

    def __init__(self, backend: Any, capabilities: frozenset[str], facts: OracleFacts) -> None:
        self.backend = backend
        self.capabilities = frozenset(capabilities)
        self.facts = facts
        self.counts: dict[str, int] = {}
        for name in FACTS:
            setattr(self, name, getattr(facts, name))
        self.stochastic = facts.stochastic
        self.last_indices: np.ndarray | None = None
        self._rng = np.random.default_rng(0xDEC0)

    @property
    def total_calls(self) -> int:
        return sum(self.counts.values())

    def _answer(self, kind: str, *shape: int) -> Any:
        capability = EXTRA_CALLS.get(kind, kind)
        if capability not in self.capabilities:
            raise NotImplementedError(f"this task does not provide {capability!r}")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.total_calls > DECOY_CALL_LIMIT:
            raise WarmupAborted(f"more than {DECOY_CALL_LIMIT} oracle calls in one warm-up step")
        return self.backend.asarray(0.1 * self._rng.standard_normal(shape))

    def _spd(self, kind: str) -> Any:
        d = self.facts.dimension
        noise = self._answer(kind, d, d)
        return noise @ noise.T / d + self.backend.asarray(np.eye(d))

    def _rows(self, indices: Any) -> int:
        if indices is not None:
            return len(indices)
        return self.facts.batch_size or self.facts.n_samples or 1

    def value(self, params: Any) -> Any:
        return 1.0 + abs(self._answer("value"))

    def values(self, points: Any) -> Any:
        return 1.0 + abs(self._answer("value", int(points.shape[0])))

    def grad(self, params: Any) -> Any:
        return self._answer("grad", self.facts.dimension)

    def value_and_grad(self, params: Any) -> tuple[Any, Any]:
        return 1.0 + abs(self._answer("value_and_grad")), self.backend.asarray(
            0.1 * self._rng.standard_normal(self.facts.dimension))

    def hvp(self, params: Any, vector: Any) -> Any:
        return self._answer("hvp", self.facts.dimension)

    def hessian(self, params: Any) -> Any:
        return self._spd("hessian")

    def gauss_newton(self, params: Any) -> Any:
        return self._spd("gauss_newton")

    def fisher(self, params: Any) -> Any:
        return self._spd("fisher")

    def stochastic_grad(self, params: Any) -> Any:
        self.last_indices = self.sample_indices()
        return self._answer("stochastic_grad", self.facts.dimension)

    def sample_indices(self) -> np.ndarray:
        n = self.facts.n_samples or 1
        size = self.facts.batch_size or n
        self.last_indices = np.sort(self._rng.choice(n, size=min(size, n), replace=False))
        return self.last_indices

    def per_example_grads(self, params: Any, indices: Any = None) -> Any:
        return self._answer("per_example_grads", self._rows(indices), self.facts.dimension)

    def task_grads(self, params: Any) -> tuple[Any, Any]:
        tasks = self.facts.n_tasks or 1
        grads = self._answer("task_grads", tasks, self.facts.dimension)
        return 1.0 + abs(self.backend.asarray(0.1 * self._rng.standard_normal(tasks))), grads

    def player_grads(self, params: Any) -> Any:
        return self._answer("player_grads", self.facts.dimension)

    def matvec(self, vector: Any) -> Any:
        return self._answer("matvec", self.facts.dimension)

    def matrix(self) -> tuple[Any, Any, Any]:
        # A diagonal positive matrix: a preconditioner built from it is well defined.
        d = self.facts.dimension
        diagonal = self.backend.asarray_int(np.arange(d))
        return diagonal, self.backend.asarray_int(np.arange(d)), 1.0 + abs(self._answer("matrix", d))

    def sample(self, params: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        prompts_n, answers_n = self.facts.policy_shape or (1, 1)
        group = self.facts.group_size or 1
        rewards = self._answer("sample", prompts_n * group)
        prompts = np.repeat(np.arange(prompts_n), group)
        return prompts, self._rng.integers(answers_n, size=prompts_n * group), (rewards > 0) * 1.0

    def logprobs(self, params: Any, prompts: Any, answers: Any) -> Any:
        return -abs(self._answer("logprobs", len(prompts)))

    def policy_grad(self, params: Any, prompts: Any, answers: Any, weights: Any) -> Any:
        return self._answer("policy_grad", self.facts.dimension)

    def node_grads(self, params: Any, nodes: Any = None) -> Any:
        return self._answer("node_grads", self.facts.dimension)

    def graph(self) -> np.ndarray:
        self._answer("graph")
        n = self.facts.n_nodes or 1
        return np.stack([np.arange(n), (np.arange(n) + 1) % n], axis=1)  # a ring

    def gossip(self, params: Any, edge_weights: Any) -> Any:
        return self._answer("gossip", self.facts.dimension)

    def clients(self) -> np.ndarray:
        self._answer("clients")
        n = self.facts.n_clients or 1
        return np.full(n, 10, dtype=np.int64)

    def client_grads(self, params: Any, perturbations: Any = None) -> Any:
        return self._answer("client_grads", self.facts.dimension)

    def perturbation_grads(self, params: Any, perturbations: Any) -> Any:
        return self._answer("perturbation_grads", *perturbations.shape)

    def aggregate(self, params: Any) -> Any:
        return self._answer("aggregate", self.facts.dimension)

    def bilevel_grads(self, params: Any) -> tuple[Any, Any]:
        rows = 2 + (self.facts.n_constraints or 0)
        grads = self._answer("bilevel_grads", rows, self.facts.dimension)
        return self.backend.asarray(0.1 * self._rng.standard_normal(rows)), grads

    def jvp_logits(self, params: Any, vector: Any, indices: Any = None) -> tuple[Any, Any]:
        classes = (self.facts.logits_shape or (1, 1))[-1]
        rows = self._rows(indices) if indices is not None else (self.facts.logits_shape or (1, 1))[0]
        return self._answer("jvp_logits", rows, classes), self.backend.asarray(
            0.1 * self._rng.standard_normal((rows, classes)))
