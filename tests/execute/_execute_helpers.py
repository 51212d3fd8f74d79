"""Helpers of the executor tests: their catalog (with the built-in hardware profiles) and plans."""

from __future__ import annotations

from pathlib import Path

from harness.catalog import Catalog, builtin_root
from harness.plan import RunSpec, make_plan
from harness.spec import Budget, SuiteEntry, SuiteSpec

CATALOG = Path(__file__).parent / "catalog"
BUILTIN_HARDWARE = tuple(sorted((builtin_root() / "hardware").glob("*.yaml")))


def runs_of(catalog: Catalog, *, methods: tuple[str, ...] = ("plain-gd",), frameworks: tuple[str, ...] = ("torch",),
            hardware: str = "test-cpu", seeds: tuple[int, ...] = (0,), grid: dict | None = None,
            budget: Budget | None = None, hyperparameters: dict | None = None) -> list[RunSpec]:
    """The runs of a one-entry suite over the ``lsq`` task."""
    suite = SuiteSpec(
        id="exec-test", seeds=seeds, frameworks=frameworks, hardware=(hardware,),
        entries=(SuiteEntry(tasks=("lsq",), methods=methods, grid=grid or {}, budget=budget,
                            hyperparameters=hyperparameters or {}),),
    )
    return make_plan(catalog, suite=suite).runs
