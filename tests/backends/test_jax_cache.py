"""jax's persistent compilation cache: traces are bit-identical with and without it, hits are counted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

_SCRIPT = r"""
import json, sys
from harness.catalog import Catalog
from harness.spec import Budget
sys.path.insert(0, "tests")
from _runs import run_single
import harness.backends.jax as hj
catalog = Catalog.load()
out = {"cache_dir": hj.CACHE_DIR, "runs": []}
for method in ("gd", "adam"):
    for seed in (0, 1):
        r = run_single(catalog, "logreg", method, "jax", budget=Budget(steps=5), seed=seed)
        trace = [{k: (v.hex() if isinstance(v, float) else v) for k, v in p.items() if not k.endswith("_s")}
                 for p in r.trace]
        out["runs"].append({"method": method, "seed": seed, "trace": trace,
                            "clock_compiles": r.row["clock_compiles"], "status": r.row["status"]})
print("JSON" + json.dumps(out, default=str))
"""


def _runs(cache: str, tmp_path: Path) -> dict:
    env = dict(os.environ, HARNESS_JAX_CACHE_DIR=cache, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("JSON"))
    return json.loads(line[4:])


def _timeless(run: dict) -> list:
    return [{k: v for k, v in p.items() if not any(w in k for w in ("time", "wall", "clock", "memory"))}
            for p in run["trace"]]


def test_traces_bit_identical_with_and_without_cache(tmp_path):
    cache = tmp_path / "jaxcache"
    off = _runs("off", tmp_path)
    cold = _runs(str(cache), tmp_path)
    warm = _runs(str(cache), tmp_path)  # a fresh process: every executable from disk
    assert off["cache_dir"] is None and cold["cache_dir"] == warm["cache_dir"] == str(cache)
    assert any(cache.iterdir()), "the cache wrote nothing"
    assert not (tmp_path / "xdg").exists()
    for a, b, c in zip(off["runs"], cold["runs"], warm["runs"], strict=True):
        assert a["trace"] and _timeless(a) == _timeless(b) == _timeless(c), (a["method"], a["seed"])
        assert a["status"] == b["status"] == c["status"]
        assert a["clock_compiles"] == b["clock_compiles"] == c["clock_compiles"] == 0


def test_cache_hit_is_counted_as_a_compile(tmp_path, monkeypatch):
    """A persistent-cache hit still emits jax's backend-compile event: it cannot hide an on-clock compile."""
    code = ("import harness.backends.jax as hj, jax, jax.numpy as jnp\n"
            "n0 = hj.compile_counter()[0]\n"
            "jax.jit(lambda x: x * 3.0 + 1.0)(jnp.ones(7)).block_until_ready()\n"
            "print('N', hj.compile_counter()[0] - n0)\n")
    env = dict(os.environ, HARNESS_JAX_CACHE_DIR=str(tmp_path / "c"))
    counts = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        counts.append(int(done.stdout.split("N")[-1]))
    assert counts[0] >= 1 and counts[1] == counts[0]

