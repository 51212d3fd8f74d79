"""Run identity: a result is never reused after what produced it changed.

Every test works on a copy of the toy catalog in ``tmp_path`` with a method ``flaky`` whose
module imports a sibling (which imports another): it fails while a ``FAIL`` file lies beside
it (a flaky failure: its code, hence its run id, stays the same when the file goes).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from harness.catalog import Catalog, builtin_root, resolve_entry_point
from harness.cli import app
from harness.plan import make_plan, stale_implementation
from harness.store import compact, read_runs, read_traces

TEST_CATALOG = Path(__file__).parent / "catalog"

FLAKY_YAML = """\
id: flaky
name: Gradient descent that fails while a FAIL file lies beside it
family: toy
paper: "none: a flaky failure for the run-identity tests"
requires: [grad]
hyperparameters: {lr: 0.1}
implementations:
  torch: {entry: "flaky.py:FlakyGD"}
"""
FLAKY_PY = """\
from __future__ import annotations

from pathlib import Path

from steps import descend


class FlakyGD:
    def __init__(self, *, lr: float) -> None:
        self.lr = lr

    def init(self, params, oracle):
        return None

    def step(self, params, state, oracle):
        if Path(__file__).with_name("FAIL").exists():
            raise RuntimeError("flaky: the FAIL file is there")
        return descend(params, oracle.grad(params), self.lr), state
"""
STEPS_PY = "from consts import SCALE\n\n\ndef descend(params, grad, lr):\n    return params - SCALE * lr * grad\n"
SGD_YAML = """\
id: sgd-lib
name: torch.optim.SGD
family: toy
paper: "baseline: torch.optim.SGD"
requires: [grad]
hyperparameters: {lr: 0.1}
implementations:
  torch: {optimizer: torch.optim.SGD, args: {lr: lr}, fixed: {momentum: 0.0}}
"""
PAIR_YAML = """\
id: pair
seeds: [0]
frameworks: [torch]
entries:
  - tasks: [quadratic]
    methods: [sleepy-gd, flaky, sgd-lib]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A copy of the toy catalog with ``flaky`` (flaky.py -> steps.py -> consts.py), ``sgd-lib`` and suite ``pair``."""
    root = tmp_path / "catalog"
    shutil.copytree(TEST_CATALOG, root)
    methods = root / "methods" / "toy"
    (methods / "flaky.yaml").write_text(FLAKY_YAML)
    (methods / "flaky.py").write_text(FLAKY_PY)
    (methods / "steps.py").write_text(STEPS_PY)
    (methods / "consts.py").write_text("SCALE = 1.0\n")
    (methods / "sgd-lib.yaml").write_text(SGD_YAML)
    (root / "suites" / "pair.yaml").write_text(PAIR_YAML)
    return root


def load(root: Path) -> Catalog:
    return Catalog.load([root], builtin=False, files=sorted((builtin_root() / "hardware").glob("*.yaml")))


def ids(root: Path, suite: str = "pair") -> dict[str, str]:
    """Method -> run id of the one-seed suite ``suite``."""
    return {r.method: r.run_id for r in make_plan(load(root), suite=suite).runs}


def bench(root: Path, store: Path, *args: str):  # noqa: ANN201
    result = CliRunner().invoke(app, ["bench", "--catalog", str(root), "--store", str(store), "--executor", "inline", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_run_ids_cover_the_module_and_its_sibling_imports(root: Path) -> None:
    before = ids(root)
    for file, old, new in (("consts.py", "1.0", "1.5"), ("steps.py", "SCALE * lr", "lr * SCALE"), ("flaky.py", "RuntimeError", "ValueError")):
        edit(root / "methods" / "toy" / file, old, new)
        after = ids(root)
        assert after["flaky"] != before["flaky"], file
        assert {m: after[m] for m in ("sleepy-gd", "sgd-lib")} == {m: before[m] for m in ("sleepy-gd", "sgd-lib")}, file
        before = after
    (root / "methods" / "toy" / "unrelated.py").write_text("X = 1\n")  # imported by nothing
    assert ids(root) == before


def test_run_ids_cover_declarations_but_not_their_cosmetic_fields(root: Path) -> None:
    base = ids(root)
    sgd, task = root / "methods" / "toy" / "sgd-lib.yaml", root / "tasks" / "toy" / "quadratic.yaml"
    edit(sgd, "name: torch.optim.SGD", "name: SGD, renamed\nnotes: cosmetic\ndescription: also cosmetic")
    edit(sgd, "family: toy", "family: renamed")
    assert ids(root) == base
    edit(sgd, "momentum: 0.0", "momentum: 0.5")  # a typo fixed in an optimizer argument
    changed = ids(root)
    assert changed["sgd-lib"] != base["sgd-lib"] and changed["flaky"] == base["flaky"]
    edit(task, "value: 1.0e-10", "value: 1.0e-8")  # the target: every run of the task
    retargeted = ids(root)
    assert all(retargeted[m] != changed[m] for m in changed)
    # A hardware profile's threads change a result; its name does not.
    cpu = root / "hardware" / "cpu.yaml"
    cpu.parent.mkdir()
    shutil.copy(builtin_root() / "hardware" / "cpu.yaml", cpu)

    def plan_ids() -> set[str]:
        return {r.run_id for r in make_plan(Catalog.load([root], builtin=False), suite="pair").runs}

    assert plan_ids() == set(retargeted.values())
    edit(cpu, "name: ", "name: renamed ")
    assert plan_ids() == set(retargeted.values())
    edit(cpu, "threads: 1", "threads: 2")
    assert not plan_ids() & set(retargeted.values())


def test_stale_implementation_names_what_changed(root: Path) -> None:
    catalog = load(root)
    runs = {r.method: r for r in make_plan(catalog, suite="pair").runs}
    assert {m: stale_implementation(r, catalog) for m, r in runs.items()} == dict.fromkeys(runs)
    consts = root / "methods" / "toy" / "consts.py"
    edit(consts, "1.0", "2.0")
    reason = stale_implementation(runs["flaky"], catalog)
    assert reason is not None and str(consts) in reason and "changed since run" in reason and "\n" not in reason
    assert stale_implementation(runs["sleepy-gd"], catalog) is None
    edit(consts, "2.0", "1.0")
    assert stale_implementation(runs["flaky"], catalog) is None
    (root / "methods" / "toy" / "extra.py").write_text("Y = 2\n")
    edit(root / "methods" / "toy" / "steps.py", "from consts import SCALE", "from consts import SCALE\nimport extra")
    assert "extra.py (method 'flaky') is new" in stale_implementation(runs["flaky"], catalog)
    # The declarations the worker loads count too (another checkout, an edit after planning).
    edit(root / "methods" / "toy" / "sgd-lib.yaml", "momentum: 0.0", "momentum: 0.9")
    assert "the declaration of method 'sgd-lib'" in stale_implementation(runs["sgd-lib"], load(root))


def test_an_edited_module_is_imported_afresh_by_the_same_process(root: Path) -> None:
    directory = root / "methods" / "toy"
    first = resolve_entry_point("flaky.py:FlakyGD", relative_to=directory)
    assert resolve_entry_point("flaky.py:FlakyGD", relative_to=directory) is first  # unchanged: cached
    edit(directory / "consts.py", "1.0", "3.0")
    second = resolve_entry_point("flaky.py:FlakyGD", relative_to=directory)
    assert second is not first
    descend = resolve_entry_point("steps.py:descend", relative_to=directory)
    assert descend(1.0, 1.0, 0.5) == 1.0 - 3.0 * 0.5  # the sibling of the sibling, as edited


def test_editing_a_method_module_reruns_exactly_its_runs(root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = bench(root, store, "--suite", "pair")
    assert first.exit_code == 0, first.output
    assert "3 runs, 0 already in" in first.output
    before = read_runs(store)
    edit(root / "methods" / "toy" / "steps.py", "SCALE * lr", "lr * SCALE")
    new_ids = ids(root)
    second = bench(root, store, "--suite", "pair")
    assert second.exit_code == 0, second.output
    assert "3 runs, 2 already in" in second.output and "1 to run" in second.output
    after = read_runs(store)
    added = set(after["run_id"]) - set(before["run_id"])
    assert added == {new_ids["flaky"]}
    kept = after.filter(pl.col("run_id").is_in(before["run_id"].to_list())).sort("run_id")
    assert kept["finished_at"].to_list() == before.sort("run_id")["finished_at"].to_list()


def test_retry_failed_reruns_the_errored_run_alone_and_replaces_it(root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    fail = root / "methods" / "toy" / "FAIL"
    fail.write_text("")
    first = bench(root, store, "--suite", "pair")
    assert first.exit_code == 1, first.output
    flaky = ids(root)["flaky"]
    summary = first.output.strip().splitlines()
    assert summary[-2].startswith("1 of 3 runs failed")
    assert summary[-1].strip() == "error quadratic / flaky / torch / seed 0: RuntimeError: flaky: the FAIL file is there"
    again = bench(root, store, "--suite", "pair")  # the failure stays stored, and so does the exit status
    assert again.exit_code == 1 and "0 to run" in again.output
    fail.unlink()
    compact(store)  # the errored row now lives in a part
    before = read_runs(store)
    retried = bench(root, store, "--suite", "pair", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert "3 runs, 3 already in" in retried.output and "1 to run (1 of them again: --retry-failed)" in retried.output
    for step in ("fresh", "compacted"):
        runs = read_runs(store).sort("run_id")
        assert runs.height == 3 and runs["run_id"].n_unique() == 3, step
        row = runs.filter(pl.col("run_id") == flaky).row(0, named=True)
        assert (row["status"], row["attempt"], row["error"]) == ("reached_target", 1, None), step
        others = runs.filter(pl.col("run_id") != flaky)
        assert others["finished_at"].to_list() == before.filter(pl.col("run_id") != flaky).sort("run_id")["finished_at"].to_list()
        trace = read_traces(store, [flaky])
        assert trace["step"].is_unique().all() and trace["step"].max() == row["steps"], step  # the new trace alone
        compact(store)
    assert bench(root, store, "--suite", "pair", "--retry-failed").output.count("0 to run") == 1


def tree_digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


def test_dry_run_changes_nothing_in_the_store(root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    fresh = bench(root, store, "--suite", "pair", "--dry-run")
    assert fresh.exit_code == 0 and not store.exists()
    assert "to run (3):" in fresh.output and "dry run: nothing was run or written" in fresh.output
    (root / "methods" / "toy" / "FAIL").write_text("")
    assert bench(root, store, "--suite", "pair").exit_code == 1
    snapshot = tree_digest(store)
    for extra in (["--retry-failed"], ["--force"], []):
        out = bench(root, store, "--suite", "pair", "--dry-run", *extra)
        assert out.exit_code == 0, out.output
        assert tree_digest(store) == snapshot, extra
    assert "to run again (1):" in bench(root, store, "--suite", "pair", "--dry-run", "--retry-failed").output
    forced = bench(root, store, "--suite", "pair", "--dry-run", "--force").output
    assert "to run again (3):" in forced and "[was error: RuntimeError: flaky: the FAIL file is there]" in forced


def test_task_and_method_without_a_suite_build_their_own_matrix(root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    out = bench(root, store, "--task", "quadratic", "--method", "flaky", "--dry-run")
    assert out.exit_code == 0, out.output
    assert "suite ad-hoc: 3 runs" in out.output  # 3 seeds, torch only: flaky has no jax implementation
    assert out.output.count("/ flaky / torch / cpu / seed") == 3
    out = bench(root, store, "--method", "flaky", "--seeds", "1", "--dry-run")
    tasks = Catalog.load([root]).tasks.values()  # the built-in catalog's tasks too, as the command loads
    compatible = sorted(t.spec.id for t in tasks if "torch" in t.spec.implementations and "grad" in t.spec.provides)
    assert f"suite ad-hoc: {len(compatible)} runs" in out.output and "quadratic" in compatible
    assert all(f"{t}[" in out.output for t in compatible) and "/ jax /" not in out.output


def test_a_plan_of_no_runs_is_bad_input_that_says_why(root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    # Before the first command: one process loads a catalog once (each command is a process of its own).
    (root / "methods" / "toy" / "fisher-step.yaml").write_text(
        FLAKY_YAML.replace("id: flaky", "id: fisher-step").replace("[grad]", "[fisher]"))
    out = bench(root, store, "--suite", "toy", "--method", "flaky")
    assert out.exit_code == 2 and "no runs to do: method 'flaky' is not in suite 'toy'" in out.output
    out = bench(root, store, "--task", "quadratic", "--method", "fisher-step")
    assert out.exit_code == 2
    assert "every pair is skipped: quadratic x fisher-step (torch): the task does not provide fisher" in out.output
    assert not store.exists()


KILLER_PY = FLAKY_PY.replace("from pathlib import Path\n", "import os\nimport signal\nfrom pathlib import Path\n").replace(
    '            raise RuntimeError("flaky: the FAIL file is there")',
    "            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would")


@pytest.fixture
def killed(root: Path) -> Path:
    """Method ``killed`` (SIGKILLs its own worker while the FAIL file lies beside it) in suite ``killed``."""
    methods = root / "methods" / "toy"
    (methods / "killed.yaml").write_text(FLAKY_YAML.replace("id: flaky", "id: killed").replace("flaky.py:FlakyGD", "killed.py:FlakyGD"))
    (methods / "killed.py").write_text(KILLER_PY)
    (root / "suites" / "killed.yaml").write_text(PAIR_YAML.replace("id: pair", "id: killed").replace(
        "[sleepy-gd, flaky, sgd-lib]", "[killed]"))
    (methods / "FAIL").write_text("")
    return methods / "FAIL"


POOL = ("--suite", "killed", "--executor", "pool", "--jobs", "1")  # the last --executor wins: a real worker


def test_retry_failed_reruns_a_run_killed_from_outside(root: Path, killed: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = bench(root, store, *POOL)
    assert first.exit_code == 1, first.output
    row = read_runs(store).row(0, named=True)
    assert (row["status"], row["attempt"]) == ("error", 0) and "the worker process" in row["error"]
    killed.unlink()
    assert "0 to run" in bench(root, store, *POOL).output  # a plain bench leaves the stored failure
    retried = bench(root, store, *POOL, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert "1 to run (1 of them again: --retry-failed)" in retried.output
    row = read_runs(store).row(0, named=True)
    assert (row["status"], row["attempt"], row["error"]) == ("reached_target", 1, None)


def test_a_run_killed_from_outside_names_the_signal(root: Path, killed: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    assert bench(root, store, *POOL).exit_code == 1
    error = read_runs(store).row(0, named=True)["error"]
    assert "killed by signal SIGKILL (9), sent from outside the harness" in error.splitlines()[-1], error
