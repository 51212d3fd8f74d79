"""Tuning protocols: hyperparameter grids, studies of Optuna trials run as ordinary runs, selection, reruns,
determinism over worker counts, resume after SIGINT, and the tuned-against-default report."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from harness.catalog import Catalog
from harness.plan import make_plan
from harness.spec import Budget, SearchSpace, SuiteEntry, SuiteSpec, Tuning
from harness.tuning import make_studies, run_studies, tuned_against_default


@pytest.fixture(scope="module")
def catalog():
    return Catalog.load()


def _suite(entry: SuiteEntry, tuning: Tuning | None = None, seeds=(0,)) -> SuiteSpec:
    return SuiteSpec(id="t", seeds=seeds, frameworks=("torch",), entries=(entry,), tuning=tuning)


def test_a_hyperparameter_grid_expands_to_one_configuration_per_value(catalog) -> None:
    entry = SuiteEntry(tasks=("logreg",), methods=("gd", "heavy-ball"),
                       hyperparameters={"gd": {"lr": (0.5, 1.0, 2.0)}, "heavy-ball": {"lr": (0.1, 0.2), "momentum": (0.5, 0.9)}})
    runs = make_plan(catalog, suite=_suite(entry, seeds=(0, 1))).runs
    gd = sorted((r.hyperparameters["lr"], r.seed) for r in runs if r.method == "gd")
    assert gd == [(0.5, 0), (0.5, 1), (1.0, 0), (1.0, 1), (2.0, 0), (2.0, 1)]
    heavy = {(r.hyperparameters["lr"], r.hyperparameters["momentum"]) for r in runs if r.method == "heavy-ball"}
    assert heavy == {(0.1, 0.5), (0.1, 0.9), (0.2, 0.5), (0.2, 0.9)}  # the product over names
    assert len({r.run_id for r in runs}) == len(runs) == 6 + 8


def test_search_spaces_are_data_and_leave_run_ids_alone(catalog) -> None:
    gd = catalog.methods["gd"].spec
    assert gd.tuned_space == {"lr": SearchSpace(kind="log_uniform", low=0.01, high=100.0)}
    assert "search" not in gd.model_dump()  # a space restricts tuning, it never shapes a run
    adam = catalog.methods["adam"].spec
    assert set(adam.search) == {"lr", "b1", "b2"} and set(adam.tuned_space) == {"lr", "b1"}  # b2 is fixed


def test_studies_are_one_per_tunable_configuration(catalog) -> None:
    entry = SuiteEntry(tasks=("logreg",), methods=("gd", "lbfgs"), grid={"l2": (5e-4, 1e-3)})
    protocol = Tuning(trials=4, metric="steps_to_target", split="train", rerun_seeds=3)
    plan = make_plan(catalog, suite=_suite(entry, protocol, seeds=(0, 1)))
    studies = make_studies(plan.runs, catalog, protocol)
    assert [(s.base.method, s.base.task_params["l2"]) for s in studies] == [("gd", 5e-4), ("gd", 1e-3)]  # lbfgs: no space
    trial = studies[0].trial_run({"lr": 0.7})
    assert trial.seed == protocol.trial_seed and trial.hyperparameters == {"lr": 0.7}
    assert trial.model_dump(exclude={"seed", "hyperparameters"}) == studies[0].base.model_dump(exclude={"seed", "hyperparameters"})
    assert [studies[0].rerun({"lr": 0.7}, s).seed for s in (0, 2)] == [0, 2]
    again = make_studies(plan.runs, catalog, protocol)
    assert [s.id for s in again] == [s.id for s in studies] and studies[0].id != studies[1].id


# -- the sampling and selection, on rows made here (no run) ----------------------------------------


def _row(run, value, *, status="completed", steps=None):
    return {"run_id": run.run_id, "status": status, "steps_to_target": steps, "target_metric": "suboptimality",
            "metrics": json.dumps({"suboptimality": {"unit": "1", "lower_is_better": True}}),
            "suboptimality": value, "objective": value, "timed_s": 0.5, "wall_s": 1.0}


def _executor(score, calls):
    def execute(runs):
        calls.append([r.run_id for r in runs])
        return {r.run_id: score(r) for r in runs}
    return execute


def _study(catalog, protocol, method="gd"):
    entry = SuiteEntry(tasks=("logreg",), methods=(method,), budget=Budget(steps=40, seconds=60))
    plan = make_plan(catalog, suite=_suite(entry, protocol))
    return make_studies(plan.runs, catalog, protocol)


def test_qmc_draws_spread_sobol_points_and_repeats_them(catalog) -> None:
    protocol = Tuning(trials=16, sampler="qmc", metric="objective", split="train", rerun_seeds=2)

    def score(run):
        return _row(run, (math.log10(run.hyperparameters["lr"]) - 0.5) ** 2)

    first, calls = run_studies(_study(catalog, protocol), _executor(score, calls := [])), calls
    lrs = np.log10([t.params["lr"] for t in first[0].trials])
    assert len(set(lrs)) == 16 and lrs.min() >= -2 and lrs.max() <= 2
    # Low discrepancy: every eighth of [-2, 2] in log lr holds one or two of the 16 points.
    assert np.histogram(lrs, bins=8, range=(-2, 2))[0].max() <= 3
    assert len(calls) == 2 and len(calls[0]) == 16 and len(calls[1]) == 2  # all trials at once, then the reruns
    best = first[0].best
    assert best.value == min(t.value for t in first[0].trials) and abs(np.log10(best.params["lr"]) - 0.5) < 0.25
    second = run_studies(_study(catalog, protocol), _executor(score, []))
    assert [t.params for t in second[0].trials] == [t.params for t in first[0].trials]
    assert [r.seed for r in first[0].reruns] == [0, 1] and first[0].reruns[0].hyperparameters == best.params


def test_tpe_asks_in_rounds_of_its_batch_and_repeats_itself(catalog) -> None:
    protocol = Tuning(trials=12, sampler="tpe", metric="objective", split="train", batch=4, seed=3)

    def score(run):
        return _row(run, (math.log10(run.hyperparameters["lr"]) - 1.0) ** 2)

    calls: list = []
    first = run_studies(_study(catalog, protocol), _executor(score, calls))
    assert [len(c) for c in calls] == [4, 4, 4, 5]
    second = run_studies(_study(catalog, protocol), _executor(score, []))
    assert [t.params for t in second[0].trials] == [t.params for t in first[0].trials]


def test_grid_covers_its_points_and_failed_trials_are_never_selected(catalog) -> None:
    protocol = Tuning(trials=50, sampler="grid", metric="objective", split="train")

    def score(run):
        lr = run.hyperparameters["lr"]
        return _row(run, None, status="diverged") if lr > 5 else _row(run, -lr)  # the largest stable lr is best

    result = run_studies(_study(catalog, protocol), _executor(score, []))[0]
    lrs = sorted(t.params["lr"] for t in result.trials)
    np.testing.assert_allclose(lrs, np.geomspace(0.01, 100, 50), rtol=1e-12)  # one axis: 50 log-spaced points
    assert result.best.params["lr"] == max(lr for lr in lrs if lr <= 5)
    assert sum(t.value is None for t in result.trials) == sum(lr > 5 for lr in lrs) > 0


def test_steps_to_target_ranks_reached_trials_first_then_the_closest(catalog) -> None:
    protocol = Tuning(trials=8, metric="steps_to_target", split="train", rerun_seeds=1)

    def score(run):
        lr = run.hyperparameters["lr"]
        if lr < 1:
            return _row(run, 1e-3 / lr)  # never reached: closer with a larger lr
        return _row(run, 1e-9, status="reached_target", steps=int(100 / lr) + 1) if lr < 20 else _row(
            run, None, status="diverged")

    result = run_studies(_study(catalog, protocol), _executor(score, []))[0]
    reached = [t for t in result.trials if t.status == "reached_target"]
    assert reached and result.best is min(reached, key=lambda t: (t.value, t.number))
    unreached = sorted((t for t in result.trials if t.status == "completed"), key=lambda t: t.tiebreak)
    assert all(t.value == 41.0 for t in unreached)  # budget + 1: after every trial that reached the target
    assert [t.params["lr"] for t in unreached] == sorted((t.params["lr"] for t in unreached), reverse=True)


def test_the_summary_puts_the_reruns_beside_the_defaults() -> None:
    record = {"suite": "s", "task": "logreg", "method": "gd", "framework": "torch", "hardware": "cpu",
              "task_params": {"n": 1}, "default_hyperparameters": {"lr": 3.0}, "protocol": {"trial_seed": 1000,
                                                                                          "sampler": "qmc"},
              "trials": [{"value": 3.0}, {"value": None}], "selected_params": {"lr": 9.0}, "tuning_s": 2.5,
              "reruns": ["r0", "r1"]}

    def row(run_id, seed, lr, status, value, steps=None):
        return {"run_id": run_id, "suite": "s", "task": "logreg", "method": "gd", "framework": "torch",
                "hardware": "cpu", "task_params": '{"n":1}', "hyperparameters": json.dumps({"lr": lr}), "seed": seed,
                "status": status, "target_metric": "suboptimality", "suboptimality": value, "steps_to_target": steps}

    rows = [row("r0", 0, 9.0, "reached_target", 1e-9, 20), row("r1", 1, 9.0, "reached_target", 3e-9, 24),
            row("d0", 0, 3.0, "completed", 1e-5), row("d1", 1, 3.0, "completed", 3e-5),
            row("t", 1000, 3.0, "completed", 1e-5)]  # a trial at the default lr: not a default run
    (summary,) = tuned_against_default([record], rows)
    assert summary["trials"] == 2 and summary["failed_trials"] == 1 and summary["tuning_s"] == 2.5
    assert (summary["tuned_reached"], summary["tuned_runs"], summary["tuned_steps_to_target"]) == (2, 2, 22.0)
    assert (summary["default_reached"], summary["default_runs"]) == (0, 2)
    assert summary["tuned_target"] == pytest.approx(2e-9) and summary["default_target"] == pytest.approx(2e-5)


# -- the protocol end to end: harness bench --suite tuning -----------------------------------------


def _bench(store, *args):
    return subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--suite", "tuning", "--store", str(store),
                           *args], capture_output=True, text=True, timeout=600)


def _study_file(store):
    (path,) = (store / "studies").glob("*.json")
    return json.loads(path.read_text())


def _curvature_at_the_optimum() -> float:
    """lambda_max of logreg's Hessian at its minimizer, by numpy and scipy (independent of the harness's oracle)."""
    import scipy.optimize
    import scipy.special

    from harness.datasets import binary_classification

    X, y = binary_classification("synthetic", 1000, 20, 0)
    l2 = 5e-4

    def f(w):
        return np.mean(np.logaddexp(0, -y * (X @ w))) + l2 * w @ w

    def g(w):
        return X.T @ (-y * scipy.special.expit(-y * (X @ w))) / len(y) + 2 * l2 * w

    w = scipy.optimize.minimize(f, np.zeros(20), jac=g, method="BFGS", options={"gtol": 1e-12}).x
    s = scipy.special.expit(y * (X @ w))
    return float(np.linalg.eigvalsh((X.T * (s * (1 - s))) @ X / len(y) + 2 * l2 * np.eye(20))[-1])


def test_tuning_gd_on_logreg_selects_a_stable_rate_that_reaches_the_target_and_repeats(tmp_path) -> None:
    """16 quasirandom trials: the selected lr is stable (below 2 / lambda_max at x*) and reaches 1e-8 where lr = 3
    does not; -j 1 and an interrupted, resumed -j 2 bench select the same trial from the same trials."""
    from harness.store import read_runs

    whole = tmp_path / "whole"
    out = _bench(whole, "--jobs", "1")
    assert out.returncode == 0, out.stderr + out.stdout
    study = _study_file(whole)
    assert len(study["trials"]) == 16 and study["protocol"]["sampler"] == "qmc"
    lr = study["selected_params"]["lr"]
    assert 2.0 / _curvature_at_the_optimum() > lr > 3.0  # inside the stable range, above the default
    runs = read_runs(whole)
    reruns = runs.filter(runs["run_id"].is_in(study["reruns"]))
    assert reruns.height == 5 and set(reruns["status"]) == {"reached_target"} and set(reruns["seed"]) == set(range(5))
    defaults = runs.filter((runs["seed"] < 5) & ~runs["run_id"].is_in(study["reruns"]))
    assert defaults.height == 5 and set(defaults["status"]) == {"completed"}  # lr = 3: short of 1e-8 in 40 steps
    assert set(runs.filter(runs["seed"] == 1000)["run_id"]) == {t["run_id"] for t in study["trials"]}
    assert "Tuning: the selected settings against the defaults" in out.stdout
    report = subprocess.run([sys.executable, "-m", "harness.cli", "report", "--store", str(whole)],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and "lr=" in report.stdout and "5/5" in report.stdout and "0/5" in report.stdout
    assert "2 configurations over 1 problems" in report.stdout  # the trials are the search, not results

    # -j 2, interrupted inside the study, then resumed: only the remaining trials run.
    resumed = tmp_path / "resumed"
    args = [sys.executable, "-m", "harness.cli", "bench", "--suite", "tuning", "--store", str(resumed), "--jobs", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(list((resumed / "runs").glob("*.parquet"))) < 5 + 3:  # the defaults, then some trials
        assert proc.poll() is None and time.monotonic() < deadline, "the bench ended before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    kept = {p.stem for p in (resumed / "runs").glob("*.parquet")}
    assert not (resumed / "studies").exists() or not list((resumed / "studies").glob("*.json"))
    again = _bench(resumed, "--jobs", "2")
    assert again.returncode == 0, again.stderr + again.stdout
    line = next(text for text in again.stdout.splitlines() if text.startswith("tuning tuning: 16 runs"))
    stored = int(line.split(", ")[1].split()[0])
    assert 3 <= stored < 16 and line.endswith(f"{16 - stored} to run"), line
    final = read_runs(resumed)
    assert set(final["attempt"]) == {0} and kept <= set(final["run_id"])  # nothing was run twice
    other = _study_file(resumed)
    for key in ("study", "selected", "selected_params", "reruns"):
        assert other[key] == study[key], key
    assert [(t["run_id"], t["params"], t["value"]) for t in other["trials"]] == [
        (t["run_id"], t["params"], t["value"]) for t in study["trials"]]


def test_selection_on_validation_is_reported_on_test(tmp_path) -> None:
    """With a held-out split, the protocol selects on validation_loss and the result is the reruns' test_loss."""
    from harness.store import read_runs

    (tmp_path / "cat" / "suites").mkdir(parents=True)
    (tmp_path / "cat" / "suites" / "held-out.yaml").write_text(
        "id: held-out\nseeds: [0, 1]\nentries:\n  - tasks: [logreg]\n    methods: [gd]\n    grid: {holdout: [0.4]}\n"
        "    budget: {steps: 40, seconds: 60}\n"
        "tuning: {trials: 8, metric: loss, split: validation, rerun_seeds: 2}\n")
    store = tmp_path / "store"
    out = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--suite", "held-out", "--catalog",
                          str(tmp_path / "cat"), "--store", str(store), "--executor", "inline"],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "240"})
    assert out.returncode == 0, out.stderr + out.stdout
    study = _study_file(store)
    assert study["column"] == "validation_loss"
    runs = {row["run_id"]: row for row in read_runs(store).to_dicts()}
    finished = [t for t in study["trials"] if t["value"] is not None]
    assert all(t["value"] == runs[t["run_id"]]["validation_loss"] for t in finished)
    assert study["selected"] == min(finished, key=lambda t: t["value"])["number"]
    (summary,) = tuned_against_default([study], list(runs.values()))
    reruns = [runs[i] for i in study["reruns"]]
    assert summary["test_metric"] == "test_loss"
    assert summary["tuned_test"] == pytest.approx(float(np.median([r["test_loss"] for r in reruns])))
    assert "tuned test_loss" in out.stdout


def test_a_protocol_on_a_split_the_task_lacks_is_refused_at_its_line(tmp_path) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "bad.yaml").write_text(
        "id: bad\nentries:\n  - tasks: [quadratic-well]\n    methods: [gd]\ntuning: {trials: 4, metric: loss}\n")
    out = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(tmp_path / "suites" / "bad.yaml")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "bad.yaml:5:" in out.stderr and "tuning.metric: task 'quadratic-well': declares no metric 'validation_loss'" \
        in out.stderr, out.stderr
