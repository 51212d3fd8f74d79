"""`harness regress record/compare` in a temporary git repository, with real asv runs.

The repository holds the project's own ``asv.conf.json`` and ``benchmarks/suite.py`` and a
catalog of three test-only methods on the built-in ``logreg``: ``sleepy`` (whose step sleeps
longer at commit B), ``damped`` (whose step is shortened at commit B, so it no longer reaches
its target within the budget and ends further from the optimum) and ``steady`` (unchanged). Each step sleeps, so their clocks are dominated by a
sleep and not by this shared machine's load. Commit A and commit B are recorded by
``harness regress record``; ``harness regress compare A B`` must exit 1 and name exactly the
benchmarks that the two changes make worse, and report steady's as unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

SUITE = """\
id: regress-test
description: Three test-only methods on the built-in logreg; gradient descent reaches the target in ~70 steps.
seeds: [0]
frameworks: [torch]
hardware: [cpu]
entries:
  - tasks: [logreg]
    methods: [sleepy, steady, damped]
    budget: {steps: 100, seconds: 60}
"""

METHOD_YAML = """\
id: {id}
name: {id} (test-only gradient descent)
family: regress-test
paper: "test-only: a gradient step that sleeps {pause} ms"
requires: [grad]
hyperparameters:
  lr: 3.0
implementations:
  torch:
    entry: "{id}.py:Method"
"""

METHOD_PY = """\
import time

PAUSE_S = {pause}
SCALE = {scale}


class Method:
    def __init__(self, *, lr):
        self.lr = float(lr)

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        time.sleep(PAUSE_S)
        return params - SCALE * self.lr * oracle.grad(params), state
"""

# (pause s, scale) at commit A and at commit B.
METHODS = {
    "sleepy": ((0.003, 1.0), (0.012, 1.0)),
    "steady": ((0.010, 1.0), (0.010, 1.0)),
    "damped": ((0.010, 1.0), (0.010, 0.25)),
}


def _write_methods(repo: Path, commit: int) -> None:
    for name, settings in METHODS.items():
        pause, scale = settings[commit]
        (repo / "methods" / f"{name}.yaml").write_text(METHOD_YAML.format(id=name, pause=int(pause * 1000)))
        (repo / "methods" / f"{name}.py").write_text(METHOD_PY.format(pause=pause, scale=scale))


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _harness(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # asv keeps its machine file in ~/.asv-machine.json; a fixed width keeps the tables' rows whole under any runner.
    env = {**os.environ, "HOME": str(home), "COLUMNS": "240"}
    return subprocess.run([sys.executable, "-m", "harness.cli", "regress", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, str]:
    repo, home = tmp_path_factory.mktemp("repo"), tmp_path_factory.mktemp("home")
    shutil.copy(ROOT / "asv.conf.json", repo / "asv.conf.json")
    (repo / "benchmarks").mkdir()
    for name in ("__init__.py", "suite.py"):
        shutil.copy(ROOT / "benchmarks" / name, repo / "benchmarks" / name)
    (repo / "methods").mkdir()
    (repo / "suites").mkdir()
    (repo / "suites" / "regress-test.yaml").write_text(SUITE)
    _git(repo, "init", "-q", "-b", "main")
    commits = []
    for commit in (0, 1):
        _write_methods(repo, commit)
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"commit {'AB'[commit]}")
        done = _harness(repo, home, "record", "--suite", "regress-test")
        # At B, damped's time to target fails (a recorded failure): asv exits 2 and the CLI says why.
        assert done.returncode == (0, 2)[commit], done.stdout[-3000:] + done.stderr[-3000:]
        if commit:
            assert "their failures are recorded" in done.stderr
        commits.append(_git(repo, "rev-parse", "HEAD"))
    return repo, home, commits[0], commits[1]


def _name(method: str, benchmark: str) -> str:
    return f"suite.logreg__{method}.{benchmark}(default, torch)"


def test_compare_names_exactly_the_regressions(recorded: tuple[Path, Path, str, str]) -> None:
    from harness.regress.results import compare_commits

    repo, home, a, b = recorded
    done = _harness(repo, home, "compare", a, b)
    assert done.returncode == 1, done.stdout + done.stderr
    expected = {_name("sleepy", "time_step"), _name("sleepy", "track_seconds_per_step"),
                _name("sleepy", "track_time_to_target"), _name("damped", "track_final_suboptimality"),
                _name("damped", "track_time_to_target")}
    changes = {c.name: c for c in compare_commits(repo / "asv.conf.json", a, b)}
    regressed = {name for name, c in changes.items() if c.state in ("regressed", "failed")}
    assert regressed == expected, {n: (c.state, c.ratio) for n, c in changes.items()}
    stderr_line = done.stderr.strip().splitlines()[-1]
    assert stderr_line.startswith("5 regression(s): ") and all(name in stderr_line for name in expected)
    # steady changed nothing: each of its benchmarks is reported unchanged, in the table too.
    steady = [c for n, c in changes.items() if ".logreg__steady." in n]
    assert len(steady) == 5 and all(c.state == "unchanged" for c in steady), [(c.name, c.state, c.ratio) for c in steady]
    line = next(row for row in done.stdout.splitlines() if _name("steady", "track_final_suboptimality") in row)
    assert "unchanged" in line
    # The slowdown is the one the code made: sleepy's step sleeps 4x longer; damped's target is now missed.
    assert changes[_name("sleepy", "time_step")].ratio > 2.5
    assert changes[_name("damped", "track_time_to_target")].state == "failed"
    assert changes[_name("damped", "track_final_suboptimality")].ratio > 100


def test_compare_in_the_other_direction_finds_improvements(recorded: tuple[Path, Path, str, str]) -> None:
    repo, home, a, b = recorded
    done = _harness(repo, home, "compare", b, a, "--only-changed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "improved" in done.stdout and "regressed" not in done.stdout
    assert "logreg__steady" not in done.stdout  # --only-changed leaves the unchanged out


def test_factors_are_settable(recorded: tuple[Path, Path, str, str]) -> None:
    repo, home, a, b = recorded
    # Factors above every change: what is left is the one benchmark that fails now, whatever the factor.
    done = _harness(repo, home, "compare", a, b, "--metric-factor", "1e9", "--time-factor", "1e9")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == f"1 regression(s): {_name('damped', 'track_time_to_target')}"
    # A time factor of 10 lets sleepy's slowdown through (its sleep is x4: about x3.2 with the step's own
    # cost, x4-6 when the first commit was recorded on a quieter machine), while the metric factor still
    # catches damped.
    done = _harness(repo, home, "compare", a, b, "--time-factor", "10", "--only-changed")
    assert done.returncode == 1 and done.stderr.startswith("2 regression(s): ") and "sleepy" not in done.stderr


def test_compare_errors_are_one_line(recorded: tuple[Path, Path, str, str]) -> None:
    repo, home, a, _ = recorded
    done = _harness(repo, home, "compare", a, "no-such-commit")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = _harness(repo, home, "compare", a, "--config", str(repo / "missing.json"))
    assert done.returncode == 2 and "no asv configuration" in done.stderr


def test_machine_is_named_after_profile_and_host(recorded: tuple[Path, Path, str, str]) -> None:
    from harness.regress.record import machine_name
    from harness.regress.results import load_config, machines

    repo, *_ = recorded
    assert machines(load_config(repo / "asv.conf.json").results_dir) == [machine_name("cpu")]
    assert textwrap.shorten(machine_name("gpu"), 200).startswith("gpu-")
