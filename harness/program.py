"""A method made ready to run: compiled before the clock, then called on it.

The run loop (:mod:`harness.run`) never calls a method directly. It asks the backend for a
:class:`Program` and calls, in this order: :meth:`Program.compile` (before the clock: its
time is the run's ``compile_s``), then :meth:`Program.init`, :meth:`Program.step` and
:meth:`Program.output`, all on the clock.

:class:`EagerProgram` calls the method's Python functions as they are; its ``compile`` warms
a deep copy of the method up for one step against a :class:`~harness.sealed.DecoyOracle`
(noise of the right shapes), so first-call compilation and caches are off the clock while
the method learns nothing about the problem and keeps no state from the warm-up. The jax
backend's :class:`~harness.backends.jax.JitProgram` compiles a pure method's ``init``,
``step`` and ``output`` ahead of time instead.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

from harness.sealed import DecoyOracle, OracleFacts, seal

__all__ = ["EagerProgram", "Program"]


class Program(Protocol):
    """A method bound to its sealed oracle, callable on the clock."""

    #: ``"jit"``: compiled ahead of time, whole; ``"eager"``: the method's Python as it is.
    mode: str
    #: Why a pure method runs eagerly after all (``None`` when it does not).
    fallback: str | None

    def compile(self, params: Any) -> None:
        """Everything that may be done before the clock: compilation, warm-up."""
        ...

    def init(self, params: Any) -> Any: ...

    def step(self, params: Any, state: Any) -> tuple[Any, Any]: ...

    @property
    def has_output(self) -> bool: ...

    def output(self, params: Any, state: Any) -> Any: ...


class EagerProgram:
    """The method's own ``init``/``step``/``output``, called with the sealed oracle.

    Parameters
    ----------
    method
        The method object.
    oracle
        The harness's counting oracle of the run (sealed before the method sees it).
    facts
        The read-only facts the sealed oracle and the decoy expose.
    backend
        The run's backend.
    fallback
        Why a pure method runs eagerly (see :class:`Program`).
    warm_oracle
        Called with the initial params before the warm-up: compiles the oracle's own
        derivatives (the harness's calls, answers discarded).
    """

    mode = "eager"

    def __init__(
        self,
        method: Any,
        oracle: Any,
        facts: OracleFacts,
        backend: Any,
        *,
        fallback: str | None = None,
        warm_oracle: Callable[[Any], None] | None = None,
    ) -> None:
        self.method = method
        self.oracle = seal(oracle, facts)
        self.facts = facts
        self.backend = backend
        self.capabilities = frozenset(oracle.capabilities)
        self.fallback = fallback
        self.warm_oracle = warm_oracle
        self.warmup_error: str | None = None

    def compile(self, params: Any) -> None:
        """One init, step and output of a copy of the method against the decoy; nothing is kept.

        A method that cannot be copied, or fails on noise, is simply not warmed up: whatever
        it then compiles on the clock is detected and flagged by the run.
        """
        if self.warm_oracle is not None:
            self.warm_oracle(params)
        try:
            twin = copy.deepcopy(self.method)
        except Exception as exc:  # noqa: BLE001 - an uncopyable method runs cold
            self.warmup_error = f"not copyable: {type(exc).__name__}: {exc}"
            return
        decoy = seal(DecoyOracle(self.backend, self.capabilities, self.facts), self.facts, warmup=True)
        try:
            start = self.backend.asarray(self.backend.to_numpy(params))
            state = twin.init(start, decoy)
            point, state = twin.step(start, state, decoy)
            output = getattr(twin, "output", None)
            if callable(output):
                output(point, state)
            self.backend.synchronize(point, state)
        except Exception as exc:  # noqa: BLE001 - noise may break a method; the real run decides
            self.warmup_error = f"{type(exc).__name__}: {exc}"

    def init(self, params: Any) -> Any:
        return self.method.init(params, self.oracle)

    def step(self, params: Any, state: Any) -> tuple[Any, Any]:
        return self.method.step(params, state, self.oracle)

    @property
    def has_output(self) -> bool:
        return callable(getattr(self.method, "output", None))

    def output(self, params: Any, state: Any) -> Any:
        return self.method.output(params, state)
