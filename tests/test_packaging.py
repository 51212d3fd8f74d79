"""A plain (non-editable) install carries the built-in catalog and runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_builtin_catalog_and_runs_from_it(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("harness-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    for kind in ("tasks", "methods", "hardware", "suites"):
        assert any(n.startswith(f"harness/_builtin/{kind}/") and n.endswith(".yaml") for n in names), kind
    assert not [n for n in names if "__pycache__" in n]

    # Run from the extracted wheel alone: outside the source tree, with the wheel first on the path.
    env = {**os.environ, "PYTHONPATH": str(site)}
    probe = subprocess.run(
        [sys.executable, "-c", "import harness.catalog as c; print(c.builtin_root())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )
    assert Path(probe.stdout.strip()) == site / "harness" / "_builtin"
    bench = subprocess.run(
        [sys.executable, "-m", "harness.cli", "bench", "--suite", "quick", "--task", "logreg", "--method", "gd",
         "--framework", "torch",
         "--seeds", "1", "--executor", "inline", "--store", str(tmp_path / "store")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert bench.returncode == 0, bench.stderr
    assert "2 runs, 0 already in" in bench.stdout  # quick: logreg on 2 datasets x gd x torch x 1 seed
    assert "reached" in bench.stdout and "0 failed" in bench.stdout
