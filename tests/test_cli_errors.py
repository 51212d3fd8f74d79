"""Bad command lines: each is one ``error:`` line on stderr, a non-zero exit and no traceback.

The corpus goes through :func:`harness.cli.main`, the console script's entry point (usage
errors are click's to report, and ``main`` turns them into one line); a few cases run as
real processes too. Nothing of a refused bench may be left behind: no store is created.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.store import Store

TEST_CATALOG = Path(__file__).parent / "catalog"
BENCH = ["bench", "--catalog", str(TEST_CATALOG), "--suite", "toy"]

#: (command line, what stderr's one line says, exit status). Placeholders: {file} a regular
#: file, {missing} a path that does not exist, {empty} an empty directory, {store} a store,
#: {ro} a read-only store, {full} a store on a full disk.
CORPUS: list[tuple[list[str], str, int]] = [
    # --store that cannot be a store
    ([*BENCH, "--store", "{file}"], "--store {file}: not a directory", 2),
    ([*BENCH, "--store", "{file}/store"], "--store {file}/store: {file} is not a directory", 2),
    ([*BENCH, "--store", "{file}", "--dry-run"], "--store {file}: not a directory", 2),
    ([*BENCH, "--store", "{runs_file}"], "not a store ({runs_file}/runs is not a directory)", 2),
    # a store that cannot be written
    ([*BENCH, "--store", "{ro}"], "cannot write the store {ro}: ", 3),
    (["compact", "--store", "{ro}"], "cannot write the store {ro}: ", 3),
    ([*BENCH, "--store", "{full}"], "no space left in {full}: nothing was run", 3),
    # a plan of no runs
    ([*BENCH, "--store", "{missing}", "--framework", "tensorflow"], "framework 'tensorflow' is not in suite 'toy'", 2),
    (["bench", "--catalog", str(TEST_CATALOG), "--store", "{missing}", "--framework", "tensorflow"],
     "framework 'tensorflow' is not in suite 'quick'", 2),
    ([*BENCH, "--store", "{missing}", "--task", "slow-quadratic"], "task 'slow-quadratic' is not in suite 'toy'", 2),
    ([*BENCH, "--store", "{missing}", "--method", "gd"], "method 'gd' is not in suite 'toy'", 2),
    # unknown ids
    ([*BENCH, "--store", "{missing}", "--task", "nope"], "unknown task 'nope'", 2),
    (["bench", "--catalog", str(TEST_CATALOG), "--store", "{missing}", "--suite", "nope"], "unknown suite 'nope'", 2),
    ([*BENCH, "--store", "{missing}", "--method", "nope"], "unknown method 'nope'", 2),
    ([*BENCH, "--store", "{missing}", "--hardware", "nope"], "unknown hardware 'nope'", 2),
    # option values
    ([*BENCH, "--store", "{missing}", "--seeds", "0"], "Invalid value for '--seeds'", 2),
    ([*BENCH, "--store", "{missing}", "--seeds", "many"], "Invalid value for '--seeds'", 2),
    ([*BENCH, "--store", "{missing}", "-j", "0"], "Invalid value for '--jobs' / '-j'", 2),
    ([*BENCH, "--store", "{missing}", "--grace", "-1"], "Invalid value for '--grace'", 2),
    ([*BENCH, "--store", "{missing}", "--set", "nope=1"], "--set nope: no task parameter or method hyperparameter", 2),
    ([*BENCH, "--store", "{missing}", "--set", "lr"], "--set 'lr': expected NAME=VALUE or ID.NAME=VALUE", 2),
    ([*BENCH, "--store", "{missing}", "--set", "sleepy-gd.lr=fast"], "hyperparameter 'lr': expected a number, got 'fast'", 2),
    ([*BENCH, "--store", "{missing}", "--executor", "nope"], "unknown executor 'nope'; choose one of inline, pool, ray", 2),
    ([*BENCH, "--store", "{missing}", "--executor", "nope", "--dry-run"], "unknown executor 'nope'", 2),
    ([*BENCH, "--store", "{missing}", "--address", "10.0.0.1:6379"], "--address applies to the ray executor, not 'pool'", 2),
    ([*BENCH, "--store", "{missing}", "--executor", "inline", "--address", "x:1", "--dry-run"],
     "--address applies to the ray executor, not 'inline'", 2),
    ([*BENCH, "--store", "{missing}", "--bogus"], "No such option: --bogus", 2),
    (["nosuch"], "No such command 'nosuch'", 2),
    # read-only commands on what is no store
    (["report", "--store", "{missing}"], "--store {missing}: no such directory", 2),
    (["report", "--store", "{file}"], "--store {file}: not a directory", 2),
    (["report", "--store", "{empty}"], "--store {empty}: not a store (no runs/ directory)", 2),
    (["report", "--store", "{store}", "--task", "nope"], "--task nope: no runs in the store (its 1 tasks: t)", 2),
    (["report", "--store", "{store}", "--method", "m", "--method", "x"], "--method x: no runs in the store", 2),
    (["compact", "--store", "{missing}"], "--store {missing}: no such directory", 2),
    (["compact", "--store", "{file}"], "--store {file}: not a directory", 2),
    (["compact", "--store", "{empty}"], "not a store (no runs/ directory)", 2),
    (["leaderboard", "--store", "{missing}"], "--store {missing}: no such directory", 2),
    (["leaderboard", "--store", "{file}"], "--store {file}: not a directory", 2),
    (["leaderboard", "--store", "{store}", "--port", "http"], "Invalid value for '--port'", 2),
]


def _mount(*args: str) -> bool:
    return os.geteuid() == 0 and subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a dict of placeholders
    """The placeholders' paths; ``ro`` and ``full`` are ``None`` where they cannot be made."""
    root = tmp_path_factory.mktemp("cli-errors")
    (root / "file").write_text("not a store\n")
    (root / "empty").mkdir()
    (root / "runs-file").mkdir()
    (root / "runs-file" / "runs").write_text("")
    store = root / "store"
    Store(store).write_run({"run_id": "r1", "task": "t", "method": "m", "status": "completed", "seed": 0})
    ro = root / "ro"
    Store(ro).write_run({"run_id": "r1", "task": "t", "method": "m", "status": "completed", "seed": 0})
    mounted: list[Path] = []
    try:
        if _mount("--bind", str(ro), str(ro)):
            mounted.append(ro)
            ro_ok = _mount("-o", "remount,bind,ro", str(ro))
        elif os.geteuid() != 0:
            for directory in (ro, ro / "runs", ro / "traces"):
                directory.chmod(0o555)
            ro_ok = True
        else:
            ro_ok = False
        full = root / "full"
        full.mkdir()
        full_ok = _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full))
        if full_ok:
            mounted.append(full)
            fill(full / "filler")
        yield {"file": root / "file", "missing": root / "missing", "empty": root / "empty", "store": store,
               "runs_file": root / "runs-file", "ro": ro if ro_ok else None, "full": full if full_ok else None}
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", str(point)], check=False)
        if os.geteuid() != 0:
            for directory in (ro, ro / "runs", ro / "traces"):
                directory.chmod(0o755)


def fill(path: Path) -> None:
    """Grow ``path`` until its file system is full, to the last page."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fill(arg: str, paths: dict) -> str:
    return arg.format(**{k: v for k, v in paths.items() if v is not None}) if "{" in arg else arg


def _needed(args: list[str], paths: dict) -> None:
    for key in ("ro", "full"):
        if any("{" + key + "}" in a for a in args) and paths[key] is None:
            pytest.skip(f"cannot make a {key} store here (needs root and mount, or a non-root user)")


def assert_one_error_line(err: str, expected: str, status: int, code: int) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], err
    assert code == status, err


@pytest.mark.parametrize(("args", "expected", "status"), CORPUS, ids=[" ".join(a[3:] if a[0] == "bench" else a) for a, _, _ in CORPUS])
def test_a_bad_command_line_is_one_error_line(paths, args, expected, status, monkeypatch, capsys) -> None:
    _needed(args, paths)
    filled = [_fill(a, paths) for a in args]
    monkeypatch.setattr(sys, "argv", ["harness", *filled])
    code = main()
    err = capsys.readouterr().err
    assert_one_error_line(err, _fill(expected, paths), status, code)
    assert not paths["missing"].exists()  # a refused bench creates no store
    assert not (paths["empty"] / "runs").exists()


def test_the_corpus_is_large() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("args", [
    ["bench", "--suite", "toy", "--store", "{file}"],
    ["bench", "--suite", "toy", "--seeds", "0", "--store", "{missing}"],
    ["report", "--store", "{file}"],
], ids=["file-store", "seeds-0", "report-file"])
def test_the_installed_command_says_it_in_one_line_too(paths, args) -> None:
    filled = [_fill(a, paths) for a in args]
    out = subprocess.run([sys.executable, "-m", "harness.cli", *filled], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stderr.startswith("error: "), out.stderr


def test_a_read_only_store_is_still_read(paths, monkeypatch, capsys) -> None:
    _needed(["{ro}"], paths)
    monkeypatch.setattr(sys, "argv", ["harness", "report", "--store", str(paths["ro"]), "--no-traces"])
    assert main() in (0, None)
    assert "Traceback" not in capsys.readouterr().err
