"""jax compilation reuse: one-step run rate against torch, compile events, cold-process cache hits.

A benchmark script, not a test. Each configuration runs in its own fresh process, the
configurations interleaved (``off, disk, reuse, off, ...``) so that machine noise hits all:

- ``off``: ``HARNESS_JAX_CACHE_DIR=off`` and no program kept across runs
  (``harness.backends.jax.PROGRAMS_KEPT = 0``): jax compiles every executable of every run,
  the "before";
- ``disk``: the persistent compilation cache in a temporary folder (empty at the first round
  and kept across rounds, so later rounds are cold processes on a warm cache), no program kept;
- ``reuse``: the cache, and compiled programs kept across runs of one process (the default).

In each process: one warm-up run per framework, then ``--seeds`` one-step runs of built-in
``logreg`` x ``gd`` on the inline path (:func:`harness.run.execute_run`) per framework.
Reported: jax runs/s over torch runs/s (the ratio, per configuration), jax compile events
and persistent-cache hits per run, and the first (cold-process) jax run's seconds.

Usage: ``python benchmarks/jax_compile.py [--seeds 30] [--rounds 2]``. Importing this module
(as asv does when it collects ``benchmarks/``) runs nothing and defines no benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

__all__: list[str] = []

_CHILD = r"""
import json, sys, time
seeds, keep = int(sys.argv[1]), sys.argv[2] == "keep"
import harness.backends.jax as hj
if not keep:
    hj.PROGRAMS_KEPT = 0
import jax
from harness.catalog import Catalog
from harness.plan import make_plan
from harness.run import execute_run
from harness.spec import Budget, SuiteEntry, SuiteSpec
hits = {"n": 0}
jax.monitoring.register_event_listener(lambda e, **_: hits.__setitem__("n", hits["n"] + (e == "/jax/compilation_cache/cache_hits")))
catalog = Catalog.load()
def runs(framework, n, first):
    entry = SuiteEntry(tasks=("logreg",), methods=("gd",), grid={}, hyperparameters={}, budget=Budget(steps=1))
    suite = SuiteSpec(id="b", seeds=tuple(range(first, first + n)), frameworks=(framework,), hardware=("cpu",), entries=(entry,))
    return make_plan(catalog, suite=suite).runs
out = {}
t = time.perf_counter(); execute_run(runs("jax", 1, 10**6)[0], catalog); out["jax_first_s"] = time.perf_counter() - t
execute_run(runs("torch", 1, 10**6)[0], catalog)
for fw in ("torch", "jax"):
    plan = runs(fw, seeds, 0)
    c0, h0 = hj.compile_counter()[0], hits["n"]
    t = time.perf_counter()
    for r in plan:
        execute_run(r, catalog)
    out[fw + "_rate"] = seeds / (time.perf_counter() - t)
    if fw == "jax":
        out["compiles_per_run"] = (hj.compile_counter()[0] - c0) / seeds
        out["hits_per_run"] = (hits["n"] - h0) / seeds
print("JSON" + json.dumps(out))
"""


CONFIGURATIONS = {"off": ("off", False), "disk": ("cache", False), "reuse": ("cache", True)}


def measure_round(cache: str, seeds: int, *, keep: bool) -> dict:
    """One fresh process with ``HARNESS_JAX_CACHE_DIR=cache``, programs kept or not: its rates, compiles, first run."""
    env = dict(os.environ, HARNESS_JAX_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(seeds), "keep" if keep else "none"], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("JSON"))[4:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {name: [] for name in CONFIGURATIONS}
    with tempfile.TemporaryDirectory() as folder:
        cache = os.path.join(folder, "jax")
        started = time.perf_counter()
        for _ in range(args.rounds):
            for name, (where, keep) in CONFIGURATIONS.items():
                rows[name].append(measure_round("off" if where == "off" else cache, args.seeds, keep=keep))
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in rows.items()}
    report: dict[str, float] = {}
    for name in CONFIGURATIONS:
        report[f"jax/torch rate, {name}"] = med[name]["jax_rate"] / med[name]["torch_rate"]
    report["jax rate reuse/off"] = med["reuse"]["jax_rate"] / med["off"]["jax_rate"]
    for name in CONFIGURATIONS:
        report[f"compile events per jax run, {name}"] = med[name]["compiles_per_run"]
    report["persistent-cache hits per jax run, disk"] = med["disk"]["hits_per_run"]
    if args.rounds > 1:  # later rounds are cold processes on a warm cache
        warm_first = statistics.median(r["jax_first_s"] for r in rows["disk"][1:])
        report["cold-process first jax run, warm cache / off"] = warm_first / med["off"]["jax_first_s"]
    report |= {"rounds": args.rounds, "seeds": args.seeds, "wall_s": time.perf_counter() - started}
    print(json.dumps({"report": report, "rounds": rows}, indent=2))


if __name__ == "__main__":
    main()
