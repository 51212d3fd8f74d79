"""The README's task example (its YAML and its one class) is a working task, in both frameworks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _runs import run_single

from harness.catalog import Catalog

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(language: str, path: str) -> str:
    """The README's fenced ``language`` block whose first line names ``path``."""
    match = re.search(rf"```{language}\n# {re.escape(path)}\n(.*?)```", README.read_text(), flags=re.S)
    assert match is not None, f"the README has no {language} block for {path}"
    return match.group(1)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("readme-catalog")
    (root / "tasks" / "demo").mkdir(parents=True)
    (root / "tasks" / "demo" / "lsq.yaml").write_text(_block("yaml", "tasks/demo/lsq.yaml"))
    (root / "tasks" / "demo" / "lsq.py").write_text(_block("python", "tasks/demo/lsq.py"))
    return Catalog.load([root])


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_the_readme_task_runs_and_its_f_star_is_the_least_squares_optimum(catalog: Catalog, framework: str) -> None:
    result = run_single(catalog, "lsq", "gns-newton", framework)
    assert result.status == "reached_target", result.row["error"]
    # f* against an independent solve of the ridge normal equations, from the YAML's default data.
    params = {name: p.default for name, p in catalog.tasks["lsq"].spec.parameters.items()}
    rng = np.random.default_rng(params["data_seed"])
    A, b = rng.standard_normal((params["n"], params["d"])), rng.standard_normal(params["n"])
    n, l2 = params["n"], params["l2"]
    x, *_ = np.linalg.lstsq(np.vstack([A / np.sqrt(n), np.sqrt(l2) * np.eye(params["d"])]),
                            np.concatenate([b / np.sqrt(n), np.zeros(params["d"])]), rcond=None)
    f_star = 0.5 * np.sum((A @ x - b) ** 2) / n + 0.5 * l2 * (x @ x)
    assert result.row["objective"] - result.row["suboptimality"] == pytest.approx(f_star, rel=1e-12)
