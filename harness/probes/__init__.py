"""Probes: measurements at evaluation points, outside the timed region.

A probe is built from its declared options and called with a :class:`ProbeContext`; it returns
named values, stored in the trace as columns ``<probe id>/<name>`` (e.g. ``hessian-top/lambda_1``).
It reads the task through ``context.oracle``, an uncounted oracle of the evaluation's own problem
instance (never the method's): probing costs no budget and leaves the method's sampler untouched.

Examples
--------
>>> class GradNorm:
...     def __init__(self, *, ord: int = 2) -> None:
...         self.ord = ord
...     def __call__(self, context: ProbeContext) -> dict[str, float]:
...         g = context.backend.to_numpy(context.oracle.grad(context.params))
...         return {"norm": float((abs(g) ** self.ord).sum() ** (1 / self.ord))}
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PROBES", "Probe", "ProbeContext", "make_probe"]


@dataclass(frozen=True)
class ProbeContext:
    """What a probe sees at one evaluation point."""

    step: int
    params: Any
    previous_params: Any  # the iterate before the last step (None at step 0)
    state: Any
    oracle: Any  # uncounted oracle of the evaluation's problem
    problem: Any
    method: Any
    backend: Any
    hyperparameters: Mapping[str, Any]


Probe = Callable[[ProbeContext], Mapping[str, float]]

#: Probe id -> ``module:attr`` of a factory called with the probe's options.
PROBES: dict[str, str] = {
    "coherence": "harness.probes.coherence:Coherence",
    "drift": "harness.probes.drift:Drift",
    "ghost-radius": "harness.probes.ghost:GhostRadius",
    "hessian-top": "harness.probes.hessian:HessianTop",
}


def make_probe(probe_id: str, options: Mapping[str, Any]) -> Probe:
    """Build the probe ``probe_id`` with ``options``; unknown ids raise ``KeyError``."""
    if probe_id not in PROBES:
        raise KeyError(f"unknown probe {probe_id!r} (known: {', '.join(sorted(PROBES)) or 'none'})")
    module, _, attr = PROBES[probe_id].partition(":")
    return getattr(importlib.import_module(module), attr)(**options)
