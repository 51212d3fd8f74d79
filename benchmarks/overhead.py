"""Start-up latency and per-step overhead of the harness (a benchmark script, not a test).

1. Latency: wall time from launching ``harness bench`` (a fresh process) to the first timed
   step of its first run, per framework and executor.
2. Per-step overhead: the harness's timed seconds per step of gradient descent (``gd``:
   torch.optim.SGD / optax.sgd) on ``logreg`` against a bare loop of the same steps on the
   same problem object, written as a user would (torch: zero_grad, backward, opt.step; jax:
   jitted grad and optax update), in one process.

Usage: ``python benchmarks/overhead.py [--steps 2000] [--repeats 3]``. Prints ratios; absolute
times on shared machines are noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def latency(framework: str, executor: str, repeats: int) -> list[float]:
    """Seconds from process launch to the first timed step, ``repeats`` times."""
    out = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            stamp = Path(tmp) / "stamp"
            env = {**os.environ, "HARNESS_STAMP": str(stamp)}
            cmd = [sys.executable, "-m", "harness.cli", "bench", "--catalog", str(HERE / "catalog"), "--task", "logreg",
                   "--method", "stamp-gd", "--framework", framework, "--seeds", "1", "--store", str(Path(tmp) / "s"),
                   "--executor", executor, "--suite", "stamp"]
            launched = time.time()
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
            out.append(float(stamp.read_text().split()[0]) - launched)
    return out


def per_step(framework: str, steps: int) -> tuple[float, float]:
    """(harness seconds per timed step, bare-loop seconds per step) for GD on logreg."""
    from harness.catalog import Catalog
    from harness.plan import RunSpec
    from harness.run import execute_run
    from harness.spec import Budget

    catalog = Catalog.load([HERE / "catalog"])
    run = RunSpec(suite="bench", task="logreg", task_params=catalog.tasks["logreg"].spec.resolve_parameters(),
                  method="gd", hyperparameters={"lr": 3.0}, framework=framework, hardware="cpu", seed=0,
                  budget=Budget(steps=steps, seconds=600))
    # Evaluate only at the end: evaluation is off the clock anyway, this just keeps the run short.
    task = catalog.tasks["logreg"].spec
    catalog.tasks["logreg"] = catalog.tasks["logreg"].__class__(
        spec=task.model_copy(update={"evaluation": task.evaluation.model_copy(update={"every": steps}), "target": None}),
        path=catalog.tasks["logreg"].path, document=catalog.tasks["logreg"].document)
    row = execute_run(run, catalog).row
    harness_step = row["timed_s"] / (row["steps"] - 1)

    from harness.backends import make_backend

    backend = make_backend(framework)
    problem = catalog.tasks["logreg"].resolve(task.implementations[framework])(backend=backend, **run.task_params)
    x = problem.init_params(0)
    if framework == "torch":
        import torch

        leaf = x.clone().requires_grad_(True)
        opt = torch.optim.SGD([leaf], lr=3.0)

        def bare_step(x):
            opt.zero_grad()
            problem.loss(leaf).backward()
            opt.step()
            return leaf
    else:
        import jax
        import optax

        tx = optax.sgd(3.0)
        state = tx.init(x)
        grad = jax.jit(jax.grad(problem.loss))
        apply = jax.jit(lambda x, s, g: (lambda u, s: (optax.apply_updates(x, u), s))(*tx.update(g, s, x)))

        def bare_step(x):
            nonlocal state
            x, state = apply(x, state, grad(x))
            return x.block_until_ready()
    x = bare_step(x)  # warm-up, like the harness's first step
    t0 = time.perf_counter()
    for _ in range(steps - 1):
        x = bare_step(x)
    bare = (time.perf_counter() - t0) / (steps - 1)
    return harness_step, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executors", nargs="+", default=["inline"])
    parser.add_argument("--no-latency", action="store_true", help="measure the per-step overhead only")
    args = parser.parse_args()
    if not args.no_latency:
        print("latency: `harness bench` launch -> first timed step (median of %d)" % args.repeats)
        for framework in ("torch", "jax"):
            for executor in args.executors:
                values = latency(framework, executor, args.repeats)
                print(f"  {framework:5s} {executor:7s} {statistics.median(values):6.2f} s   (all: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"per-step overhead: gd on logreg (n=1000, d=20), {args.steps} steps, one process, median of {args.repeats}")
    for framework in ("torch", "jax"):
        # Harness then bare loop, repeated: each ratio compares two measurements taken back to back.
        pairs = [per_step(framework, args.steps) for _ in range(args.repeats)]
        ratios = [h / b for h, b in pairs]
        harness_step, bare = statistics.median(h for h, _ in pairs), statistics.median(b for _, b in pairs)
        print(f"  {framework:5s} harness {1e6 * harness_step:8.1f} us/step   bare loop {1e6 * bare:8.1f} us/step   "
              f"ratio {statistics.median(ratios):5.2f} (all: {', '.join(f'{r:.2f}' for r in ratios)})   "
              f"overhead {1e6 * (harness_step - bare):+7.1f} us/step")


if __name__ == "__main__":
    main()
