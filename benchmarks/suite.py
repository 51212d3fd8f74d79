"""The catalog's regression benchmarks: asv classes generated from suite ``asv`` (``suites/asv.yaml``).

One class per (task, method) pair, parameterized over ``variant`` and ``framework``; see
:mod:`harness.regress.suite` for what each benchmark tracks and how its version is made.
``harness regress record --suite/--hardware/--catalog`` chooses another suite, profile or extra
catalog root through the environment.
"""

from pathlib import Path

from harness.regress.suite import from_environment

globals().update(from_environment(Path(__file__).resolve().parents[1], module=__name__))
