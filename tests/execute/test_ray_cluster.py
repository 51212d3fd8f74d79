"""A two-node Ray cluster started on this machine (``ray start --head`` plus ``ray start --address``).

The Ray executor joins it by address, places runs on both nodes, and every run's result is
the inline executor's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from _execute_helpers import runs_of

from harness.execute import drive
from harness.execute.inline import InlineExecutor
from harness.execute.ray import RayExecutor
from harness.store import Store, read_runs

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

RAY = Path(sys.executable).with_name("ray")
METRICS = ("objective", "suboptimality", "steps", "oracle_calls", "status")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray(*args: str, env: dict[str, str], secret: bool = False) -> None:
    done = subprocess.run([str(RAY), *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        out = "" if secret else done.stdout  # get-auth-token prints the token
        raise RuntimeError(f"ray {' '.join(args)} exited with {done.returncode}:\n{out}\n{done.stderr}")


def _ours(marker: str) -> list[psutil.Process]:
    """This cluster's processes: those whose command line names its own temporary directory."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in process.info["cmdline"] or ()):
                found.append(process)
    return found


def _stop(marker: str) -> None:
    """Stop this cluster alone (``ray stop`` would stop every Ray instance of the machine, other tests' too)."""
    processes = _ours(marker)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(processes, timeout=10)


@pytest.fixture
def two_nodes(monkeypatch):
    """A head node with ``node_a`` and a second node with ``node_b``, one CPU each; its address.

    Its own temporary directory keeps it apart from other Ray instances of the machine: a
    plain ``ray.init()`` elsewhere does not find it, and only its processes are stopped.
    """
    if not RAY.exists():
        pytest.skip(f"no ray executable beside {sys.executable}")
    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray2nodes-", dir="/tmp")  # short: Ray's socket paths live under it
    # Token authentication on both nodes and here, with the token a local ray.init uses (~/.ray/auth_token,
    # generated below when missing). This process read its mode when it imported Ray: read it again.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    from ray._raylet import Config

    Config.initialize("")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ("--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats", f"--temp-dir={temp}")
    try:
        _ray("get-auth-token", "--generate", env=env, secret=True)  # creates the token file if there is none
        _ray("start", "--head", f"--port={port}", "--include-dashboard=false", *common,
             "--resources", json.dumps({"node_a": 1}), env=env)
        _ray("start", f"--address=127.0.0.1:{port}", *common, "--resources", json.dumps({"node_b": 1}), env=env)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _nodes(address: str, count: int = 2, timeout: float = 60.0) -> dict[str, str]:
    """Node id -> its custom resource (``node_a``, ``node_b``), once ``count`` nodes are alive."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(address=address, log_to_driver=False, logging_level="warning")
    try:
        deadline = time.monotonic() + timeout
        while True:
            alive = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
            if len(alive) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ray.cluster_resources()["CPU"] == count
        return {node: next((r for r in res if r.startswith("node_")), "?") for node, res in alive.items()}
    finally:
        ray.shutdown()


def test_a_suite_on_two_nodes_runs_on_both_with_the_inline_results(two_nodes, source, catalog, tmp_path):
    runs = runs_of(catalog, grid={"n": (40, 63)}, seeds=(0, 1, 2, 3))
    assert len(runs) == 8
    nodes = _nodes(two_nodes)
    assert sorted(nodes.values()) == ["node_a", "node_b"]

    executor = RayExecutor(source, address=two_nodes)  # joins the cluster by address, as --address does
    ray_results = drive(runs, Store(tmp_path / "ray"), executor)
    assert not ray.is_initialized()  # it left the cluster it joined
    inline_results = drive(runs, Store(tmp_path / "inline"), InlineExecutor(catalog))

    assert len(ray_results) == len(inline_results) == len(runs)
    assert set(executor.placements) == {run.run_id for run in runs}
    placed = {nodes[node] for node in executor.placements.values()}
    assert placed == {"node_a", "node_b"}, executor.placements

    def final(store: Path) -> dict[str, tuple]:
        return {row["run_id"]: tuple(row[m] for m in METRICS) for row in read_runs(store).iter_rows(named=True)}

    ray_final, inline_final = final(tmp_path / "ray"), final(tmp_path / "inline")
    assert all(values[-1] == "completed" for values in inline_final.values())
    assert ray_final == inline_final

    def values(results) -> dict[str, list]:  # each trace's metric values, step by step (not its clock)
        return {r.row["run_id"]: [(p["step"], p.get("objective")) for p in r.trace] for r in results}

    assert values(ray_results) == values(inline_results)
