"""The divergence rule: above the initial objective at K consecutive evaluation points is ``diverged``.

A run whose objective is non-finite or exceeds ``DIVERGENCE_FACTOR`` x the initial one is
``diverged`` at once; one that stays above its initial objective at ``evaluation.divergence_patience``
(K, default 5) consecutive evaluation points after the first (a cycle above the start, a slow
blow-up) is ``diverged`` too; a shorter excursion above the start (a spike, a first step) is not.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _runs import run_single
from typer.testing import CliRunner

from harness import catalog as catalog_module
from harness.catalog import Catalog, builtin_root
from harness.cli import app
from harness.run import DIVERGENCE_FACTOR
from harness.spec import Budget, Evaluation

HERE = Path(__file__).parent
K = Evaluation().divergence_patience
MESSAGE = "consecutive evaluations (steps {first}..{last}): oscillating or diverging"


def _streaks_above(trace: list[dict], initial: float) -> int:
    """The longest run of consecutive points after the first with the objective above ``initial``."""
    longest = current = 0
    for point in trace[1:]:
        current = current + 1 if point["objective"] > initial else 0
        longest = max(longest, current)
    return longest


def _old_rule_stops(trace: list[dict]) -> bool:
    """Whether the rule before this one (non-finite, or above 1e6 x the initial) stops at some point."""
    initial = trace[0]["objective"]
    return any(not p["objective"] < float("inf") or p["objective"] > DIVERGENCE_FACTOR * max(abs(initial), 1e-12)
               for p in trace)


def _builtin(*files: str) -> list[Path]:
    return [builtin_root() / f for f in files] + sorted((builtin_root() / "hardware").glob("*.yaml"))


def _patient_robust_logreg(root: Path, patience: int) -> Path:
    """A copy of the robust-logreg declaration with ``divergence_patience: patience``."""
    (root / "tasks" / "convex").mkdir(parents=True)
    shutil.copy(builtin_root() / "tasks" / "convex" / "robust_logreg.py", root / "tasks" / "convex")
    text = (builtin_root() / "tasks" / "convex" / "robust-logreg.yaml").read_text()
    assert "evaluation:\n  every: 5\n" in text
    path = root / "tasks" / "convex" / "robust-logreg.yaml"
    patient = f"evaluation:\n  every: 5\n  divergence_patience: {patience}\n"
    path.write_text(text.replace("evaluation:\n  every: 5\n", patient))
    return path


SHUFFLED = {"labels": "shuffled", "dataset": "breast_cancer"}


def test_robust_logreg_shuffled_gd_lr3_oscillates_and_is_diverged(tmp_path):
    """gd at lr 3 on shuffled labels falls into a 2-cycle above its start: diverged, not completed."""
    files = _builtin("tasks/convex/robust-logreg.yaml", "methods/baselines/gd.yaml")
    catalog = Catalog.load(files=files, builtin=False)
    result = run_single(catalog, "robust-logreg", "gd", "torch", params=SHUFFLED, hyperparameters={"lr": 3.0})
    row, trace = result.row, result.trace
    initial = trace[0]["objective"]
    assert row["status"] == "diverged", row
    first, last = trace[-K]["step"], trace[-1]["step"]
    assert row["error"] == f"objective above its initial {initial:.3g} at {K} {MESSAGE.format(first=first, last=last)}"
    # The rule's input: the last K points are above the initial objective (the first before them is not).
    assert all(p["objective"] > initial for p in trace[-K:]) and len(trace) == K + 1
    assert not _old_rule_stops(trace)  # finite, and far below 1e6 x the initial: the old rule let it run

    # With a patience longer than the run, the same run goes to its step budget: what it was before,
    # `completed`, far from f*, cycling above its start to the end.
    patient = Catalog.load(files=[_patient_robust_logreg(tmp_path, 1000),
                                  *_builtin("methods/baselines/gd.yaml")], builtin=False)
    full = run_single(patient, "robust-logreg", "gd", "torch", params=SHUFFLED, hyperparameters={"lr": 3.0})
    assert full.row["status"] == "completed" and full.row["steps"] == 300 and full.row["suboptimality"] > 1.0
    assert [p["objective"] for p in full.trace[:K + 1]] == pytest.approx([p["objective"] for p in trace])
    assert not _old_rule_stops(full.trace) and _streaks_above(full.trace, initial) == len(full.trace) - 1
    tail = [p["objective"] for p in full.trace[-4:]]
    assert tail[0] == pytest.approx(tail[2]) and tail[1] == pytest.approx(tail[3]) and min(tail) > 3 * initial


CLIMB_PY = '''\
"""Gradient ascent for its first ``climb`` steps, then gradient descent."""


class ClimbThenDescend:
    def __init__(self, *, lr: float, climb_lr: float, climb: int) -> None:
        self.lr, self.climb_lr, self.climb = lr, climb_lr, climb

    def init(self, params, oracle):
        return 0

    def step(self, params, state, oracle):
        rate = -self.climb_lr if state < self.climb else self.lr
        return params - rate * oracle.grad(params), state + 1
'''

CLIMB_YAML = """\
id: climb-gd
name: Gradient ascent, then descent
family: toy
paper: "none: rises above its start for a while, then converges (tests/test_divergence_rule.py)"
requires: [grad]
hyperparameters: {lr: 0.1, climb_lr: 0.01, climb: 0}
implementations:
  torch: {entry: "climb.py:ClimbThenDescend"}
  jax: {entry: "climb.py:ClimbThenDescend"}
"""


@pytest.fixture(scope="module")
def climb_catalog(tmp_path_factory, load_test_catalog):
    """The toy catalog, the climbing method, and ``quadratic-k2``: the quadratic with ``divergence_patience: 2``."""
    root = tmp_path_factory.mktemp("climb")
    (root / "methods" / "toy").mkdir(parents=True)
    (root / "methods" / "toy" / "climb.py").write_text(CLIMB_PY)
    (root / "methods" / "toy" / "climb-gd.yaml").write_text(CLIMB_YAML)
    (root / "tasks" / "toy").mkdir(parents=True)
    shutil.copy(HERE / "catalog" / "tasks" / "toy" / "quadratic.py", root / "tasks" / "toy")
    text = (HERE / "catalog" / "tasks" / "toy" / "quadratic.yaml").read_text()
    assert "id: quadratic\n" in text and "evaluation: {every: 5}\n" in text
    text = text.replace("id: quadratic\n", "id: quadratic-k2\n").replace(
        "evaluation: {every: 5}\n", "evaluation: {every: 5, divergence_patience: 2}\n")
    (root / "tasks" / "toy" / "quadratic-k2.yaml").write_text(text)
    return load_test_catalog(root)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_rise_above_the_start_for_fewer_than_k_points_then_a_descent_completes(climb_catalog, framework):
    climb = 5 * (K - 2)  # above the start at the points of steps 5..climb (K - 2 of them), and maybe climb + 5
    result = run_single(climb_catalog, "quadratic", "climb-gd", framework, hyperparameters={"climb": climb},
                        budget=Budget(steps=60))
    row, trace = result.row, result.trace
    initial = trace[0]["objective"]
    assert row["status"] == "completed" and row["error"] is None and row["steps"] == 60
    assert 1 <= _streaks_above(trace, initial) < K
    assert all(p["objective"] > initial for p in trace[1:K - 1])  # it did rise, for a while
    assert trace[-1]["objective"] < initial and row["suboptimality"] < 1e-2  # then converged


def test_a_rise_for_k_points_is_diverged_where_the_rise_is_counted(climb_catalog):
    result = run_single(climb_catalog, "quadratic", "climb-gd", "torch", hyperparameters={"climb": 5 * K},
                        budget=Budget(steps=60))
    row, trace = result.row, result.trace
    initial = trace[0]["objective"]
    assert row["status"] == "diverged" and row["steps"] == 5 * K
    assert row["error"] == f"objective above its initial {initial:.3g} at {K} {MESSAGE.format(first=5, last=5 * K)}"
    assert not _old_rule_stops(trace)


def test_the_declared_patience_is_honoured(climb_catalog):
    """quadratic-k2 declares K = 2: the rise of 2 points that the default forgives is diverged there."""
    hyperparameters = {"climb": 10}  # above the start at steps 5 and 10
    default = run_single(climb_catalog, "quadratic", "climb-gd", "torch", hyperparameters=hyperparameters,
                         budget=Budget(steps=60)).row
    assert climb_catalog.tasks["quadratic-k2"].spec.evaluation.divergence_patience == 2
    impatient = run_single(climb_catalog, "quadratic-k2", "climb-gd", "torch", hyperparameters=hyperparameters,
                           budget=Budget(steps=60)).row
    assert default["status"] == "completed"
    assert impatient["status"] == "diverged" and impatient["steps"] == 10
    assert impatient["error"].endswith(f"at 2 {MESSAGE.format(first=5, last=10)}")


TASK = """\
id: t
name: T
family: toy
paper: p
implementations: {torch: "t.py:T"}
provides: [value, grad]
metrics:
  - {id: objective, unit: "1", lower_is_better: true}
budget: {steps: 10, seconds: 60}
"""


@pytest.fixture
def cli(tmp_path_factory, monkeypatch):
    """``harness validate`` over a small stand-in for the built-in root (tests/test_declarations.py's)."""
    root = tmp_path_factory.mktemp("builtin")
    for name in ("tasks", "methods"):
        shutil.copytree(HERE / "catalog" / name, root / name)
    shutil.copytree(builtin_root() / "hardware", root / "hardware")
    monkeypatch.setattr(catalog_module, "builtin_root", lambda: root)
    return CliRunner()


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "true"])
def test_a_patience_below_one_or_not_an_integer_is_rejected_in_one_located_line(cli, tmp_path, monkeypatch, value):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text(TASK + f"evaluation: {{every: 5, divergence_patience: {value}}}\n")
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["validate", "."])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[1] == "1 error(s) in the declarations", result.stderr
    assert lines[0].startswith("tasks/t.yaml:10:"), lines[0]
    assert ": evaluation.divergence_patience: " in lines[0], lines[0]
    if value in ("0", "-3"):
        assert "greater than or equal to 1" in lines[0], lines[0]


def test_the_patience_defaults_to_5_and_one_is_allowed():
    assert Evaluation().divergence_patience == 5
    assert Evaluation(every=5, divergence_patience=1).divergence_patience == 1
    assert Evaluation.model_fields["divergence_patience"].description
