"""A corpus of bad declarations: each gives one line `path:line:col: field: message`, exit 2, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness import catalog as catalog_module
from harness.catalog import builtin_root
from harness.cli import app
from harness.spec import Parameter, TaskSpec, check_value
from harness.yamlio import MAX_BYTES, DeclarationError, parse_text

HERE = Path(__file__).parent
IMPL = HERE / "declarations" / "impl"

TASK = """\
id: t
name: T
family: toy
paper: p
parameters:
  n: {default: 3}
implementations: {torch: "t.py:T"}
provides: [value, grad]
metrics:
  - {id: objective, unit: "1", lower_is_better: true}
target: {metric: objective, value: 0.5}
budget: {steps: 10, seconds: 60}
"""

METHOD = """\
id: m
name: M
family: toy
paper: p
requires: [grad]
hyperparameters:
  lr: 0.1
  mode: a
implementations:
  torch:
    optimizer: torch.optim.SGD
    args: {lr: lr}
"""

HARDWARE = "id: h\nname: H\ndevice: cpu\nthreads: 1\n"

SUITE = """\
id: s
seeds: [0, 1]
hardware: [cpu]
entries:
  - tasks: [quadratic]
    methods: [sleepy-gd]
    grid: {d: [2]}
    hyperparameters:
      sleepy-gd: {lr: 0.5}
"""


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "id: t\n" + "\n".join(lines) + "\n"


def r(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# (file below the root, content, "line", field): the one line must start with f"{file}:{line}:"
# and name f": {field}: " (field empty for a file-level problem). Columns (the key's or the
# item's) are asserted exactly for a few cases in tests/test_yamlio.py.
CORPUS = [
    # --- YAML ---
    ("tasks/t.yaml", TASK + "<<: {x: 1}\n", "13", ""),
    ("tasks/t.yaml", r(TASK, "budget: {steps: 10, seconds: 60}", "base: &b {steps: 10}\nbudget:\n  <<: *b"), "14", "budget"),
    ("tasks/t.yaml", r(TASK, "provides: [value, grad]", "provides: !!set [value, grad]"), "8", "provides"),
    ("tasks/t.yaml", r(TASK, "provides: [value, grad]", "provides: !caps [value, grad]"), "8", "provides"),
    ("tasks/t.yaml", r(TASK, "name: T", "name: !!python/object:os.system {}"), "2", "name"),
    ("tasks/t.yaml", r(TASK, "name: T", "name: !!binary aGk="), "2", "name"),
    ("tasks/t.yaml", TASK + "x: " + "[" * 5000 + "]" * 5000 + "\n", "13:", ""),
    ("tasks/t.yaml", TASK + "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(40)), "", ""),
    ("tasks/t.yaml", _bomb(), "", ""),
    ("tasks/t.yaml", TASK + "---\nid: u\n", "13", ""),
    ("tasks/t.yaml", TASK + "? [a, b]\n: 1\n", "13", ""),
    ("tasks/t.yaml", TASK + "x: *nowhere\n", "13", "x"),
    ("tasks/t.yaml", TASK + "name: U\n", "13", ""),
    ("tasks/t.yaml", TASK + "&k key: 1\n", "13:", ""),
    ("tasks/t.yaml", r(TASK, "provides: [value, grad]", "provides: [value, grad"), "", ""),
    ("tasks/t.yaml", TASK + "\tx: 1\n", "13:", ""),
    ("tasks/t.yaml", "", "1", ""),
    ("tasks/t.yaml", "- a\n- b\n", "1", ""),
    ("tasks/t.yaml", "just a string\n", "1", ""),
    ("tasks/t.yaml", "id: t\nn: 1" + "0" * 5000 + "\n", "2", "n"),
    # --- strict types ---
    ("tasks/t.yaml", r(TASK, "steps: 10", "steps: true"), "12", "budget.steps"),
    ("tasks/t.yaml", r(TASK, "steps: 10", "steps: 10.0"), "12", "budget.steps"),
    ("tasks/t.yaml", r(TASK, "steps: 10", "steps: '10'"), "12", "budget.steps"),
    ("tasks/t.yaml", r(TASK, "steps: 10", "steps: 0"), "12", "budget.steps"),
    ("tasks/t.yaml", r(TASK, "steps: 10", "steps: 99999999999999999999"), "12", "budget.steps"),
    ("tasks/t.yaml", r(TASK, "seconds: 60", "seconds: .inf"), "12", "budget.seconds"),
    ("tasks/t.yaml", r(TASK, "seconds: 60", "seconds: .nan"), "12", "budget.seconds"),
    ("tasks/t.yaml", r(TASK, "seconds: 60", "seconds: -1"), "12", "budget.seconds"),
    ("tasks/t.yaml", r(TASK, "seconds: 60", "seconds: 1.0e9"), "12", "budget.seconds"),
    ("tasks/t.yaml", r(TASK, "seconds: 60", "seconds: true"), "12", "budget.seconds"),
    ("tasks/t.yaml", r(TASK, "steps: 10", "steps: 10, oracle_calls: false"), "12:", "budget.oracle_calls"),
    ("tasks/t.yaml", r(TASK, "value: 0.5", "value: .nan"), "11", "target.value"),
    ("tasks/t.yaml", r(TASK, "value: 0.5", "value: -.inf"), "11", "target.value"),
    ("tasks/t.yaml", r(TASK, "value: 0.5", "value: '0.5'"), "11", "target.value"),
    ("tasks/t.yaml", r(TASK, "lower_is_better: true", 'lower_is_better: "off"'), "10", "metrics.0.lower_is_better"),
    ("tasks/t.yaml", r(TASK, "lower_is_better: true", "lower_is_better: 1"), "10", "metrics.0.lower_is_better"),
    ("tasks/t.yaml", r(TASK, "lower_is_better: true", "lower_is_better: yes"), "10", "metrics.0.lower_is_better"),
    ("tasks/t.yaml", r(TASK, "name: T", "name: 7"), "2", "name"),
    ("tasks/t.yaml", r(TASK, "paper: p", "paper: null"), "4", "paper"),
    ("tasks/t.yaml", r(TASK, "family: toy", "family: Toy"), "3", "family"),
    ("tasks/t.yaml", TASK + "dtype: float16\n", "13", "dtype"),
    ("tasks/t.yaml", TASK + "evaluation: {every: 1.5}\n", "13", "evaluation.every"),
    ("tasks/t.yaml", TASK + "evaluation: {every: true}\n", "13", "evaluation.every"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: .nan}"), "6", "parameters.n.default"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: [1, 2]}"), "6", "parameters.n.default"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 3, type: str}"), "6", "parameters.n.default"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 3, type: complex}"), "6", "parameters.n.type"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 3, choices: [1, 2]}"), "6", "parameters.n.default"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 3, choices: [3, x]}"), "6:", "parameters.n.choices.1"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 3, choices: []}"), "6:", "parameters.n.choices"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: true, choices: [1]}"), "6:", "parameters.n.choices.0"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 9223372036854775808}"), "6", "parameters.n.default"),
    ("tasks/t.yaml", r(TASK, "n: {default: 3}", "n: {default: 3, colour: red}"), "6:", "parameters.n.colour"),
    # --- errors about a mapping, placed at the key they concern ---
    ("tasks/t.yaml", r(TASK, "  - {id: objective", "  - {id: loss"), "9", "metrics"),
    ("tasks/t.yaml", r(TASK, '  - {id: objective, unit: "1", lower_is_better: true}', '  - {id: objective, unit: "1", lower_is_better: true}\n  - {id: objective, unit: "1", lower_is_better: true}'), "11", "metrics.1.id"),
    ("tasks/t.yaml", r(TASK, "metric: objective", "metric: accuracy"), "11", "target.metric"),
    ("tasks/t.yaml", r(TASK, '"t.py:T"', '"t.py"'), "7", "implementations.torch"),
    ("tasks/t.yaml", r(TASK, '{torch: "t.py:T"}', "{tpu: \"t.py:T\"}"), "7:", "implementations.tpu"),
    ("tasks/t.yaml", r(TASK, "[value, grad]", "[value, gradd]"), "8", "provides.1"),
    ("tasks/t.yaml", r(TASK, "id: t", "id: other"), "1", "id"),
    ("tasks/t.yaml", TASK + "colour: red\n", "13", "colour"),
    ("tasks/t.yaml", r(TASK, "paper: p\n", ""), "1", "paper"),
    ("tasks/t.yaml", TASK + "probes: [{id: no-such-probe}]\n", "13:", "probes.0.id"),
    ("tasks/t.yaml", TASK + "probes: [{id: hessian-top, options: {k: .nan}}]\n", "13:", "probes.0.options.k"),
    ("methods/m.yaml", r(METHOD, "args: {lr: lr}", "args: {lr: learning_rate}"), "12", "implementations.torch.args.lr"),
    ("methods/m.yaml", r(METHOD, "    args: {lr: lr}", "    args: {lr: lr}\n    entry: \"x.py:X\""), "10", "implementations.torch"),
    ("methods/m.yaml", r(METHOD, "    optimizer: torch.optim.SGD\n    args: {lr: lr}", '    entry: "x.py:X"\n    args: {lr: lr}'), "12", "implementations.torch.args"),
    ("methods/m.yaml", r(METHOD, "    optimizer: torch.optim.SGD\n    args: {lr: lr}", '    entry: "x.py:X"\n    fixed: {lr: 1}'), "12", "implementations.torch.fixed"),
    ("methods/m.yaml", r(METHOD, "    optimizer: torch.optim.SGD\n    args: {lr: lr}", '    entry: "x.py"'), "11", "implementations.torch.entry"),
    ("methods/m.yaml", r(METHOD, "    args: {lr: lr}", "    args: {lr: lr}\n    jit: true"), "13", "implementations.torch.jit"),
    ("methods/m.yaml", r(METHOD, "    args: {lr: lr}", "    args: {lr: lr}\n    jit: 1"), "13", "implementations.torch.jit"),
    ("methods/m.yaml", r(METHOD, "  torch:\n    optimizer: torch.optim.SGD", "  jax:\n    optimizer: torch.optim.SGD"), "11", "implementations.jax.optimizer"),
    ("methods/m.yaml", r(METHOD, "torch.optim.SGD", "numpy.SGD"), "11", "implementations.torch.optimizer"),
    ("methods/m.yaml", METHOD + "requires_when: {speed: {fast: [hvp]}}\n", "13", "requires_when.speed"),
    ("methods/m.yaml", METHOD + "types: {rate: float}\n", "13", "types.rate"),
    ("methods/m.yaml", METHOD + "types: {lr: decimal}\n", "13", "types.lr"),
    ("methods/m.yaml", METHOD + "types: {mode: int}\n", "8", "hyperparameters.mode"),
    ("methods/m.yaml", METHOD + "choices: {mode: [b, c]}\n", "8", "hyperparameters.mode"),
    ("methods/m.yaml", METHOD + "choices: {mode: [a, 1]}\n", "13:", "choices.mode.1"),
    ("methods/m.yaml", METHOD + "choices: {speed: [a]}\n", "13", "choices.speed"),
    ("methods/m.yaml", METHOD + "choices: {mode: [a, b]}\nrequires_when: {mode: {c: [hvp]}}\n", "14:", "requires_when.mode.c"),
    ("methods/m.yaml", r(METHOD, "lr: 0.1", "lr: .inf"), "7", "hyperparameters.lr"),
    ("methods/m.yaml", r(METHOD, "lr: 0.1", "lr: [0.1]"), "7", "hyperparameters.lr"),
    ("methods/m.yaml", r(METHOD, "lr: 0.1", "lr: {x: 1}"), "7", "hyperparameters.lr"),
    ("methods/m.yaml", r(METHOD, "lr: 0.1", "lr: 0.1\n  lr: 0.2"), "8", "hyperparameters"),
    ("methods/m.yaml", r(METHOD, "requires: [grad]", "requires: []"), "5", "requires"),
    ("methods/m.yaml", r(METHOD, "requires: [grad]", "requires: [telepathy]"), "5", "requires.0"),
    ("methods/m.yaml", r(METHOD, "args: {lr: lr}", "args: {lr: lr}\n    fixed: {nesterov: .nan}"), "13:", "implementations.torch.fixed.nesterov"),
    # Search spaces: each drawn value must be one the hyperparameter accepts.
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: log_uniform, low: 0.0, high: 1.0}\n", "14", "search.lr.low"),
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: uniform, low: 2.0, high: 1.0}\n", "14", "search.lr.high"),
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: int, low: 1, high: 5}\n", "14", "search.lr.kind"),
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: choice, values: [0.1, fast]}\n", "14", "search.lr.values.1"),
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: uniform, low: 0.1}\n", "14", "search.lr.high"),
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: choice, values: [0.1], low: 0.1}\n", "14", "search.lr.low"),
    ("methods/m.yaml", METHOD + "search:\n  lr: {kind: sobol, low: 0.1, high: 1.0}\n", "14", "search.lr.kind"),
    ("methods/m.yaml", METHOD + "search:\n  lrr: {kind: uniform, low: 0.1, high: 1.0}\n", "14", "search.lrr"),
    ("methods/m.yaml", METHOD + "search:\n  mode: {kind: fixed, value: 3}\n", "14", "search.mode.value"),
    # Hyperparameter grids and tuning protocols in suites.
    ("suites/s.yaml", r(SUITE, "{lr: 0.5}", "{lr: []}"), "9", "entries.0.hyperparameters.sleepy-gd.lr"),
    ("suites/s.yaml", r(SUITE, "{lr: 0.5}", "{lr: [0.5, fast]}"), "9", "entries.0.hyperparameters.sleepy-gd"),
    ("suites/s.yaml", SUITE + "tuning: {trials: 0, metric: objective, split: train}\n", "10", "tuning.trials"),
    ("suites/s.yaml", SUITE + "tuning: {trials: 4, metric: objective, split: test}\n", "10", "tuning.split"),
    ("suites/s.yaml", SUITE + "tuning: {trials: 4, metric: objective, sampler: random, split: train}\n", "10",
     "tuning.sampler"),
    ("suites/s.yaml", SUITE + "tuning: {trials: 4, metric: objective, split: train, trial_seed: 1}\n", "10",
     "tuning.trial_seed"),
    ("suites/s.yaml", SUITE + "tuning: {trials: 4, metric: steps_to_target}\n", "10", "tuning.split"),
    ("suites/s.yaml", SUITE + "tuning: {trials: 4, metric: loss}\n", "10", "tuning.metric"),
    ("hardware/h.yaml", HARDWARE + "ranks: 2\n", "5", "ranks"),
    ("hardware/h.yaml", HARDWARE + "dist_backend: nccl\n", "5", "dist_backend"),
    ("hardware/h.yaml", r(HARDWARE, "threads: 1", "threads: true"), "4", "threads"),
    ("hardware/h.yaml", r(HARDWARE, "threads: 1", "threads: 0"), "4", "threads"),
    ("hardware/h.yaml", HARDWARE + "memory_limit_mb: 99999999999999999999\n", "5", "memory_limit_mb"),
    ("hardware/h.yaml", HARDWARE + "devices: 1.5\n", "5", "devices"),
    ("hardware/h.yaml", r(HARDWARE, "device: cpu", "device: tpu"), "3", "device"),
    ("suites/s.yaml", r(SUITE, "seeds: [0, 1]", "seeds: [0, 99999999999999999999]"), "2", "seeds.1"),
    ("suites/s.yaml", r(SUITE, "seeds: [0, 1]", "seeds: [0, true]"), "2", "seeds.1"),
    ("suites/s.yaml", r(SUITE, "seeds: [0, 1]", "seeds: [-1]"), "2", "seeds.0"),
    ("suites/s.yaml", r(SUITE, "seeds: [0, 1]", "seeds: [0.5]"), "2", "seeds.0"),
    ("suites/s.yaml", r(SUITE, "sleepy-gd: {lr: 0.5}", "gd: {lr: 0.5}"), "9", "entries.0.hyperparameters.gd"),
    ("suites/s.yaml", r(SUITE, "grid: {d: [2]}", "grid: {d: []}"), "7", "entries.0.grid.d"),
    ("suites/s.yaml", r(SUITE, "grid: {d: [2]}", "grid: {d: [two]}"), "7", "entries.0.grid.d"),
    ("suites/s.yaml", r(SUITE, "grid: {d: [2]}", "grid: {d: [2.5]}"), "7", "entries.0.grid.d"),
    ("suites/s.yaml", r(SUITE, "grid: {d: [2]}", "grid: {d: [true]}"), "7", "entries.0.grid.d"),
    ("suites/s.yaml", r(SUITE, "{lr: 0.5}", "{lr: fast}"), "9", "entries.0.hyperparameters.sleepy-gd"),
    ("suites/s.yaml", r(SUITE, "{lr: 0.5}", "{lr: true}"), "9", "entries.0.hyperparameters.sleepy-gd"),
    ("suites/s.yaml", r(SUITE, "{lr: 0.5}", "{lr: .inf}"), "9:", "entries.0.hyperparameters.sleepy-gd.lr"),
    ("suites/s.yaml", r(SUITE, "hardware: [cpu]", "hardware: [tpu]"), "3", "hardware.0"),
    ("suites/s.yaml", SUITE + "frameworks: [numpy]\n", "10", "frameworks.0"),
]


@pytest.fixture(scope="module")
def small_builtin(tmp_path_factory):
    """A small stand-in for the built-in root: the toy catalog and the built-in hardware profiles."""
    root = tmp_path_factory.mktemp("builtin")
    for name in ("tasks", "methods"):
        shutil.copytree(HERE / "catalog" / name, root / name)
    shutil.copytree(builtin_root() / "hardware", root / "hardware")
    return root


@pytest.fixture
def cli(small_builtin, monkeypatch):
    monkeypatch.setattr(catalog_module, "builtin_root", lambda: small_builtin)
    return CliRunner()


def test_corpus_is_large():
    assert len(CORPUS) + len(IMPLEMENTATION_CORPUS) >= 90


@pytest.mark.parametrize(("name", "content", "where", "field"), CORPUS, ids=[f"{i}-{c[0]}" for i, c in enumerate(CORPUS)])
def test_bad_declaration_gives_one_located_line(cli, tmp_path, monkeypatch, name, content, where, field):
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_text(content)
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["validate", "."])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.output
    assert len(lines) == 2 and lines[1] == "1 error(s) in the declarations", result.stderr
    line = where.partition(":")[0]
    assert lines[0].startswith(f"{name}:{line}:" if line else f"{name}:"), lines[0]
    if field:
        assert f": {field}: " in lines[0], lines[0]


# The implementation corpus (tests/declarations/impl): file -> (line:col, field) of its one line.
IMPLEMENTATION_CORPUS = {
    "methods/entry-no-file.yaml": ("9:5", "implementations.torch.entry", "nosuch.py: no such file"),
    "methods/entry-no-class.yaml": ("9:5", "implementations.torch.entry", "mods.py has no attribute 'Missing'"),
    "methods/entry-raises.yaml": ("9:5", "implementations.torch.entry", "RuntimeError: boom at import"),
    "methods/entry-syntax.yaml": ("9:5", "implementations.torch.entry", "SyntaxError"),
    "methods/entry-dies.yaml": ("9:5", "implementations.torch.entry", "ended the check process (exit status 7)"),
    "methods/entry-exits.yaml": ("9:5", "implementations.torch.entry", "SystemExit: 3"),
    "methods/entry-missing-dep.yaml": ("9:5", "implementations.torch.entry", "No module named 'nosuchpackage_xyz'"),
    "methods/entry-no-module.yaml": ("9:5", "implementations.torch.entry", "No module named 'no_such_pkg_abc'"),
    "methods/entry-not-callable.yaml": ("9:5", "implementations.torch.entry", "is not callable"),
    "methods/entry-required.yaml": ("9:5", "implementations.torch.entry", "requires 'momentum'"),
    "methods/entry-extra-hp.yaml": ("8:3", "hyperparameters.lrr", "no keyword argument 'lrr' (did you mean 'lr'?)"),
    "methods/torch-typo-kwarg.yaml": ("11:13", "implementations.torch.fixed.alpah", "did you mean 'alpha'?"),
    "methods/torch-no-opt.yaml": ("9:5", "implementations.torch.optimizer", "torch.optim has no 'NoSuchOpt'"),
    "methods/torch-typo-opt.yaml": ("9:5", "implementations.torch.optimizer", "did you mean Adam"),
    "methods/torch-bad-arg.yaml": ("10:20", "implementations.torch.args.speed", "no keyword argument 'speed'"),
    "methods/optax-typo-opt.yaml": ("9:5", "implementations.jax.optimizer", "optax has no 'adagrd' (did you mean adagrad"),
    "methods/optax-typo-kwarg.yaml": ("11:13", "implementations.jax.fixed.bb1", "did you mean 'b1'?"),
    "methods/optax-missing-lr.yaml": ("9:5", "implementations.jax.optimizer", "requires 'learning_rate'"),
    "tasks/task-unknown-kw.yaml": ("7:3", "parameters.m", "no keyword argument 'm'"),
    "tasks/task-no-class.yaml": ("5:19", "implementations.torch", "problems.py has no attribute 'Big'"),
    "tasks/task-no-file.yaml": ("5:19", "implementations.torch", "nope.py: no such file"),
    "tasks/task-no-backend.yaml": ("5:19", "implementations.torch", "'backend'"),
}


def test_implementations_are_imported_and_checked(cli, monkeypatch):
    monkeypatch.chdir(IMPL)
    result = cli.invoke(app, ["validate", "."])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines[-1] == f"{len(IMPLEMENTATION_CORPUS)} error(s) in the implementations"
    by_file = {}
    for line in lines[:-1]:
        by_file.setdefault(line.split(":", 1)[0], []).append(line)
    assert sorted(by_file) == sorted(IMPLEMENTATION_CORPUS)
    for file, (where, field, message) in IMPLEMENTATION_CORPUS.items():
        (line,) = by_file[file]
        assert line.startswith(f"{file}:{where}: {field}: ") and message in line, line


def test_the_builtin_catalog_passes_the_implementation_check():
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: ")


#: Sets a 1 GiB address-space limit, then becomes the command: no preexec_fn, which is unsafe in a
#: process that runs threads (jax's, in the test process).
_LIMITED = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "os.execv(sys.argv[1], sys.argv[1:])")


def _validate_limited(path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED, str(Path(sys.executable).parent / "harness"), "validate", "--no-imports", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return proc, time.perf_counter() - start


@pytest.mark.parametrize("kind", ["huge", "bomb"])
def test_hostile_files_are_rejected_fast_in_little_memory(tmp_path, kind):
    path = tmp_path / "tasks" / "t.yaml"
    path.parent.mkdir()
    if kind == "huge":
        with path.open("w") as f:  # 10 MB of plausible YAML
            f.write("id: t\nnotes: >-\n")
            f.writelines(f"  line {i} of a long note that goes on and on and on and on\n" for i in range(180_000))
        assert path.stat().st_size > 10_000_000
    else:
        path.write_text(_bomb())
    proc, seconds = _validate_limited(path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{path}:"), proc.stderr
    assert ("file too large" if kind == "huge" else "once aliases are expanded") in lines[0]
    assert seconds < 2.0, seconds


def test_size_limit_is_checked_on_text_too():
    with pytest.raises(DeclarationError, match="file too large"):
        parse_text("x" * (MAX_BYTES + 1), path="big.yaml")


def test_aliases_are_expanded_and_positions_kept():
    doc = parse_text("a: &x {p: 1}\nb: *x\n", path="a.yaml")
    assert doc.data == {"a": {"p": 1}, "b": {"p": 1}}
    assert doc.position(("b", "p")) == (2, 1)


def test_values_take_the_type_of_their_default():
    assert check_value(1, "float") == 1.0 and type(check_value(1, "float")) is float
    for value, kind in [(True, "int"), ("off", "bool"), (1, "bool"), ("1", "int"), (float("inf"), "float"), (2**63, "int"), ("fast", "float")]:
        with pytest.raises(ValueError):
            check_value(value, kind)
    assert check_value(1, "int", (1, 2)) == 1
    with pytest.raises(ValueError, match="not one of"):
        check_value(True, "bool", (1,))
    assert Parameter(default=3, type="float").check(2) == 2.0


def test_set_overrides_are_checked_like_the_declaration(builtin_catalog):
    gd = builtin_catalog.methods["gd"].spec
    assert gd.resolve_hyperparameters({"lr": 1}) == {**gd.resolve_hyperparameters(), "lr": 1.0}
    with pytest.raises(ValueError, match="method 'gd' hyperparameter 'lr': expected a number, got 'fast'"):
        gd.resolve_hyperparameters({"lr": "fast"})
    gns = builtin_catalog.methods["gns-newton"].spec
    with pytest.raises(ValueError, match="'bogus' is not one of"):
        gns.resolve_hyperparameters({"hessian": "bogus"})
    logreg: TaskSpec = builtin_catalog.tasks["logreg"].spec
    with pytest.raises(ValueError, match="parameter 'n': expected an integer, got 10.5"):
        logreg.resolve_parameters({"n": 10.5})
    with pytest.raises(ValueError, match="expected an integer, got True"):
        logreg.resolve_parameters({"n": True})


def test_bench_rejects_a_mistyped_set_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--task", "logreg", "--method", "gd", "--set", "lr=fast", "--dry-run", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == ["error: method 'gd' hyperparameter 'lr': expected a number, got 'fast'"]
