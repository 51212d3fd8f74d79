"""The counting oracle shared by every framework backend.

A backend subclasses :class:`CountingOracle` and supplies the framework's derivatives
(``_value``, ``_grad``, ...), the conversion of minibatch indices to the framework's integer
arrays, and :meth:`CountingOracle._closed_form`. This class owns what must not differ between
frameworks: which calls a task allows, how calls are counted, and the oracle-call budget.

A problem is one class for every framework, written over the array namespace
(:mod:`harness.arrays`). It may give any derivative of :data:`CLOSED_FORM_HOOKS` in closed form
by defining a method of the same name (an analytic Hessian, say); the oracle then calls it
instead of autodiff, through the backend, which owns what differs between frameworks: jax
compiles the bound hook once per oracle (``jax.jit``), torch calls it under ``torch.no_grad()``
on detached inputs.

Finite-sum problems (``f = mean_i f_i``) may expose more structure, each hook optional:

``n_samples``
    The number of terms ``f_i``.
``loss(params, indices=None)``
    The mean of ``f_i`` over ``indices`` (all terms when ``None``); every ``f_i`` carries the
    regularizer, so the mean of per-example gradients is the gradient.
``batch_size``
    When positive and below ``n_samples`` the oracle is stochastic: ``grad`` and
    ``value_and_grad`` answer on a fresh minibatch of that size drawn by a sampler seeded by
    the run seed, and are counted as ``stochastic_grad``. ``value``, ``hvp`` and ``hessian``
    stay exact, so line searches and finite differences compare like with like, and the
    uncounted view that evaluation and probes use is exact too.
``logits(params, indices=None)``, ``logit_hessian(logits)``, ``regularizer(params)``
    For losses ``f_i = l_i(z_i(params)) + R(params)`` on per-example outputs ``z_i`` (logits):
    ``jvp_logits`` and the curvature matrices ``gauss_newton`` and ``fisher`` use them.

Multi-task problems (``loss`` is a scalarization of several task losses) expose:

``n_tasks``, ``task_losses(params)``
    The number of tasks ``T`` and their losses, a framework array of shape ``(T,)``:
    ``task_grads`` answers with those losses and their gradients, one row per task.
``shared_dimension``
    Optional: the leading coordinates of the parameter vector that every task shares (a trunk);
    the rest are task-specific (heads). All coordinates are shared when it is absent.

Games (player ``i`` minimizes its own loss over its own block of the vector) expose:

``player_losses(params)``
    Each player's loss, shape ``(N,)``; the problem's ``layout`` has one block per player, in
    order, and ``player_grads`` answers with the simultaneous gradient: player ``i``'s gradient
    of its loss in its own block, the blocks concatenated.

Linear systems (``loss`` is ``x^T A x / 2 - b^T x`` for a symmetric positive definite ``A``) expose:

``matvec(vector)``
    ``A vector`` without forming ``A`` (a stencil, a sparse product); ``matvec`` answers with it,
    one counted call per product. ``grad(x) = A x - b`` gives the residual.
``matrix()``
    Optional: ``A``'s nonzeros ``(rows, cols, values)`` in coordinate format, framework arrays
    (int64 indices), fresh at each call: for methods that build a preconditioner from the entries
    (Jacobi, incomplete Cholesky); ``matrix`` answers with them, one counted call. Like every
    closed form it is compiled in jax, so inside a compiled step its answer is traced, not a
    constant a method could work on while its program compiles.

Bilevel problems (``min_{x, y} F(x, y)`` over ``y`` in the lower problem's solution set
``argmin_y {f(x, y) : g(x, y) <= 0}``) expose:

``bilevel_terms(params)``, ``upper_dimension``, ``n_constraints``
    ``[F, f, g_1, ..., g_m]`` at ``params = (x, y)``, shape ``(2 + m,)``; ``x`` is the leading
    ``upper_dimension`` coordinates. ``bilevel_grads`` answers with those values and their
    gradients, one row each (``g <= 0`` is feasible).

Decentralized problems (``n`` nodes of a graph, node ``i`` holding its own copy ``x_i`` of the
variable and its own loss ``f_i``; the parameter vector is ``(x_1, ..., x_n)`` stacked) expose:

``n_nodes``, ``edges``, ``node_losses(params)``, ``gossip(params, edge_weights)``
    The number of nodes, the graph's edges (an ``(E, 2)`` numpy array of node pairs, the
    topology a method may know), every node's loss at its own copy ``(n,)``, and the weighted
    Laplacian's action ``(L_w x)_i = sum_{e = (i, j)} w_e (x_i - x_j)`` on the stacked copies
    (a closed form). ``graph()`` answers the edges; ``node_grads(params, nodes=None)`` answers
    each node's gradient of its own loss at its own copy, stacked (zero at nodes not asked for),
    counted as one ``node_grad`` per node; ``gossip`` (with the capability ``graph``) answers ``L_w x``, counted as two
    ``communication`` calls per edge of nonzero weight (a message each way). A sharded problem
    (:mod:`harness.execute.ranks`) answers both on its own nodes only: the all-reduce assembles them.

Federated problems (``C`` clients, client ``k`` holding its own block of the examples and its own
copy ``w_k`` of the model; the parameter vector is ``(w_1, ..., w_C)`` stacked) expose:

``n_clients``, ``client_sizes``, ``local_epochs``, ``perturbation_radius``, ``n_features``,
``client_losses(params, perturbations)``, ``aggregate(params)``
    The number of clients, their examples ``n_k`` (client ``k`` holds the contiguous block of
    examples after those of clients ``0..k-1``), the local epochs the protocol allows between two
    aggregations, the radius of the threat model's l2 ball of input perturbations, the model's
    features (each copy's length), every client's loss at its own copy on inputs shifted by
    ``perturbations`` ``(n, n_features)`` (``(C,)``), and the server's aggregation (a closed form):
    every copy replaced by the size-weighted mean ``sum_k n_k w_k / n``. ``clients()`` answers the
    sizes; ``client_grads(params, perturbations=None)`` each client's gradient of its loss at its
    own copy, stacked, counted as one ``client_grad`` per client; ``perturbation_grads(params,
    perturbations)`` the gradient of the client losses in the perturbations ``(n, n_features)``
    (an attack's oracle), one ``perturbation_grad`` per client; ``aggregate`` two ``communication``
    calls per client (its upload and the broadcast). A sharded problem answers on its own clients
    only: the all-reduce assembles them.

Policies with verifiable rewards (RL on a finite set of prompts and answers) expose:

``policy_logits(params)``, ``rewards(prompts, answers)``, ``group_size``
    The policy's logits ``(P, K)`` (answer ``a`` to prompt ``p`` has probability
    ``softmax(logits[p])[a]``), the verifiable reward of each ``(prompt, answer)`` pair (numpy
    in, numpy float out) and the rollouts drawn per prompt ``G``. ``sample`` draws ``G`` answers
    to every prompt from the policy with the oracle's rollout sampler (seeded by the run seed,
    a stream of its own), counted as one ``sample`` per rollout; ``logprobs`` and ``policy_grad``
    (``grad_params sum_i w_i log pi(a_i | p_i)``) answer on given rollouts, one call each.

``indices`` reach ``loss`` and ``logits`` as integer arrays of the framework (a ``torch.long``
tensor on the run's device, a jax int64 array or tracer): the backend converts the sampler's
numpy draws before it calls the hook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.api import OracleBudgetExceeded
from harness.arrays import like, to_host

__all__ = ["CLOSED_FORM_HOOKS", "COUNTED_AS", "ROLLOUT_STREAM", "SAMPLER_STREAM", "CountingOracle", "layout_blocks",
           "own_blocks"]

#: Second word of the minibatch sampler's seed sequence ``[run seed, SAMPLER_STREAM]``: the
#: sampler's stream stays apart from any other stream a method or problem draws from the run seed.
SAMPLER_STREAM = 0x5A3F1E
#: Second word of the rollout sampler's seed sequence ``[run seed, ROLLOUT_STREAM]`` (``sample``).
ROLLOUT_STREAM = 0x2011A7

#: Count kinds that are not the name of the call counted (kind -> the calls that count it): units of work.
COUNTED_AS = {"node_grad": ("node_grads",), "communication": ("gossip", "aggregate"),
              "client_grad": ("client_grads",), "perturbation_grad": ("perturbation_grads",)}

#: Oracle calls a problem may answer in closed form, by a method of the same name taking the
#: call's arguments (``hessian(params)``, ``gauss_newton(params)``, ...).
CLOSED_FORM_HOOKS = ("value", "grad", "value_and_grad", "hvp", "hessian", "gauss_newton", "fisher", "matvec",
                     "matrix", "gossip", "aggregate")


class CountingOracle:
    """Counts calls by kind, enforces the task's capabilities and the call budget.

    Parameters
    ----------
    problem
        The task's problem object (see :class:`harness.api.Problem`).
    capabilities
        The calls the task declares in ``provides``; others raise ``NotImplementedError``.
    max_calls
        Total calls allowed (``budget.oracle_calls``); the call past it raises
        :class:`harness.api.OracleBudgetExceeded`.
    seed
        The run seed; it seeds the minibatch sampler of a stochastic oracle. Kept as ``seed``
        for methods that draw their own random numbers (random directions, say): they seed a
        generator of their own from it, never the sampler.
    """

    def __init__(
        self, problem: Any, *, capabilities: frozenset[str], max_calls: int | None = None, seed: int = 0
    ) -> None:
        self.problem = problem
        self.capabilities = frozenset(capabilities)
        self.max_calls = max_calls
        self.counts: Counter[str] = Counter()
        self.counting = True
        self.seed = int(seed)
        self.n_samples: int | None = getattr(problem, "n_samples", None)
        batch = int(getattr(problem, "batch_size", 0) or 0)
        if batch < 0:
            raise ValueError(f"batch_size must be >= 0 (0: full batch); got {batch}")
        # A batch as large as the data set is the full batch: no sampling, exact answers.
        self.batch_size = batch if batch and (self.n_samples is None or batch < self.n_samples) else 0
        if self.batch_size and self.n_samples is None:
            raise ValueError("batch_size needs a finite-sum problem (one with n_samples)")
        self.sampler = np.random.default_rng(np.random.SeedSequence([int(seed), SAMPLER_STREAM]))
        self.last_indices: np.ndarray | None = None
        self.rollouts = np.random.default_rng(np.random.SeedSequence([int(seed), ROLLOUT_STREAM]))
        # Set on a tracing view (see :meth:`tracing_view`): checked before every count, and the
        # source of minibatch indices inside a compiled function.
        self._guard: Callable[[], None] | None = None
        self._draw: Callable[[], Any] | None = None
        # The problem's closed-form derivatives, wrapped once by the backend (views share them).
        self._closed: dict[str, Callable[..., Any]] = {
            name: self._closed_form(getattr(problem, name))
            for name in CLOSED_FORM_HOOKS
            if callable(getattr(problem, name, None))
        }

    @property
    def total_calls(self) -> int:
        return sum(self.counts.values())

    @property
    def stochastic(self) -> bool:
        """Whether ``grad`` and ``value_and_grad`` answer on minibatches."""
        return bool(self.batch_size)

    def _call(self, kind: str, default: Any, *args: Any, count_as: str | None = None) -> Any:
        if kind not in self.capabilities:
            raise NotImplementedError(
                f"this task does not provide {kind!r} (it provides {sorted(self.capabilities)})"
            )
        self._count(count_as or kind)
        return self._closed.get(kind, default)(*args)

    def _count(self, kind: str, times: int = 1) -> None:
        if self._guard is not None:
            self._guard()
        if self.counting:
            if self.max_calls is not None and self.total_calls + times > self.max_calls:
                raise OracleBudgetExceeded(f"oracle-call budget of {self.max_calls} exhausted")
            self.counts[kind] += times

    def _require(self, kind: str, *hooks: str) -> None:
        if kind not in self.capabilities:
            raise NotImplementedError(
                f"this task does not provide {kind!r} (it provides {sorted(self.capabilities)})"
            )
        missing = [h for h in hooks if not hasattr(self.problem, h)]
        if missing:
            raise NotImplementedError(f"{kind!r} needs the problem to define {missing}")

    def value(self, params: Any) -> Any:
        return self._call("value", self._value, params)

    def values(self, points: Any) -> Any:
        """``f`` at each row of ``points`` ``(m, dim)``, shape ``(m,)``: one batched call, counted as ``m`` values.

        For particle and population methods; offered wherever ``value`` is.
        """
        self._require("value")
        self._count("value", int(points.shape[0]))
        return self._values(points)

    def grad(self, params: Any) -> Any:
        if self.stochastic:
            self._require("grad")
            self._count("stochastic_grad")
            return self._batch_value_and_grad(params, self.sample_indices())[1]
        return self._call("grad", self._grad, params)

    def value_and_grad(self, params: Any) -> tuple[Any, Any]:
        if self.stochastic:
            self._require("value_and_grad")
            self._count("stochastic_grad")
            return self._batch_value_and_grad(params, self.sample_indices())
        return self._call("value_and_grad", self._value_and_grad, params)

    def sample_indices(self) -> np.ndarray:
        """The next minibatch: ``batch_size`` distinct indices (all of them for a full-batch oracle).

        Draws advance the run's sampler and are not counted; ``last_indices`` keeps the draw.
        """
        if self.n_samples is None:
            raise NotImplementedError("this problem is not a finite sum (it has no n_samples)")
        if self._draw is not None:
            indices = self._draw()
        elif self.stochastic:
            indices = np.sort(self.sampler.choice(self.n_samples, size=self.batch_size, replace=False))
        else:
            indices = np.arange(self.n_samples)
        self.last_indices = indices
        return indices

    def stochastic_grad(self, params: Any) -> Any:
        """The gradient of the mean of ``f_i`` over a fresh minibatch of ``batch_size`` terms.

        A full-batch oracle (``batch_size`` 0) answers with the whole sum.
        """
        self._require("stochastic_grad", "n_samples")
        self._count("stochastic_grad")
        return self._batch_value_and_grad(params, self.sample_indices())[1]

    def per_example_grads(self, params: Any, indices: Any = None) -> Any:
        """Gradients of the terms ``f_i``, one row per index, shape ``(m, dim)``.

        ``indices=None`` takes a fresh minibatch on a stochastic oracle, every term otherwise.
        """
        self._require("per_example_grads", "n_samples")
        self._count("per_example_grads")
        if indices is None:
            indices = self.sample_indices()
        return self._per_example_grads(params, _as_indices(indices))

    def jvp_logits(self, params: Any, vector: Any, indices: Any = None) -> tuple[Any, Any]:
        """Logits ``z`` (m, C) at ``params`` and their directional derivative ``J_z vector``.

        ``indices=None``: every example (the logits of the whole data set).
        """
        self._require("jvp_logits", "logits")
        self._count("jvp_logits")
        if indices is not None:
            indices = _as_indices(indices)
        return self._jvp_logits(params, vector, indices)

    def gauss_newton(self, params: Any) -> Any:
        """Dense generalized Gauss-Newton matrix ``J^T diag(Lambda_i) J / n + hess R``.

        ``J`` is the Jacobian of the logits, ``Lambda_i`` the problem's ``logit_hessian`` (the
        Hessian of ``l_i`` in its logits), ``R`` the problem's ``regularizer``.
        """
        self._require("gauss_newton", "logits", "logit_hessian", "regularizer")
        self._count("gauss_newton")
        return self._closed.get("gauss_newton", self._gauss_newton)(params)

    def fisher(self, params: Any) -> Any:
        """Dense empirical Fisher ``sum_i grad l_i grad l_i^T / n + hess R`` (small problems only).

        ``grad l_i`` is the gradient of term ``i`` without the regularizer ``R``.
        """
        self._require("fisher", "n_samples", "regularizer")
        self._count("fisher")
        return self._closed.get("fisher", self._fisher)(params)

    def hvp(self, params: Any, vector: Any) -> Any:
        return self._call("hvp", self._hvp, params, vector)

    def task_grads(self, params: Any) -> tuple[Any, Any]:
        """The task losses ``(T,)`` and their gradients ``(T, dim)``, one row per task (counted once).

        A row holds the whole vector's gradient: zero on the heads of the other tasks.
        """
        self._require("task_grads", "task_losses", "n_tasks")
        self._count("task_grads")
        return self._task_grads(params)

    def player_grads(self, params: Any) -> Any:
        """The simultaneous gradient ``(dim,)`` of a game: each player's own-block gradient of its own loss."""
        self._require("player_grads", "player_losses", "layout")
        self._count("player_grads")
        return self._player_grads(params)

    def matvec(self, vector: Any) -> Any:
        """``A vector``, the linear system's operator applied to ``vector`` (counted once)."""
        self._require("matvec", "matvec")
        self._count("matvec")
        return self._closed["matvec"](vector)

    def matrix(self) -> tuple[Any, Any, Any]:
        """``A``'s nonzeros ``(rows, cols, values)``, coordinate format, as framework arrays (counted once)."""
        self._require("matrix", "matrix")
        self._count("matrix")
        return self._closed["matrix"]()

    def bilevel_grads(self, params: Any) -> tuple[Any, Any]:
        """``[F, f, g_1..g_m]`` ``(2 + m,)`` at ``params = (x, y)`` and their gradients ``(2 + m, dim)`` (counted once)."""
        self._require("bilevel_grads", "bilevel_terms", "upper_dimension", "n_constraints")
        self._count("bilevel_grads")
        return self._bilevel_grads(params)

    def node_grads(self, params: Any, nodes: Any = None) -> Any:
        """Each node's gradient of its own loss at its own copy, stacked like ``params`` (zero at nodes not asked for).

        ``nodes``: the nodes whose gradients are computed (all when ``None``), counted one each.
        """
        self._require("node_grads", "node_losses", "n_nodes")
        n = int(self.problem.n_nodes)
        mask = np.ones(n) if nodes is None else np.bincount(np.asarray(nodes, dtype=np.int64), minlength=n).clip(0, 1)
        self._count("node_grad", int(mask.sum()))  # one per node (COUNTED_AS)
        grads = self._node_grads(params)
        if nodes is None:
            return grads
        return grads * like(np.repeat(mask, int(params.shape[0]) // n), params)

    def graph(self) -> np.ndarray:
        """The graph's edges, an ``(E, 2)`` read-only int64 numpy array of node pairs (one ``graph`` call)."""
        self._require("graph", "edges", "n_nodes")
        self._count("graph")
        edges = np.array(self.problem.edges, dtype=np.int64).reshape(-1, 2)
        edges.setflags(write=False)
        return edges

    def gossip(self, params: Any, edge_weights: Any) -> Any:
        """``L_w x``: the weighted graph Laplacian on the stacked copies, two ``communication`` calls per active edge."""
        self._require("graph", "gossip", "edges")
        self._count("communication", 2 * int(np.count_nonzero(to_host(edge_weights))))
        return self._closed["gossip"](params, edge_weights)

    def clients(self) -> np.ndarray:
        """The clients' examples ``n_k``, a ``(C,)`` read-only int64 numpy array (one ``clients`` call)."""
        self._require("clients", "client_sizes", "n_clients")
        self._count("clients")
        sizes = np.array(self.problem.client_sizes, dtype=np.int64).reshape(-1)
        sizes.setflags(write=False)
        return sizes

    def client_grads(self, params: Any, perturbations: Any = None) -> Any:
        """Each client's gradient of its loss at its own copy, stacked like ``params``; one ``client_grad`` per client.

        ``perturbations`` ``(n, n_features)`` shift the clients' inputs (``None``: clean inputs).
        """
        self._require("clients", "client_losses", "n_clients")
        self._count("client_grad", int(self.problem.n_clients))
        return self._client_grads(params, self._perturbations(params, perturbations))

    def perturbation_grads(self, params: Any, perturbations: Any) -> Any:
        """The gradient ``(n, n_features)`` of the client losses in the input perturbations; one per client."""
        self._require("clients", "client_losses", "n_clients")
        self._count("perturbation_grad", int(self.problem.n_clients))
        return self._perturbation_grads(params, self._perturbations(params, perturbations))

    def aggregate(self, params: Any) -> Any:
        """The server's round: every copy set to the size-weighted mean of the copies; two ``communication`` per client."""
        self._require("clients", "aggregate", "n_clients")
        self._count("communication", 2 * int(self.problem.n_clients))
        return self._closed["aggregate"](params)

    def _perturbations(self, params: Any, perturbations: Any) -> Any:
        """``perturbations`` as an array of the framework of ``params``; zeros for ``None``."""
        if perturbations is None:
            shape = (int(sum(self.problem.client_sizes)), int(self.problem.n_features))
            return like(np.zeros(shape), params)
        return like(perturbations, params) if isinstance(perturbations, np.ndarray) else perturbations

    def sample(self, params: Any) -> tuple[np.ndarray, np.ndarray, Any]:
        """``G`` rollouts per prompt of the policy at ``params``: ``(prompts, answers, rewards)``, each ``(P G,)``.

        Prompts and answers are read-only int64 numpy arrays (indices, as ``last_indices``), the
        rewards an array of the framework of ``params``; counted as ``P G`` samples.
        """
        self._require("sample", "policy_logits", "rewards", "group_size")
        logits = to_host(self.problem.policy_logits(params))
        prompts_n, _ = logits.shape
        group = int(self.problem.group_size)
        self._count("sample", prompts_n * group)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        cumulative = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
        uniforms = self.rollouts.random((prompts_n, group))
        answers = np.minimum((cumulative[:, None, :] <= uniforms[:, :, None]).sum(-1), logits.shape[1] - 1)
        prompts = np.repeat(np.arange(prompts_n), group)
        answers = answers.reshape(-1).astype(np.int64)
        rewards = np.asarray(self.problem.rewards(prompts, answers), dtype=np.float64)
        prompts.setflags(write=False)
        answers.setflags(write=False)
        return prompts, answers, like(rewards, params)

    def logprobs(self, params: Any, prompts: Any, answers: Any) -> Any:
        """``log pi(answers_i | prompts_i)`` at ``params``, shape ``(m,)`` (one call)."""
        self._require("sample", "policy_logits")
        self._count("logprobs")
        return self._logprobs(params, _as_indices(prompts), _as_indices(answers))

    def policy_grad(self, params: Any, prompts: Any, answers: Any, weights: Any) -> Any:
        """``grad_params sum_i weights_i log pi(answers_i | prompts_i)``, shape ``(dim,)`` (one call)."""
        self._require("sample", "policy_logits")
        self._count("policy_grad")
        return self._policy_grad(params, _as_indices(prompts), _as_indices(answers), weights)

    def hessian(self, params: Any) -> Any:
        return self._call("hessian", self._hessian, params)

    def uncounted(self) -> CountingOracle:
        """A view for probes and evaluation: same task, calls neither counted nor budgeted.

        The view is exact (full batch) and never draws from the run's sampler or rollout
        stream, so probing leaves the minibatch and rollout sequences of the run unchanged.
        """
        # Private sampler and rollout streams: the run's stay untouched.
        return self._view(counting=False, batch_size=0, sampler=np.random.default_rng(0),
                          rollouts=np.random.default_rng(0))

    def tracing_view(self) -> CountingOracle:
        """A view whose calls are recorded in its own ``counts``, with no budget: for tracing.

        A backend traces a pure method's function once against it, reads the calls it made,
        and charges them to this oracle at every execution (``harness.backends.jax.JitProgram``).
        """
        return self._view(counting=True, max_calls=None)

    def _view(self, **attributes: Any) -> CountingOracle:
        """A copy over the same problem and derivatives, with counts of its own and ``attributes`` set."""
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__, counts=Counter(), **attributes)
        return view

    # Framework derivatives: a backend implements these.
    def _closed_form(self, hook: Callable[..., Any]) -> Callable[..., Any]:
        """``hook`` (a problem's closed-form derivative) as this framework calls it; here unchanged."""
        return hook

    def _value(self, params: Any) -> Any:
        raise NotImplementedError

    def _values(self, points: Any) -> Any:
        raise NotImplementedError

    def _grad(self, params: Any) -> Any:
        raise NotImplementedError

    def _value_and_grad(self, params: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def _hvp(self, params: Any, vector: Any) -> Any:
        raise NotImplementedError

    def _hessian(self, params: Any) -> Any:
        raise NotImplementedError

    def _batch_value_and_grad(self, params: Any, indices: np.ndarray) -> tuple[Any, Any]:
        raise NotImplementedError

    def _per_example_grads(self, params: Any, indices: np.ndarray) -> Any:
        raise NotImplementedError

    def _jvp_logits(self, params: Any, vector: Any, indices: np.ndarray | None) -> tuple[Any, Any]:
        raise NotImplementedError

    def _gauss_newton(self, params: Any) -> Any:
        raise NotImplementedError

    def _fisher(self, params: Any) -> Any:
        raise NotImplementedError

    def _task_grads(self, params: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def _player_grads(self, params: Any) -> Any:
        raise NotImplementedError

    def _bilevel_grads(self, params: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def _logprobs(self, params: Any, prompts: Any, answers: Any) -> Any:
        raise NotImplementedError

    def _node_grads(self, params: Any) -> Any:
        raise NotImplementedError

    def _policy_grad(self, params: Any, prompts: Any, answers: Any, weights: Any) -> Any:
        raise NotImplementedError

    def _client_grads(self, params: Any, perturbations: Any) -> Any:
        raise NotImplementedError

    def _perturbation_grads(self, params: Any, perturbations: Any) -> Any:
        raise NotImplementedError


def own_blocks(jacobian: Any, blocks: list[tuple[int, int]], concatenate: Callable[[list[Any]], Any]) -> Any:
    """Row ``i`` of the players' loss Jacobian ``(N, dim)`` restricted to block ``i``, the blocks concatenated."""
    return concatenate([jacobian[i, start:stop] for i, (start, stop) in enumerate(blocks)])


def layout_blocks(layout: Any) -> list[tuple[int, int]]:
    """``(start, stop)`` of each ``(name, shape)`` block of a ``layout``, in order (a game: one per player)."""
    blocks, start = [], 0
    for _, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        blocks.append((start, start + size))
        start += size
    return blocks


def _as_indices(indices: Any) -> Any:
    """Indices as a new int64 numpy array; a jax tracer (inside a compiled step) passes as it is."""
    if type(indices).__module__.startswith("jax"):
        return indices
    return np.array(indices, dtype=np.int64)  # a writable copy: torch refuses to alias read-only memory
