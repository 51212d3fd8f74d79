"""nesterov, adamw, lion: the library optimizers agree across frameworks and with numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from _content import load_method, load_task, make_method, make_oracle, make_problem, rel_diff, run_method  # noqa: E402


METHODS = ("nesterov", "adamw", "lion")


def numpy_trace(method_id: str, hp: dict, problem, steps: int) -> list[np.ndarray]:
    """The textbook recursions, in numpy on the numpy gradient of logreg."""
    module = sys.modules[type(problem).__module__]
    x = np.asarray(problem.init_params(0), dtype=np.float64).copy()
    m, v, out = np.zeros_like(x), np.zeros_like(x), [x.copy()]
    for t in range(1, steps + 1):
        g = module.gradient(x, problem.X_np, problem.y_np, problem.l2)
        if method_id == "nesterov":
            m = hp["momentum"] * m + g
            x = x - hp["lr"] * (g + hp["momentum"] * m)
        elif method_id == "adamw":
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
            x = x - hp["lr"] * ((m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8) + hp["weight_decay"] * x)
        else:
            x = x - hp["lr"] * (np.sign(hp["b1"] * m + (1 - hp["b1"]) * g) + hp["weight_decay"] * x)
            m = hp["b2"] * m + (1 - hp["b2"]) * g
        out.append(x.copy())
    return out


@pytest.mark.parametrize("method_id", METHODS)
def test_declaration(method_id: str) -> None:
    method, _ = load_method("baselines", method_id)
    assert method.paper.startswith("baseline") and set(method.implementations) == {"torch", "jax"}


@pytest.mark.parametrize("method_id", METHODS)
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_matches_the_numpy_recursion(method_id: str, framework: str) -> None:
    overrides = {"weight_decay": 0.01} if method_id != "nesterov" else {}
    method, _ = load_method("baselines", method_id)
    hp = method.resolve_hyperparameters(overrides)
    problem = make_problem("convex", "logreg", framework)
    oracle = make_oracle("convex", "logreg", problem, framework)
    run = run_method(make_method("baselines", method_id, framework, **overrides), problem, oracle, framework, 25)
    reference = numpy_trace(method_id, hp, problem, 25)
    for step, (a, b) in enumerate(zip(run["iterates"], reference)):
        assert rel_diff(a, b) < 1e-10, f"{method_id}/{framework} differs at step {step}"


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_nesterov_reaches_the_logreg_target(framework: str) -> None:
    task, _ = load_task("convex", "logreg")
    problem = make_problem("convex", "logreg", framework)
    oracle = make_oracle("convex", "logreg", problem, framework)
    run = run_method(make_method("baselines", "nesterov", framework), problem, oracle, framework, task.budget.steps,
                     stop_below=task.target.value)
    assert run["reached"] is not None
