"""Loud failure inside a step: raise on a failed check in torch and numpy, and from the compiled step in jax.

A traced jax step cannot raise on a value, and a NaN it returned instead would be recorded as a
divergence. Under jax the check is a ``lax.cond``: the passing branch returns the value, the
failing one calls the host through ``jax.pure_callback``, whose exception stops the run (the
harness records status ``error`` with this message). A passing step never leaves the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.arrays import is_torch, to_host

__all__ = ["host_check"]


def host_check(value: Any, passed: Any, message: Callable[[np.ndarray], str]) -> Any:
    """``value`` unchanged when ``passed`` (a boolean scalar of the framework) holds; else ``RuntimeError``.

    ``message`` formats the failing value (as numpy). Use the returned value downstream: under
    jax the check is part of the step only through its output.
    """

    def fail(host: Any) -> np.ndarray:
        raise RuntimeError(message(np.asarray(host)))

    if is_torch(value) or isinstance(value, (np.ndarray, np.generic, float)):
        if not bool(passed):
            fail(to_host(value))
        return value
    import jax

    shape = jax.ShapeDtypeStruct(value.shape, value.dtype)
    return jax.lax.cond(passed, lambda v: v, lambda v: jax.pure_callback(fail, shape, v), value)
