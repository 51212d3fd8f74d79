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

__all__ = ["OUTPUTS", "PROBES", "Probe", "ProbeContext", "ProbeOutput", "make_probe", "probe_output"]


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
    "grad-conflict": "harness.probes.conflict:GradConflict",
    "hessian-top": "harness.probes.hessian:HessianTop",
    "jacobian-asym": "harness.probes.games:JacobianAsymmetry",
    "sgn-margin": "harness.probes.games:SGNMargin",
}


@dataclass(frozen=True)
class ProbeOutput:
    """How one value of a probe reads: its unit, its axis and the line the paper reads it against.

    ``reference`` draws a line at that value for every run (``r = 1``); with ``reference_over``
    the line is ``reference / <hyperparameter>`` of each configuration (``2 / lr``), so it is
    drawn per configuration. ``log``: the value spans decades and is plotted on a log axis
    (values at or below zero sit on its floor).
    """

    unit: str
    description: str
    log: bool = True
    reference: float | None = None
    reference_over: str | None = None
    reference_text: str = ""

    def reference_value(self, hyperparameters: Mapping[str, Any]) -> float | None:
        """The reference line's value for a configuration with ``hyperparameters`` (None: no line)."""
        if self.reference is None:
            return None
        if self.reference_over is None:
            return self.reference
        over = hyperparameters.get(self.reference_over)
        if not isinstance(over, (int, float)) or isinstance(over, bool) or over == 0:
            return None
        return self.reference / float(over)


_RATIO = "ratio"
#: Probe id -> value name -> how it reads (the leaderboard's axes, units and reference lines).
OUTPUTS: dict[str, dict[str, ProbeOutput]] = {
    "ghost-radius": {
        "r": ProbeOutput(_RATIO, "step length over the Taylor radius rho_a (no failure for r < 1)",
                         reference=1.0, reference_text="r = 1"),
        "r_exact": ProbeOutput(_RATIO, "step length over the exact radius (two logits)",
                               reference=1.0, reference_text="r = 1"),
        "rho_a": ProbeOutput("parameter norm", "Taylor radius pi / Delta_a along the step"),
        "rho_exact": ProbeOutput("parameter norm", "exact radius of the binary cross-entropy along the step"),
        "step_norm": ProbeOutput("parameter norm", "length of the last step"),
    },
    "hessian-top": {
        **{f"lambda_{i}": ProbeOutput("loss / parameter²", f"Hessian eigenvalue {i} (Lanczos)",
                                      reference=2.0, reference_over="lr", reference_text="2 / lr")
           for i in range(1, 9)},
        "edge": ProbeOutput(_RATIO, "lambda_1 over 2 / lr (gradient descent is stable below 1)",
                            reference=1.0, reference_text="edge = 1"),
    },
    "coherence": {
        "m_coherence": ProbeOutput(_RATIO, "m-coherence of per-example gradients (about 1: orthogonal)",
                                   reference=1.0, reference_text="α = 1: orthogonal"),
        "alpha": ProbeOutput(_RATIO, "m-coherence over m (1: all gradients equal)"),
        "examples": ProbeOutput("examples", "per-example gradients used", log=False),
    },
    "grad-conflict": {
        "cos": ProbeOutput(_RATIO, "cosine of two task gradients (< 0: they conflict)", log=False,
                           reference=0.0, reference_text="cos = 0"),
        "cos_min": ProbeOutput(_RATIO, "smallest pairwise cosine of the task gradients", log=False,
                               reference=0.0, reference_text="cos = 0"),
        "similarity": ProbeOutput(_RATIO, "magnitude similarity 2|g_i||g_j| / (|g_i|² + |g_j|²) of two tasks",
                                  log=False),
        "similarity_min": ProbeOutput(_RATIO, "smallest pairwise magnitude similarity", log=False,
                                      reference=0.9, reference_text="S = 0.9 (SAM-GS)"),
    },
    "jacobian-asym": {
        "ratio": ProbeOutput(_RATIO, "s / (s + a): s, a the Frobenius norms of the Jacobian's symmetric and "
                             "antisymmetric parts (1: a potential, 0: a pure rotation)", log=False),
        "sym_norm": ProbeOutput("1 / step", "Frobenius norm of the Jacobian's symmetric part"),
        "antisym_norm": ProbeOutput("1 / step", "Frobenius norm of the Jacobian's antisymmetric part"),
    },
    "sgn-margin": {
        "euclidean_margin": ProbeOutput("1 / step", "smallest eigenvalue of sym(J): monotonicity margin "
                                        "(< 0: the Euclidean certificate fails)", log=False,
                                        reference=0.0, reference_text="margin = 0"),
        "sgn_margin": ProbeOutput("1 / step", "alpha*: the margin in the best block-weighted metric (SGN)",
                                  log=False, reference=0.0, reference_text="alpha* = 0"),
        "weight": ProbeOutput("weight", "the block weight of each player in the SGN metric", log=False),
        "safe_step": ProbeOutput("step", "the step size SGN certifies for simultaneous gradient steps"),
    },
    "drift": {
        "implicit_reg": ProbeOutput("loss", "implicit regularizer (h/4) ||grad f||² (gradient steps only)"),
        "modified_objective": ProbeOutput("loss", "f + implicit regularizer (gradient steps only)", log=False),
        "step_drift": ProbeOutput("parameter norm", "(h²/2) ||H g||: one gradient step's distance to the flow"),
        "norm_sq_increment": ProbeOutput("parameter norm²", "||x_t||² - ||x_(t-1)||² over the step taken", log=False),
        "step_sq": ProbeOutput("parameter norm²", "||x_t - x_(t-1)||²: the step taken, any method", log=False),
        "lr2_grad_sq": ProbeOutput("parameter norm²", "h² ||g||²: the Noether increment (gradient steps only)",
                                   log=False),
        "h": ProbeOutput("parameter² / loss", "step size of the gradient step taken, measured from it"),
    },
}


def probe_output(column: str) -> ProbeOutput | None:
    """The :class:`ProbeOutput` of a trace column ``<probe id>/<name>[.<group>]`` (None: not declared).

    Examples
    --------
    >>> probe_output("ghost-radius/r").reference
    1.0
    >>> probe_output("drift/implicit_reg.W").unit
    'loss'
    >>> probe_output("hessian-top/lambda_1").reference_value({"lr": 0.5})
    4.0
    """
    probe_id, _, name = column.partition("/")
    return OUTPUTS.get(probe_id, {}).get(name.partition(".")[0])


def make_probe(probe_id: str, options: Mapping[str, Any]) -> Probe:
    """Build the probe ``probe_id`` with ``options``; unknown ids raise ``KeyError``."""
    if probe_id not in PROBES:
        raise KeyError(f"unknown probe {probe_id!r} (known: {', '.join(sorted(PROBES)) or 'none'})")
    module, _, attr = PROBES[probe_id].partition(":")
    return getattr(importlib.import_module(module), attr)(**options)
