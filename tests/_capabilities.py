"""The capabilities of the oracle, as the contract tests ask them: how to call each, the shapes of its
answer and what one call adds to the counts (tests/test_oracle_contract.py, tests/contract/test_tasks.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["CALLS", "ask", "counted", "leaves", "rows", "shapes"]

#: How to ask each capability, and the shapes of its answer, from the dimension ``d``, the logits' shape
#: and the rows ``t`` (:func:`rows`).
#: A capability added to the schema needs a row here, so it is exercised on both backends.
CALLS: dict[str, tuple[Callable[[Any, Any, Any], Any], Callable[[int, tuple[int, ...], int | None], Any]]] = {
    "value": (lambda o, x, v: o.value(x), lambda d, z, t: ()),
    "grad": (lambda o, x, v: o.grad(x), lambda d, z, t: (d,)),
    "value_and_grad": (lambda o, x, v: o.value_and_grad(x), lambda d, z, t: ((), (d,))),
    "hvp": (lambda o, x, v: o.hvp(x, v), lambda d, z, t: (d,)),
    "hessian": (lambda o, x, v: o.hessian(x), lambda d, z, t: (d, d)),
    "stochastic_grad": (lambda o, x, v: o.stochastic_grad(x), lambda d, z, t: (d,)),
    "per_example_grads": (lambda o, x, v: o.per_example_grads(x, np.arange(5)), lambda d, z, t: (5, d)),
    "jvp_logits": (lambda o, x, v: o.jvp_logits(x, v), lambda d, z, t: (z, z)),
    "gauss_newton": (lambda o, x, v: o.gauss_newton(x), lambda d, z, t: (d, d)),
    "fisher": (lambda o, x, v: o.fisher(x), lambda d, z, t: (d, d)),
    "task_grads": (lambda o, x, v: o.task_grads(x), lambda d, z, t: ((t,), (t, d))),
    "player_grads": (lambda o, x, v: o.player_grads(x), lambda d, z, t: (d,)),
    "matvec": (lambda o, x, v: o.matvec(v), lambda d, z, t: (d,)),
    # t: the nonzeros of a linear system's matrix; the rows of a bilevel problem's terms.
    "matrix": (lambda o, x, v: o.matrix(), lambda d, z, t: ((t,), (t,), (t,))),
    "bilevel_grads": (lambda o, x, v: o.bilevel_grads(x), lambda d, z, t: ((t,), (t, d))),
    # t: the rollouts of one sample call (prompts x group size); prompts and answers are numpy indices.
    "sample": (lambda o, x, v: o.sample(x), lambda d, z, t: ((t,), (t,), (t,))),
    "node_grads": (lambda o, x, v: o.node_grads(x), lambda d, z, t: (d,)),
    # t: the graph's edges.
    "graph": (lambda o, x, v: o.graph(), lambda d, z, t: (t, 2)),
    # t: the clients (their sizes).
    "clients": (lambda o, x, v: o.clients(), lambda d, z, t: (t,)),
}


def _rollouts(prob: Any) -> int:
    return int(prob.policy_logits(prob.init_params(0)).shape[0]) * int(prob.group_size)


def rows(prob: Any, capability: str) -> int | None:
    """The ``t`` of :data:`CALLS` for ``capability`` on ``prob``."""
    if capability == "matrix":
        return int(prob.matrix()[0].shape[0])  # the nonzeros
    if capability == "graph":
        return len(prob.edges)
    if capability == "sample":
        return _rollouts(prob)
    if capability == "clients":
        return int(prob.n_clients)
    if capability == "bilevel_grads":
        return 2 + int(prob.n_constraints)
    return getattr(prob, "n_tasks", None)


def counted(prob: Any, capability: str) -> dict[str, int]:
    """What one call of ``capability`` adds to the oracle's counts: one call, or its units of work."""
    if capability == "sample":
        return {"sample": _rollouts(prob)}  # one per rollout
    if capability == "node_grads":
        return {"node_grad": int(prob.n_nodes)}  # one per node
    return {capability: 1}


def ask(oracle: Any, capability: str, x: Any, v: Any) -> Any:
    """One call of ``capability`` at ``x`` (``v``: a vector argument)."""
    return CALLS[capability][0](oracle, x, v)


def shapes(answer: Any) -> Any:
    if isinstance(answer, tuple):
        return tuple(shapes(a) for a in answer)
    return tuple(answer.shape)


def leaves(answer: Any) -> list[Any]:
    return [leaf for a in answer for leaf in leaves(a)] if isinstance(answer, tuple) else [answer]
