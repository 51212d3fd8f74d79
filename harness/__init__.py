"""harness: declarative benchmarks for gradient-based optimization methods.

The package imports nothing heavy at start-up; torch and jax load only when a run needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
