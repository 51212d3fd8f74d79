"""Compare the results of two stores, run by run, matched by configuration.

Run ids follow the declarations *and the source* of the modules a run uses, so a refactor
of a task module gives its runs new ids although they are the same experiments. This script
matches runs by what they are: (task, task variant, method, hyperparameters, framework,
hardware, seed), and compares what they measured: status, steps, steps to target, oracle
calls by kind, every final metric value, and every trace point (step, oracle calls, metric
and probe values). Times are never compared (they are noise).

A store written by an older schema is migrated on a temporary copy first (``harness
compact`` does the same in place), so a store of the previous release compares with one of
this release.

Usage::

    python scripts/compare_stores.py BEFORE AFTER [--rtol 0] [--suite quick]

Prints one line per difference (at most 50) and a summary; exits 1 when a run differs beyond
``--rtol`` (relative, per value; 0: bit for bit) or a configuration is in one store only.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from harness import store as store_module

#: What a run is, whatever its id.
CONFIGURATION = ("task", "task_params", "method", "hyperparameters", "framework", "hardware", "seed")
#: What a run measured that must not change when only the code's form changes (no times).
OUTCOME = ("status", "steps", "steps_to_target", "oracle_calls")
#: Trace columns that are not measurements of the method's iterate.
_TRACE_SKIP = {"run_id", "time_s"}


@dataclass
class Comparison:
    """What :func:`compare` found."""

    matched: int = 0
    only_before: list[tuple[Any, ...]] = field(default_factory=list)
    only_after: list[tuple[Any, ...]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    max_relative: dict[str, float] = field(default_factory=dict)  # value name -> largest relative difference

    @property
    def identical(self) -> bool:
        return not (self.only_before or self.only_after or self.differences)


@contextmanager
def readable(store: Path) -> Iterator[Path]:
    """``store``, or a migrated temporary copy of it when it was written by an older schema."""
    try:
        store_module.read_runs(store, columns=["run_id"])
    except store_module.StoreSchemaError:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "store"
            shutil.copytree(store, copy, ignore=shutil.ignore_patterns("claims", ".compact.lock"))
            store_module.compact(copy)
            yield copy
        return
    yield store


def load(store: Path, *, suite: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The runs (newest attempts) and their traces, of ``suite`` only when given."""
    with readable(store) as path:
        runs = store_module.read_runs(path)
        if suite is not None:
            runs = runs.filter(pl.col("suite") == suite)
        traces = store_module.read_traces(path, runs["run_id"].to_list())
    return runs, traces


def _relative(a: float | None, b: float | None) -> float:
    """``|a - b| / max(|a|, |b|)``; 0 when both are equal (nulls and infinities included), inf when one is null."""
    if a is None or b is None:
        return 0.0 if a is b else math.inf
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def _numeric(row: Mapping[str, Any], names: list[str]) -> dict[str, float | None]:
    return {n: (None if row.get(n) is None else float(row[n])) for n in names}


def compare(before: tuple[pl.DataFrame, pl.DataFrame], after: tuple[pl.DataFrame, pl.DataFrame], *,
            rtol: float = 0.0) -> Comparison:
    """Match the runs of two stores by :data:`CONFIGURATION` and compare their outcomes and traces."""
    result = Comparison()
    (runs_a, traces_a), (runs_b, traces_b) = before, after
    by_a = {tuple(r[k] for k in CONFIGURATION): r for r in runs_a.iter_rows(named=True)}
    by_b = {tuple(r[k] for k in CONFIGURATION): r for r in runs_b.iter_rows(named=True)}
    result.only_before = sorted(set(by_a) - set(by_b), key=str)
    result.only_after = sorted(set(by_b) - set(by_a), key=str)
    points_a = traces_a.partition_by("run_id", as_dict=True) if traces_a.height else {}
    points_b = traces_b.partition_by("run_id", as_dict=True) if traces_b.height else {}

    def note(label: str, name: str, a: Any, b: Any) -> None:
        result.differences.append(f"{label}: {name} {a!r} -> {b!r}")

    for key in sorted(set(by_a) & set(by_b), key=str):
        a, b = by_a[key], by_b[key]
        result.matched += 1
        label = "/".join(str(part) for part in key)
        for name in OUTCOME:
            if a.get(name) != b.get(name):
                note(label, name, a.get(name), b.get(name))
        values = sorted({*_declared(a), *(c for c in a if c.startswith("calls_")), *(c for c in b if c.startswith("calls_"))})
        for name, (x, y) in _pairs(_numeric(a, values), _numeric(b, values)):
            gap = _relative(x, y)
            result.max_relative[name] = max(result.max_relative.get(name, 0.0), gap)
            if gap > rtol:
                note(label, name, x, y)
        trace_a = points_a.get((a["run_id"],), pl.DataFrame()).sort("step") if points_a else pl.DataFrame()
        trace_b = points_b.get((b["run_id"],), pl.DataFrame()).sort("step") if points_b else pl.DataFrame()
        if trace_a.height != trace_b.height:
            note(label, "trace points", trace_a.height, trace_b.height)
            continue
        columns = sorted((set(trace_a.columns) | set(trace_b.columns)) - _TRACE_SKIP)
        for pa, pb in zip(trace_a.iter_rows(named=True), trace_b.iter_rows(named=True)):
            for name, (x, y) in _pairs(_numeric(pa, columns), _numeric(pb, columns)):
                gap = _relative(x, y)
                result.max_relative[f"trace {name}"] = max(result.max_relative.get(f"trace {name}", 0.0), gap)
                if gap > rtol:
                    note(label, f"trace step {pa.get('step')} {name}", x, y)
    return result


def _declared(row: Mapping[str, Any]) -> list[str]:
    import json

    return list(json.loads(row.get("metrics") or "{}"))


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> Iterator[tuple[str, tuple[Any, Any]]]:
    for name in sorted(set(a) | set(b)):
        yield name, (a.get(name), b.get(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rtol", type=float, default=0.0, help="relative tolerance per value (0: bit for bit)")
    parser.add_argument("--suite", default=None, help="compare the runs of this suite only")
    args = parser.parse_args(argv)
    found = compare(load(args.before, suite=args.suite), load(args.after, suite=args.suite), rtol=args.rtol)
    for line in found.differences[:50]:
        print(line)
    for side, keys in (("only in before", found.only_before), ("only in after", found.only_after)):
        for key in keys[:20]:
            print(f"{side}: {'/'.join(map(str, key))}")
    worst = max(found.max_relative.values(), default=0.0)
    print(f"{found.matched} configurations matched, {len(found.only_before)} only before, {len(found.only_after)} "
          f"only after, {len(found.differences)} differences beyond rtol {args.rtol:g}; "
          f"largest relative difference {worst:.3g}")
    return 0 if found.identical else 1


if __name__ == "__main__":
    sys.exit(main())
