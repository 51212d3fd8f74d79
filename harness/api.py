"""The protocols a task or a method implements.

A method is a pair of functions over an explicit state, like optax's ``GradientTransformation``::

    state = method.init(params, oracle)
    params, state = method.step(params, state, oracle)

``params`` is one flat vector of the framework (a 1-D ``torch.Tensor`` or ``jax.Array``);
problems with structure (layers, matrices) expose ``layout``, a tuple of ``(name, shape)``
pairs in the order the vector stores them (C order), so that a method needing shapes
(e.g. Muon) can view the vector: ``(("W1", (50, 10)), ("b1", (10,)), ...)``. The oracle gives what the task provides and counts every call.

Examples
--------
Gradient descent as a method, written once for any framework with arithmetic on arrays:

>>> class GD:
...     def __init__(self, lr: float) -> None:
...         self.lr = lr
...     def init(self, params, oracle):
...         return None
...     def step(self, params, state, oracle):
...         return params - self.lr * oracle.grad(params), state
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "Backend",
    "Method",
    "MethodFactory",
    "Oracle",
    "OracleBudgetExceeded",
    "Problem",
    "ProblemFactory",
]

P = Any  # a flat parameter vector of the run's framework
S = TypeVar("S")


class OracleBudgetExceeded(RuntimeError):
    """Raised by an oracle when a call would pass the run's ``budget.oracle_calls``."""


@runtime_checkable
class Oracle(Protocol):
    """Everything a method may use of its task, and nothing else; every call is counted by kind in ``counts``.

    The object a method receives is sealed (:func:`harness.sealed.seal`): the calls and the
    read-only facts below, nothing else (no problem object, no uncounted view, no switch that
    turns counting off); setting any attribute raises ``AttributeError``. Only the calls named
    in ``capabilities`` (the task's ``provides``) answer: the others raise
    ``NotImplementedError``. The calls are exactly :data:`harness.spec.CAPABILITIES`, plus
    ``sample_indices`` on a finite-sum task.

    Facts
    -----
    capabilities
        The calls the task provides.
    counts, total_calls
        Calls made so far, by kind and in all (a read-only view).
    seed
        The run seed, for methods that draw random numbers of their own (a generator of their
        own, seeded from it: zo-sgd's directions).
    dimension
        Length of the flat parameter vector.
    layout
        ``((name, shape), ...)``: the blocks of the vector, in order, or ``None`` (muon and
        curl-descent view their matrices through it).
    n_samples
        Terms of a finite-sum objective, or ``None``.
    n_tasks, shared_dimension
        Tasks of a multi-task problem (``task_grads`` has one row each) and the leading
        coordinates they all share (the rest are task heads); ``None`` otherwise.
    n_players
        Players of a game (player ``i`` owns ``layout`` block ``i``); ``None`` otherwise.
    upper_dimension, n_constraints
        A bilevel problem's upper-level coordinates ``x`` (leading; the lower-level ``y``
        follows) and its number of lower-level constraints ``g_j(x, y) <= 0``; ``None`` otherwise.
    policy_shape, group_size
        A policy's ``(prompts, answers)`` and the rollouts per prompt that ``sample`` draws;
        ``None`` otherwise.
    n_nodes
        A decentralized problem's nodes (the vector stacks one copy per node); ``None`` otherwise.
    n_clients, local_epochs, perturbation_radius
        A federated problem's clients (the vector stacks one model copy per client), the local
        epochs its protocol allows between two ``aggregate`` rounds, and the radius of the l2 ball
        of input perturbations its robust loss is measured against; ``None`` otherwise.
    batch_size, stochastic
        Minibatch size of a stochastic oracle (0: full batch), and whether ``grad`` and
        ``value_and_grad`` answer on minibatches (``batch_size > 0``).
    last_indices
        The last minibatch drawn, a read-only numpy copy (``None`` before the first draw):
        ghost-step measures its radius on the examples of the gradient it just took, by
        ``jvp_logits(params, v, oracle.last_indices)`` when ``stochastic``.
    warmup
        ``True`` on the decoy of the warm-up step, whose answers are noise (skip side effects).
    """

    capabilities: frozenset[str]
    counts: Mapping[str, int]  # a read-only view
    total_calls: int
    seed: int  # the run seed, for methods that draw random numbers of their own
    dimension: int  # length of the flat parameter vector
    layout: tuple[tuple[str, tuple[int, ...]], ...] | None  # the vector's blocks, when the task has them
    n_samples: int | None  # terms of a finite sum
    n_tasks: int | None  # tasks of a multi-task problem
    shared_dimension: int | None  # leading coordinates all tasks share (the rest are task heads)
    n_players: int | None  # players of a game, one layout block each
    upper_dimension: int | None  # a bilevel problem's leading upper-level coordinates
    n_constraints: int | None  # a bilevel problem's lower-level constraints g_j <= 0
    policy_shape: tuple[int, int] | None  # a policy's (prompts, answers)
    group_size: int | None  # rollouts per prompt of sample
    n_nodes: int | None  # a decentralized problem's nodes, one stacked copy each
    n_clients: int | None  # a federated problem's clients, one stacked model copy each
    local_epochs: int | None  # local epochs allowed between two aggregations
    perturbation_radius: float | None  # radius of the threat model's l2 ball of input perturbations
    batch_size: int  # minibatch size of a stochastic oracle (0: full batch)
    stochastic: bool
    last_indices: Any  # the last minibatch drawn (a read-only copy)
    warmup: bool  # True on the decoy of the warm-up step, whose answers are noise

    def value(self, params: P) -> Any:
        """Objective at ``params`` (a framework scalar)."""
        ...

    def grad(self, params: P) -> P:
        """Gradient at ``params``."""
        ...

    def value_and_grad(self, params: P) -> tuple[Any, P]:
        """Objective and gradient in one pass (counted once, as ``value_and_grad``)."""
        ...

    def hvp(self, params: P, vector: P) -> P:
        """Hessian-vector product at ``params``."""
        ...

    def hessian(self, params: P) -> Any:
        """Dense Hessian (small problems only)."""
        ...

    def stochastic_grad(self, params: P) -> P:
        """Gradient of the mean over a fresh minibatch of ``batch_size`` terms (finite sums)."""
        ...

    def per_example_grads(self, params: P, indices: Any = None) -> Any:
        """Gradients of the terms ``f_i``, one row per index, shape ``(m, dim)``."""
        ...

    def jvp_logits(self, params: P, vector: P, indices: Any = None) -> tuple[Any, Any]:
        """Logits ``z`` and their directional derivative ``J_z vector`` (one JVP)."""
        ...

    def task_grads(self, params: P) -> tuple[Any, Any]:
        """Task losses ``(T,)`` and their gradients ``(T, dim)``, one row per task (counted once)."""
        ...

    def player_grads(self, params: P) -> P:
        """A game's simultaneous gradient: each player's gradient of its own loss in its own block."""
        ...

    def values(self, points: Any) -> Any:
        """``f`` at each row of ``points`` ``(m, dim)``: one batched call, counted as ``m`` value calls."""
        ...

    def matvec(self, vector: P) -> P:
        """A linear system's operator applied to ``vector``: ``A vector`` (``grad(x) = A x - b``)."""
        ...

    def matrix(self) -> tuple[Any, Any, Any]:
        """A linear system's nonzeros ``(rows, cols, values)`` in coordinate format (to build a preconditioner)."""
        ...

    def bilevel_grads(self, params: P) -> tuple[Any, Any]:
        """A bilevel problem's ``[F, f, g_1..g_m]`` at ``(x, y)`` and their gradients ``(2 + m, dim)``, one call."""
        ...

    def node_grads(self, params: P, nodes: Any = None) -> P:
        """Each node's gradient of its own loss at its own copy, stacked (zero at nodes not asked for)."""
        ...

    def graph(self) -> Any:
        """A decentralized problem's edges ``(E, 2)``."""
        ...

    def gossip(self, params: P, edge_weights: Any) -> P:
        """The weighted graph Laplacian on the stacked copies, ``(L_w x)_i = sum_e w_e (x_i - x_j)``."""
        ...

    def clients(self) -> Any:
        """A federated problem's client sizes ``n_k`` ``(C,)``; client ``k`` holds the ``k``-th block of examples."""
        ...

    def client_grads(self, params: P, perturbations: Any = None) -> P:
        """Each client's gradient of its loss at its own copy, stacked; inputs shifted by ``perturbations`` ``(n, features)``."""
        ...

    def perturbation_grads(self, params: P, perturbations: Any) -> Any:
        """The gradient ``(n, features)`` of the client losses in the input perturbations (an attack's oracle)."""
        ...

    def aggregate(self, params: P) -> P:
        """The server's round: every copy set to the size-weighted mean of the copies (two messages per client)."""
        ...

    def sample(self, params: P) -> tuple[Any, Any, Any]:
        """``group_size`` rollouts per prompt: ``(prompts, answers, rewards)``, seeded, counted per rollout."""
        ...

    def logprobs(self, params: P, prompts: Any, answers: Any) -> Any:
        """``log pi(answers_i | prompts_i)`` of the policy at ``params`` (one call)."""
        ...

    def policy_grad(self, params: P, prompts: Any, answers: Any, weights: Any) -> P:
        """``grad sum_i weights_i log pi(answers_i | prompts_i)`` (one call)."""
        ...

    def gauss_newton(self, params: P) -> Any:
        """Dense generalized Gauss-Newton matrix ``J^T Lambda J / n`` plus the regularizer's Hessian."""
        ...

    def fisher(self, params: P) -> Any:
        """Dense empirical Fisher of the per-example gradients plus the regularizer's Hessian."""
        ...

    def sample_indices(self) -> Any:
        """Draw the next minibatch of the run's sampler, uncounted (finite-sum tasks only; also ``last_indices``)."""
        ...


class Method(Protocol[S]):
    """An update rule: ``init`` builds the state, ``step`` advances params and state.

    Optional hooks:

    ``output(params, state) -> params``
        The point to evaluate (an averaged iterate, say). Without it, ``params`` are evaluated.
    ``offline(facts, operator)``
        An offline phase whose cost is amortized over problems (a learned solver's training):
        it gets the run's :class:`~harness.sealed.OracleFacts` and, for a linear system, the
        task's operator (``operator.matvec``, uncounted; :func:`~harness.sealed.offline_operator`;
        ``None`` otherwise), never the oracle or the data; its time is reported apart as
        ``offline_s``.

    ``init``, every ``step`` and every ``output`` call are on the method's clock; compilation
    is done before it (see :mod:`harness.program`). A pure jax method may declare
    ``jit: true`` in its YAML to be compiled whole.
    """

    def init(self, params: P, oracle: Oracle) -> S: ...

    def step(self, params: P, state: S, oracle: Oracle) -> tuple[P, S]: ...


#: Builds a method from its hyperparameters (given as keyword arguments).
MethodFactory = Callable[..., Method[Any]]


class Problem(Protocol):
    """A task's implementation: one class for every framework, written over the array namespace.

    Constructed as ``Problem(backend=..., **task_parameters)`` with every parameter the task's
    YAML declares (its defaults merged with the suite's values): the constructor takes them as
    keyword-only arguments without defaults, so the YAML is their one source. The data are
    generated or loaded there (setup, reported apart from the timed steps), as numpy arrays
    made framework arrays by ``backend.asarray`` (``backend.asarray_int`` for integer indices).

    The differentiable code reads the framework off its arrays (:mod:`harness.arrays`,
    :mod:`harness.losses`): no torch or jax subclass, no ``jit``, ``detach`` or dtype handling.
    The backend owns those: its oracle differentiates ``loss``, converts minibatch indices,
    and calls the closed-form hooks through the framework (jax: jitted once per oracle; torch:
    under ``torch.no_grad()`` on detached inputs).

    Attributes
    ----------
    f_star
        The reference optimum, computed independently (numpy/scipy, closed form), or ``None``.
        With it the harness reports ``suboptimality = objective - f_star``.

    Optional hooks (see :mod:`harness.oracle`)
    ------------------------------------------
    ``layout``
        ``((name, shape), ...)``: the blocks of the parameter vector (the oracle's ``layout``).
    ``hessian(params)``, ``gauss_newton(params)``, ``fisher(params)``, ...
        Closed forms of the oracle calls of :data:`harness.oracle.CLOSED_FORM_HOOKS`, preferred
        to autodiff; a formula the numpy reference shares is written once over the namespace.
    ``n_samples``, ``batch_size``, ``loss(params, indices=None)``
        A finite sum ``mean_i f_i``: the number of terms, the minibatch size of ``grad`` (0:
        full batch) and the mean over ``indices`` (a framework integer array; all when ``None``).
    ``logits(params, indices=None)``, ``logit_hessian(logits)``, ``regularizer(params)``
        Losses ``l_i(z_i(params)) + R(params)`` on per-example outputs, for ``jvp_logits``,
        ``gauss_newton`` and ``fisher``.
    """

    f_star: float | None

    def init_params(self, seed: int) -> P:
        """The starting point for run seed ``seed``."""
        ...

    def loss(self, params: P) -> Any:
        """The objective as a differentiable framework scalar (finite sums: ``loss(params, indices=None)``)."""
        ...

    def evaluate(self, params: P) -> dict[str, float]:
        """The declared metrics at ``params`` (``suboptimality`` is added by the harness)."""
        ...


ProblemFactory = Callable[..., Problem]


class Backend(Protocol):
    """A framework's side of a run: placement, seeding, synchronization, memory, oracles."""

    name: str
    device: str
    dtype: str

    def seed(self, seed: int) -> None: ...

    def synchronize(self, *values: Any) -> None:
        """Wait until the device has finished computing ``values`` (all queued work on CUDA)."""
        ...

    def asarray(self, value: Any) -> P:
        """``value`` as an array of the framework, on the run's device, in the run's dtype."""
        ...

    def asarray_int(self, value: Any) -> Any:
        """Integer indices as an index array of the framework on the run's device (``torch.long``, jax int64)."""
        ...

    def to_numpy(self, value: P) -> Any: ...

    def peak_memory_bytes(self) -> int | None:
        """The run's own peak since :meth:`reset_peak_memory`: bytes above the baseline then."""
        ...

    def baseline_memory_bytes(self) -> int | None:
        """What the process (or device) held at :meth:`reset_peak_memory`, before the run."""
        ...

    def reset_peak_memory(self) -> None: ...

    def make_oracle(self, problem: Problem, *, capabilities: frozenset[str], max_calls: int | None = None) -> Oracle: ...

    def library_method(self, optimizer: str, kwargs: dict[str, Any]) -> Method[Any]: ...
