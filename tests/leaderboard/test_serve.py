"""``harness.leaderboard``: the server command, its lifetime, and the app's plain helpers."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import psutil
import pytest
import storegen

from harness import leaderboard
from harness.store import Store, read_runs


def test_streamlit_command_is_headless_loopback_and_quiet(tmp_path: Path) -> None:
    command = leaderboard.streamlit_command(tmp_path, port=8600, catalog=[tmp_path / "cat"])
    pairs = dict(itertools.pairwise(command))
    assert pairs["--server.address"] == "127.0.0.1" and pairs["--server.port"] == "8600"
    assert pairs["--server.headless"] == "true" and pairs["--browser.gatherUsageStats"] == "false"
    assert command[command.index("--") + 1 :] == ["--store", str(tmp_path.resolve()), "--catalog",
                                                  str((tmp_path / "cat").resolve())]
    assert leaderboard.app_path().name == "app.py"


def test_fingerprint_changes_when_runs_are_added(tmp_path: Path) -> None:
    assert leaderboard.store_fingerprint(tmp_path / "missing") == (0, 0, 0, 0)
    store = Store(tmp_path)
    before = leaderboard.store_fingerprint(tmp_path)
    row, trace = storegen.simulate("logreg", "gd", seed=0)
    store.write_run(row, trace)
    after = leaderboard.store_fingerprint(tmp_path)
    assert after != before and after[1] == after[3] == 1


def test_method_declarations_read_each_file_alone(tmp_path: Path) -> None:
    storegen.write_method_yaml(tmp_path, "evil", name=storegen.XSS)
    broken = tmp_path / "methods" / "test" / "broken.yaml"
    broken.write_text("id: broken\nname: [unclosed\n")
    found = leaderboard.method_declarations([tmp_path], builtin=False)
    assert list(found) == ["evil"]
    assert found["evil"]["name"] == storegen.XSS and "onerror" in found["evil"]["yaml"]
    assert found["evil"]["hyperparameters"] == {"lr": 1.0}


def test_serve_stops_its_server_when_terminated(small_store: Path) -> None:
    from test_browser import free_port, wait_healthy

    port = free_port()
    parent = subprocess.Popen([sys.executable, "-m", "harness.leaderboard", "--store", str(small_store),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", parent)
        children = psutil.Process(parent.pid).children(recursive=True)
        assert children, "no streamlit child"
        parent.send_signal(signal.SIGTERM)  # the parent alone, as a service manager would
        assert parent.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.parametrize("argv", [["--store", "s", "--port", "1", "--host", "0.0.0.0", "--catalog", "c"]])
def test_main_passes_its_options_to_serve(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    seen = {}

    def fake(store, **options):
        seen.update(store=store, **options)
        return 0

    monkeypatch.setattr(leaderboard, "serve", fake)
    assert leaderboard.main(argv) == 0
    assert seen == {"store": Path("s"), "port": 1, "host": "0.0.0.0", "catalog": [Path("c")]}


def test_report_tables_print_store_texts_literally(tmp_path: Path) -> None:
    from rich.console import Console

    row, trace = storegen.simulate("logreg", "gd", seed=0)
    Store(tmp_path).write_run({**row, "method": "[bold]gd[/bold]", "task_params": '{"d": 20}'}, trace)
    # A second problem, so that the label names the parameter that differs.
    Store(tmp_path).write_run({**row, "run_id": "other", "method": "[bold]gd[/bold]", "task_params": '{"d": 30}'}, trace)
    console = Console(width=300, record=True)
    for table in leaderboard.report_tables(tmp_path, n_boot=50):
        console.print(table)
    text = console.export_text()
    assert "[bold]gd[/bold]" in text and "logreg[d=20]@cpu" in text and "time to target ↓ [s]" in text


def test_report_tables_flag_compiled_runs_and_show_offline_cost(small_store: Path, legacy_store: Path) -> None:
    from rich.console import Console

    def printed(store: Path) -> str:
        console = Console(width=400, record=True)
        for table in leaderboard.report_tables(store, n_boot=50, traces=False):
            console.print(table)
        return console.export_text()

    text = printed(small_store)
    lines = text.splitlines()
    assert "⚠ compiled in clock" in text and "offline [s]" in text
    assert any("adam" in line and "jax" in line and "⚠ 1 run, 0.04 s" in line for line in lines)
    assert any("heavy-ball" in line and "12 (max 14)" in line for line in lines)
    assert "Compilation fell inside the timed region: its time counts against the method." in text
    old = printed(legacy_store)  # an older store: no new columns, nothing flagged, no offline cost
    assert "⚠" not in old and "offline" not in old and "lbfgs" in old


def test_report_prints_summaries_by_default_and_rankings_on_request(small_store: Path) -> None:
    from rich.console import Console

    from harness import score

    def printed(**options) -> str:
        console = Console(width=400, record=True)
        for table in leaderboard.report_tables(small_store, n_boot=50, traces=False, **options):
            console.print(table)
        return console.export_text()

    ranked = score.task_table(read_runs(small_store), n_boot=50)
    rankings, summary = "Per problem: median over seeds", "Per problem: the best configuration"
    default = printed()
    assert summary in default and rankings not in default
    n_problems = ranked.select(score.PROBLEM_KEYS).unique().height
    assert f"{ranked.height} configurations over {n_problems} problems: --all prints" in default
    # Each problem's line names its rank-1 configuration and its count of configurations.
    labels = ranked.with_columns(score.problem_labels(ranked))
    for problem, group in labels.group_by("problem"):
        best = group.filter(pl.col("rank") == 1)["label"].item()
        assert any(line.split()[:3] == [problem[0], str(group.height), best] for line in default.splitlines())
    every = printed(configurations="all")
    assert summary in every and rankings in every and "--all prints" not in every
    one_task = printed(tasks=["logreg"])
    section = one_task[one_task.index(rankings):]
    shown_problems = {line.split()[0] for line in section.splitlines()[2:] if line.strip() and "@" in line.split()[0]}
    assert shown_problems and all(p.startswith("logreg") for p in shown_problems)
    one_method = printed(methods=["adam"])
    section = one_method[one_method.index(rankings):]
    assert "adam" in section and "lbfgs" not in section
    with pytest.raises(leaderboard.UnknownIdError, match=r"--task nope: no runs in the store \(its 4 tasks: "):
        leaderboard.report_tables(small_store, n_boot=50, traces=False, tasks=["nope"])
